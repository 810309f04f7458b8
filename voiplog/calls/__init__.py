"""Call tracking: SIP dialogs and their media, and REGISTER bindings, turned into records."""

from voiplog.calls._dialog import Side
from voiplog.calls._media import MediaFlow, flow_key, new_stream
from voiplog.calls._registrations import RegistrationTracker
from voiplog.calls._tracker import CallTracker
from voiplog.cdr import Disposition, EndReason, judge
from voiplog.settings import CallSettings

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
