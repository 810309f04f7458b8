"""Call tracking: SIP dialogs and their media, turned into call-detail records."""

from voiplog.calls._disposition import Disposition, judge
from voiplog.calls._settings import CallSettings
from voiplog.calls._tracker import CallTracker, EndReason, MediaFlow, Side, flow_key, new_stream

__all__ = [
    "CallSettings",
    "CallTracker",
    "Disposition",
    "EndReason",
    "MediaFlow",
    "Side",
    "flow_key",
    "judge",
    "new_stream",
]
