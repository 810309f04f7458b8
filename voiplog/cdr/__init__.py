"""Call-detail records: the structure written for every call."""

from voiplog.cdr.record import CONTRACT_VERSION, CallRecord, MediaStream, format_ts, make_uid

__all__ = ["CONTRACT_VERSION", "CallRecord", "MediaStream", "format_ts", "make_uid"]
