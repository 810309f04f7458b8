from __future__ import annotations

from voiplog.cdr import format_ts, make_uid


def test_format_ts_is_utc_with_microseconds():
    assert format_ts(0) == "1970-01-01T00:00:00.000000Z"
    assert format_ts(1_700_000_000_123_456) == "2023-11-14T22:13:20.123456Z"
    assert format_ts(None) is None


def test_uid_is_stable_and_distinct():
    a = make_uid("sip", "abc@host", 1, "10.0.0.1", 5060)
    assert a == make_uid("sip", "abc@host", 1, "10.0.0.1", 5060)
    assert a != make_uid("sip", "abc@host", 2, "10.0.0.1", 5060)
    assert a.startswith("C") and len(a) == 17
