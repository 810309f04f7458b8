"""Legs of one call behind a B2BUA, linked into one session by the evidence there is.

Leg A goes from the caller (10.1.0.10) to the B2BUA (192.0.2.1), leg B from the
B2BUA to the callee (192.0.2.50), each with a Call-ID of its own. The B2BUA
relays media (its address is in leg A's answer and leg B's offer).
"""

from __future__ import annotations

import orjson
import pytest

from tests.sipcraft import T0, Dialog, make_dialog, sorted_frames, udp_frame
from voiplog.calls import CallSettings, CallTracker
from voiplog.calls._legs import LegLinker, _number, _same_party
from voiplog.cdr.sip_call import call_uid
from voiplog.packet import decode
from voiplog.packet.hep import HepMessage, HepSettings, encode_hep3
from voiplog.pipeline import Pipeline
from voiplog.sip import parse_message

B2BUA = "192.0.2.1"
_S = 1_000_000


def _legs(n: int = 1, *, numbers: tuple[str, str] | None = None) -> tuple[Dialog, Dialog]:
    a = make_dialog(2 * n, callee_ip=B2BUA)
    b = make_dialog(2 * n + 1, caller_ip=B2BUA)
    caller, callee = numbers or (a.caller.user, a.callee.user)
    a.caller.user, a.callee.user = caller, callee
    b.caller.user, b.callee.user = caller, callee
    return a, b


def _call(
    a: Dialog,
    b: Dialog,
    start: int = T0,
    *,
    a_extra: list[str] = (),
    b_extra: list[str] = (),
    b_answer_extra: list[str] = (),
    b_after_s: float = 0.05,
    talk_s: float = 3.0,
    b_ends_after_s: float = 0.01,
) -> None:
    """Leg A's INVITE, leg B's after it; B answered, then A; A's caller hangs up,
    the B2BUA hangs up leg B after it."""
    b_start = start + int(b_after_s * _S)
    a.invite(start, extra=list(a_extra))
    a.response(start + 10_000, 100)
    b.invite(b_start, extra=list(b_extra))
    b.response(b_start + 20_000, 180)
    a.response(b_start + 30_000, 180)
    b.answer(b_start + 1 * _S, extra=list(b_answer_extra))
    a.answer(b_start + 1 * _S + 10_000)
    b.ack(b_start + 1 * _S + 20_000)
    a.ack(b_start + 1 * _S + 20_000)
    bye = b_start + int((1 + talk_s) * _S)
    a.request(bye, "BYE", cseq=2)
    a.response(bye + 5_000, 200, method="BYE", cseq=2)
    b.request(bye + int(b_ends_after_s * _S), "BYE", cseq=2)
    b.response(bye + int(b_ends_after_s * _S) + 5_000, 200, method="BYE", cseq=2)


def _records(frames, hep: HepSettings | None = None) -> dict[str, dict]:
    out = []
    pipeline = Pipeline(out.append, hep=hep, sip_ports=(5060,))
    pipeline.feed((ts, 1, frame) for ts, frame in frames)
    pipeline.finish()
    assert pipeline.tracker.open_calls == 0
    return {r.call_id: r.to_dict() for r in out if r.kind == "sip"}


def _linked(records: dict[str, dict], a: Dialog, b: Dialog, evidence: str) -> None:
    ra, rb = records[a.call_id], records[b.call_id]
    assert ra["session_uid"] == rb["session_uid"] == ra["uid"]  # leg A's INVITE came first
    assert ra["session_link"] == rb["session_link"] == evidence


def _unlinked(records: dict[str, dict]) -> None:
    for record in records.values():
        assert record["session_uid"] == record["uid"]
        assert record["session_link"] is None


def test_x_cid_naming_the_other_legs_call_id():
    a, b = _legs(1)
    _call(a, b, b_extra=[f"X-CID: {a.call_id}"])
    _linked(_records(sorted_frames(a, b)), a, b, "x-cid")


def test_the_same_x_cid_on_both_legs():
    a, b = _legs(2)
    _call(a, b, a_extra=["X-CID: 7f3c0e2a"], b_extra=["X-CID: 7f3c0e2a"])
    _linked(_records(sorted_frames(a, b)), a, b, "x-cid")


def test_ims_charging_id_on_both_legs():
    a, b = _legs(3)
    charging = 'P-Charging-Vector: icid-value="AyretyU0dm+6O2IrT5tAFrbHLso=";orig-ioi=home1'
    _call(a, b, a_extra=[charging], b_extra=[charging])
    _linked(_records(sorted_frames(a, b)), a, b, "icid")


def test_charging_id_seen_first_in_the_later_legs_answer():
    """The hint comes late on both legs, leg B's first: the session is still
    named after leg A, whose INVITE came first."""
    a, b = _legs(4)
    charging = "P-Charging-Vector: icid-value=abc123"
    b_start = T0 + 50_000
    a.invite(T0)
    b.invite(b_start)
    b.answer(b_start + _S, extra=[charging])
    a.answer(b_start + _S + 10_000, extra=[charging])
    a.request(b_start + 3 * _S, "BYE", cseq=2)
    b.request(b_start + 3 * _S + 10_000, "BYE", cseq=2)
    _linked(_records(sorted_frames(a, b)), a, b, "icid")


def test_session_id_passed_through_the_b2bua():
    a, b = _legs(5)
    sid = "Session-ID: ab30317f1a784dc48ff824d0d3715d86;remote=00000000000000000000000000000000"
    _call(a, b, a_extra=[sid], b_extra=[sid])
    _linked(_records(sorted_frames(a, b)), a, b, "session-id")


def _as_hep(frames, correlation: dict[str, str]) -> list[tuple[int, bytes]]:
    """Every SIP datagram sent to a HEP collector, with the correlation id given
    for its Call-ID; media stays as captured."""
    out = []
    for ts, frame in frames:
        proto, src, sport, dst, dport, payload = decode(1, frame)
        if sport == 5060 or dport == 5060:
            call_id = next(c for c in correlation if c.encode() in payload)
            msg = HepMessage(
                3, proto, src, sport, dst, dport, ts, 1, payload, 2001, None, correlation[call_id]
            )
            frame = udp_frame("198.51.100.9", 47000, "203.0.113.1", 9060, encode_hep3(msg))
        out.append((ts, frame))
    return out


@pytest.mark.parametrize("same_value", [True, False])
def test_hep_correlation_id(same_value):
    """A capture agent's correlation id: the same on both legs, or leg A's Call-ID on leg B."""
    a, b = _legs(6)
    _call(a, b)
    shared = "4c1f93e0-leg-pair" if same_value else a.call_id
    hep = _as_hep(sorted_frames(a, b), {a.call_id: shared, b.call_id: shared})
    records = _records(hep, HepSettings())
    _linked(records, a, b, "hep-correlation")
    assert records[b.call_id]["source"]["correlation_id"] == shared


def test_numbers_and_times_with_the_b2buas_media_address_on_both_legs():
    """No hint at all: the same numbers (one leg with +, the other with 00), the
    INVITEs 50 ms apart, the answers 10 ms apart, the B2BUA's media on both."""
    a, b = _legs(7, numbers=("+4930123456", "+4940987654"))
    b.caller.user, b.callee.user = "004930123456", "004940987654"
    _call(a, b)
    _linked(_records(sorted_frames(a, b)), a, b, "numbers-and-times")


def test_same_numbers_at_other_times_are_not_linked():
    a, b = _legs(8)
    _call(a, b, b_after_s=5.0)  # leg B's INVITE 5 s after leg A's
    _unlinked(_records(sorted_frames(a, b)))


def test_same_numbers_answered_at_other_times_are_not_linked():
    a, b = _legs(9)
    a.invite(T0)
    b.invite(T0 + 100_000)
    b.answer(T0 + 2 * _S)
    a.answer(T0 + 8 * _S)
    a.request(T0 + 20 * _S, "BYE", cseq=2)
    b.request(T0 + 20 * _S, "BYE", cseq=2)
    _unlinked(_records(sorted_frames(a, b)))


def test_other_numbers_at_the_same_times_are_not_linked():
    a, b = _legs(10)
    b.callee.user = "2999"
    _call(a, b)
    _unlinked(_records(sorted_frames(a, b)))


def test_same_numbers_and_times_without_common_media_are_not_linked():
    """Two callers behind one number calling one number at once through other
    routes: no media address in common."""
    a = make_dialog(22)
    b = make_dialog(23, caller_ip="10.1.0.11", callee_ip="192.0.2.51")
    b.caller.user, b.callee.user = a.caller.user, a.callee.user
    _call(a, b)
    _unlinked(_records(sorted_frames(a, b)))


def test_legs_written_at_different_times_share_the_session():
    """Leg A is over and written while leg B goes on for minutes (the B2BUA kept
    it up); leg B, written much later, still names leg A's session."""
    a, b = _legs(11)
    _call(a, b, b_extra=[f"X-CID: {a.call_id}"], b_ends_after_s=45.0)
    tracker_records = []
    pipeline = Pipeline(tracker_records.append, sip_ports=(5060,))
    pipeline.feed((ts, 1, frame) for ts, frame in sorted_frames(a, b))
    written_first = [r.call_id for r in tracker_records]
    pipeline.finish()
    assert written_first == [a.call_id]  # leg A expired (linger) before leg B's BYE
    records = {r.call_id: r.to_dict() for r in tracker_records}
    _linked(records, a, b, "x-cid")


def test_a_leg_written_before_the_other_was_seen_is_named_by_it():
    """Leg A failed and was written before leg B's INVITE (the B2BUA retried on
    another route much later): leg B links to leg A's uid, leg A stays unlinked."""
    a, b = _legs(12)
    a.invite(T0)
    a.response(T0 + 10_000, 503)
    b.invite(T0 + 20 * _S, extra=[f"X-CID: {a.call_id}"])
    b.response(T0 + 20 * _S + 10_000, 486)
    records = _records(sorted_frames(a, b))
    ra, rb = records[a.call_id], records[b.call_id]
    assert ra["session_link"] is None and ra["session_uid"] == ra["uid"]
    assert rb["session_link"] == "x-cid" and rb["session_uid"] == ra["uid"]


def test_the_linking_table_is_bounded_and_empties():
    settings = CallSettings(max_open_calls=4)
    frames = []
    for n in range(10):
        a, b = _legs(20 + n)
        _call(a, b, T0 + n * 200 * _S, b_extra=[f"X-CID: {a.call_id}"])
        frames += sorted_frames(a, b)
    pipeline = Pipeline(lambda r: None, call_settings=settings, sip_ports=(5060,))
    pipeline.feed((ts, 1, frame) for ts, frame in frames)
    linker = pipeline.tracker.legs
    # Open legs, and written ones kept for `session_link_keep_s`, capped.
    assert len(linker) <= 2 * settings.max_open_calls
    pipeline.finish()
    pipeline.tracker.expire(T0 + 10_000 * _S)
    assert len(linker) == 0
    assert not linker._by_key and not linker._by_numbers


def test_written_legs_beyond_the_cap_are_forgotten_oldest_first():
    tracker = CallTracker()
    tracker.legs = linker = LegLinker(call_uid, window_us=2 * _S, keep_us=3600 * _S, max_closed=3)
    for n in range(6):
        d = make_dialog(40 + n)
        for payload, ts in ((d.invite(0), 0), (d.response(0, 486), 1000)):
            caller, callee = (d.caller.ip, d.caller.port), (d.callee.ip, d.callee.port)
            src, dst = (caller, callee) if ts == 0 else (callee, caller)
            tracker.on_sip(parse_message(payload), T0 + n * _S + ts, *src, *dst)
        tracker.close_all()
    assert len(linker) == 3
    assert "call-40@craft.example" not in linker._by_key
    assert "call-45@craft.example" in linker._by_key


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("+4930123456", "004930123456", True),
        ("030123456", "4930123456", True),  # national and international forms
        ("1001", "1001", True),
        ("1001", "21001", False),  # too short to be a prefixed number
        ("alice", "Alice", True),
        ("4930123456", "4930123457", False),
    ],
)
def test_what_counts_as_the_same_party(a, b, same):
    assert _same_party(_number(a), _number(b)) is same


def test_legs_open_across_a_restart_are_linked_again():
    """The links are not saved with the open calls: the calls taken back are
    linked again among themselves, by the same evidence, to the same session."""
    a, b = _legs(13)
    _call(a, b, b_extra=[f"X-CID: {a.call_id}"])
    frames = [(ts, 1, frame) for ts, frame in sorted_frames(a, b)]
    cut = next(i for i, (ts, _, _) in enumerate(frames) if ts > T0 + 2 * _S)  # both answered
    records = []
    first = Pipeline(records.append, sip_ports=(5060,))
    first.feed(frames[:cut])
    saved = orjson.loads(orjson.dumps(first.suspend()))
    second = Pipeline(records.append, sip_ports=(5060,))
    assert second.tracker.restore(saved) == 2
    second.feed(frames[cut:])
    second.finish()
    _linked({r.call_id: r.to_dict() for r in records if r.kind == "sip"}, a, b, "x-cid")
