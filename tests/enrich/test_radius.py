"""RADIUS accounting sessions: Start, Interim-Update, Stop, missing Stop, prefixes, trust."""

from __future__ import annotations

import contextlib

import pytest

from tests.radiuscraft import SECRET, accounting
from voiplog.enrich import LeaseIndex, RadiusParseError, RadiusSessions, decode_accounting
from voiplog.enrich.radius import StatusType

S = 1_000_000
T = 1_714_557_600 * S  # 2024-05-01T10:00:00Z
NAS = "192.0.2.1"


def _sessions(**kw):
    seen = []
    sessions = RadiusSessions(LeaseIndex(), on_weird=seen.append, **kw)
    sessions.weird = seen
    return sessions


def _who(sessions, ip, at):
    lease = sessions.lookup(ip, at) or sessions.leases.lookup(ip, at)
    return None if lease is None else lease.subscriber_id


def _start(session="s1", user="alice", ip="100.64.0.1", **kw):
    return accounting(
        "Start", session, User_Name=user, Framed_IP_Address=ip, NAS_Port_Id="eth 1/1/1:100", **kw
    )


def test_decode_start():
    record = decode_accounting(
        _start(Calling_Station_Id="02:00:00:00:00:01", Acct_Delay_Time=2), T, NAS
    )
    assert record.status is StatusType.START
    assert (record.nas, record.session_id) == ("bng1", "s1")
    assert record.owner.subscriber_id == "alice"
    assert record.owner.access_line == "eth 1/1/1:100"
    assert record.event_us == T - 2 * S  # the NAS says it sent this two seconds late
    assert record.attributes["calling_station_id"] == "02:00:00:00:00:01"


def test_start_then_stop():
    sessions = _sessions()
    sessions.feed(_start(), T, NAS)
    assert _who(sessions, "100.64.0.1", T - 1) is None
    assert _who(sessions, "100.64.0.1", T) == "alice"
    lease = sessions.lookup("100.64.0.1", T + 10 * S)
    assert lease.end_us is None and lease.access_line == "eth 1/1/1:100"
    assert lease.attributes["acct_session_id"] == "s1"
    sessions.feed(
        accounting("Stop", "s1", User_Name="alice", Framed_IP_Address="100.64.0.1"), T + 60 * S, NAS
    )
    assert len(sessions) == 0
    assert _who(sessions, "100.64.0.1", T + 60 * S - 1) == "alice"
    assert _who(sessions, "100.64.0.1", T + 60 * S) is None  # half-open: gone at the Stop
    lease = sessions.leases.lookup("100.64.0.1", T)
    assert (lease.start_us, lease.end_us, lease.source) == (T, T + 60 * S, "radius")


def test_interim_update_keeps_the_session_alive():
    sessions = _sessions(session_timeout_s=600)
    sessions.feed(_start(), T, NAS)
    for minute in (5, 10, 15):
        sessions.feed(
            accounting("Interim-Update", "s1", User_Name="alice", Framed_IP_Address="100.64.0.1"),
            T + minute * 60 * S,
            NAS,
        )
        sessions.expire(T + minute * 60 * S)
    assert sessions.expire(T + 20 * 60 * S) == 0
    assert len(sessions) == 1
    assert len(sessions._deadlines) == 1  # one deadline per session, however often updated
    assert _who(sessions, "100.64.0.1", T + 20 * 60 * S) == "alice"


def test_interim_update_of_a_missed_start_dates_the_session_back():
    sessions = _sessions()
    sessions.feed(
        accounting(
            "Interim-Update", "s9", User_Name="bob", Framed_IP_Address="100.64.0.9",
            Acct_Session_Time=300,
        ),
        T,
        NAS,
    )  # fmt: skip
    assert _who(sessions, "100.64.0.9", T - 300 * S) == "bob"
    assert _who(sessions, "100.64.0.9", T - 301 * S) is None


def test_stop_of_a_missed_start_still_records_the_lease():
    sessions = _sessions()
    sessions.feed(
        accounting(
            "Stop", "s9", User_Name="bob", Framed_IP_Address="100.64.0.9", Acct_Session_Time=60
        ),
        T,
        NAS,
    )
    assert _who(sessions, "100.64.0.9", T - 60 * S) == "bob"
    assert _who(sessions, "100.64.0.9", T) is None
    sessions.feed(accounting("Stop", "s10", User_Name="carol"), T, NAS)
    assert "radius.stop_unknown_session" in sessions.weird


def test_missing_stop_expires_after_the_timeout():
    sessions = _sessions(session_timeout_s=600)
    sessions.feed(_start(), T, NAS)
    sessions.feed(
        accounting("Interim-Update", "s1", User_Name="alice", Framed_IP_Address="100.64.0.1"),
        T + 300 * S,
        NAS,
    )
    assert sessions.expire(T + 900 * S - 1) == 0
    assert sessions.expire(T + 900 * S) == 1
    assert "radius.session_expired" in sessions.weird
    # Held until its last word plus the timeout: what was answered while it was open stands.
    assert _who(sessions, "100.64.0.1", T + 900 * S - 1) == "alice"
    assert _who(sessions, "100.64.0.1", T + 900 * S) is None


def test_address_taken_over_by_a_new_session_closes_the_old_one():
    sessions = _sessions()
    sessions.feed(_start("s1", "alice"), T, NAS)
    sessions.feed(_start("s2", "bob"), T + 100 * S, NAS)
    assert len(sessions) == 1
    assert "radius.address_taken_over" in sessions.weird
    assert _who(sessions, "100.64.0.1", T + 100 * S - 1) == "alice"
    assert _who(sessions, "100.64.0.1", T + 100 * S) == "bob"


def test_ipv6_framed_and_delegated_prefixes():
    sessions = _sessions()
    sessions.feed(
        accounting(
            "Start", "s6", User_Name="dave",
            Framed_IPv6_Prefix="2001:db8:ff00:1::/64", Delegated_IPv6_Prefix="2001:db8:1200::/56",
        ),
        T,
        NAS,
    )  # fmt: skip
    assert _who(sessions, "2001:db8:ff00:1::abcd", T) == "dave"
    assert _who(sessions, "2001:db8:1200:42::1", T) == "dave"
    assert sessions.lookup("2001:db8:1200:42::1", T).network == "2001:db8:1200::/56"
    assert _who(sessions, "2001:db8:1201::1", T) is None
    sessions.feed(accounting("Stop", "s6", User_Name="dave"), T + 10 * S, NAS)
    assert sessions.leases.lookup("2001:db8:1200:42::1", T + 5 * S).subscriber_id == "dave"
    assert sessions.leases.lookup("2001:db8:ff00:1::1", T + 5 * S).subscriber_id == "dave"


def test_accounting_on_closes_the_sessions_of_that_nas():
    sessions = _sessions()
    sessions.feed(_start("s1", "alice", "100.64.0.1"), T, NAS)
    sessions.feed(_start("s2", "bob", "100.64.0.2", NAS_Identifier="bng2"), T, NAS)
    sessions.feed(accounting("Accounting-On", None), T + 50 * S, NAS)
    assert len(sessions) == 1
    assert _who(sessions, "100.64.0.1", T + 50 * S) is None
    assert _who(sessions, "100.64.0.2", T + 50 * S) == "bob"


def test_session_table_is_bounded():
    sessions = _sessions(max_sessions=2)
    for n in range(3):
        sessions.feed(_start(f"s{n}", f"user{n}", f"100.64.0.{n + 1}"), T + n * S, NAS)
    assert len(sessions) == 2
    assert "radius.session_evicted" in sessions.weird
    assert _who(sessions, "100.64.0.1", T) == "user0"  # the evicted session became a lease


def test_clients_and_shared_secrets():
    sessions = _sessions(secrets={NAS: SECRET, "192.0.2.2": None})
    assert sessions.feed(_start(), T, "198.51.100.66") is None
    assert "radius.unknown_client" in sessions.weird
    with pytest.raises(RadiusParseError) as info:
        sessions.feed(_start(secret=b"wrong"), T, NAS)
    assert info.value.kind == "radius.bad_authenticator"
    assert sessions.feed(_start(), T, NAS) is not None
    assert sessions.feed(_start("s2", "bob", "100.64.0.2", secret=b"any"), T, "192.0.2.2")


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"\x04\x01\x00", "radius.truncated"),
        (b"\x04\x01\x00\x30" + bytes(16), "radius.malformed"),  # length beyond the packet
        (b"\x04\x01\x00\x16" + bytes(16) + b"\x01\x01", "radius.malformed"),  # attribute too short
        (b"\x04\x01\x00\x14" + bytes(16), "radius.no_status"),
    ],
)
def test_malformed_packets_raise_the_parse_error(payload, kind):
    with pytest.raises(RadiusParseError) as info:
        decode_accounting(payload, T, NAS)
    assert info.value.kind == kind


def test_responses_are_ignored():
    assert decode_accounting(b"\x05\x01\x00\x14" + bytes(16), T, NAS) is None


def test_fuzz_anything_decodes_or_raises_the_parse_error():
    """Invariant: any damaged packet decodes or raises RadiusParseError, nothing else."""
    import random

    rng = random.Random(7)
    base = _start()
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        with contextlib.suppress(RadiusParseError):
            decode_accounting(bytes(data), T, NAS)


def test_dated_back_session_taking_an_address_keeps_the_old_holders_lease():
    sessions = _sessions()
    sessions.feed(_start("s1", "alice"), T, NAS)
    sessions.feed(
        accounting(
            "Interim-Update", "s2", User_Name="bob", Framed_IP_Address="100.64.0.1",
            Acct_Session_Time=200,
        ),
        T + 100 * S,
        NAS,
    )  # fmt: skip
    history = sessions.leases.lookup("100.64.0.1", T + 50 * S)
    assert (history.subscriber_id, history.end_us) == ("alice", T + 100 * S)
    assert _who(sessions, "100.64.0.1", T + 100 * S) == "bob"
