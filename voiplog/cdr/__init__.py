"""Call-detail records: the structure written for every call, and for every registration."""

from voiplog.cdr.disposition import Disposition, EndedBy, EndReason, RecordKind, judge
from voiplog.cdr.record import CONTRACT_VERSION, CallRecord, MediaStream, format_ts, make_uid
from voiplog.cdr.registration import RegistrationRecord, RegistrationResult

__all__ = [
    "CONTRACT_VERSION",
    "CallRecord",
    "Disposition",
    "EndReason",
    "EndedBy",
    "MediaStream",
    "RecordKind",
    "RegistrationRecord",
    "RegistrationResult",
    "format_ts",
    "judge",
    "make_uid",
]
