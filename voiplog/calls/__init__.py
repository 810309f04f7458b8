"""Call tracking: SIP dialogs and their media, and REGISTER bindings, turned into records."""

from voiplog.calls._disposition import Disposition, judge
from voiplog.calls._registrations import RegistrationTracker
from voiplog.calls._settings import CallSettings
from voiplog.calls._tracker import CallTracker, EndReason, MediaFlow, Side, flow_key, new_stream

__all__ = [
    "CallSettings",
    "CallTracker",
    "Disposition",
    "EndReason",
    "MediaFlow",
    "RegistrationTracker",
    "Side",
    "flow_key",
    "judge",
    "new_stream",
]
