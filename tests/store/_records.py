"""Records for store tests: realistic calls and registrations at chosen times."""

from __future__ import annotations

import datetime as dt

from voiplog.cdr import CallRecord, MediaStream, format_ts, make_uid


def us(moment: str) -> int:
    value = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def call(
    start: str,
    n: int = 0,
    caller: str = "+4930111",
    callee: str = "+4989222",
    caller_ip: str = "100.64.0.10",
    subscriber_id: str | None = "sub-1",
    media: bool = True,
    **changes,
) -> CallRecord:
    start_us = us(start) + n * 1000
    answered = start_us + 2_000_000
    ended = answered + 60_000_000
    streams = ()
    if media:
        streams = (
            MediaStream(caller_ip, 40000, "198.51.100.7", 20000, 0xDEADBEEF, 8, "PCMA", 3000, 1, 12.5, 3.25, format_ts(answered), format_ts(ended)),
            MediaStream("198.51.100.7", 20000, caller_ip, 40000, 1234, 0, None, 2999, 0, 0.0, 0.0, format_ts(answered + 20_000), format_ts(ended)),
        )  # fmt: skip
    fields = dict(
        uid=make_uid("sip", f"call-{n}@test", start_us, caller_ip, 5060),
        kind="sip",
        call_id=f"call-{n}@test",
        caller=caller,
        callee=callee,
        caller_uri=f"sip:{caller}@example.net",
        callee_uri=f"sip:{callee}@example.net",
        request_uri=f"sip:{callee}@example.net;user=phone",
        caller_ip=caller_ip,
        caller_port=5060,
        callee_ip="198.51.100.1",
        callee_port=5060,
        transport="udp",
        subscriber_ip=caller_ip,
        direction="outbound",
        started_at=format_ts(start_us),
        ringing_at=format_ts(start_us + 500_000),
        answered_at=format_ts(answered),
        ended_at=format_ts(ended),
        duration_s=60.0,
        setup_ms=500,
        disposition="answered",
        final_status=200,
        ended_by="caller",
        user_agent="Phone/1.0",
        media=streams,
        flags=("invite_retransmitted",),
        subscriber={"id": subscriber_id, "account": "acc-1", "access_line": "line-1", "pop": "t", "location": {"site": "hall"}} if subscriber_id else None,
        remote=None,
    )  # fmt: skip
    fields.update(changes)
    return CallRecord(**fields)


def registration(
    start: str, n: int = 0, user: str = "+4930111", source_ip: str = "100.64.0.10"
) -> dict:
    start_us = us(start) + n * 1000
    return {
        "uid": make_uid("register", f"reg-{n}", start_us),
        "kind": "registration",
        "call_id": f"reg-{n}@test",
        "aor": f"sip:{user}@example.net",
        "user": user,
        "contact_uri": f"sip:{user}@{source_ip}:5060",
        "contact_ip": source_ip,
        "contact_port": 5060,
        "source_ip": source_ip,
        "source_port": 5060,
        "registrar_ip": "198.51.100.1",
        "registrar_port": 5060,
        "transport": "udp",
        "expires_s": 3600,
        "auth_user": user,
        "user_agent": "Phone/1.0",
        "status": 200,
        "result": "registered",
        "requested_at": format_ts(start_us),
        "answered_at": format_ts(start_us + 30_000),
        "subscriber_ip": source_ip,
        "direction": "outbound",
        "subscriber": None,
        "flags": [],
        "version": 1,
    }
