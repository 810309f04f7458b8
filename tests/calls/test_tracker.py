"""The call tracker fed directly, without packets: sans-IO in, records out."""

from __future__ import annotations

from tests.sipcraft import T0, make_dialog
from voiplog.calls import CallSettings, CallTracker, EndReason
from voiplog.sip import parse_message


def _feed(tracker, dialog, payloads):
    for ts, payload, from_caller in payloads:
        src, dst = (dialog.caller, dialog.callee) if from_caller else (dialog.callee, dialog.caller)
        tracker.on_sip(parse_message(payload), ts, src.ip, src.port, dst.ip, dst.port)


def _setup(d):
    return [
        (T0, d.invite(T0), True),
        (T0 + 100_000, d.response(T0 + 100_000, 180), False),
    ]


def test_setup_timeout_is_packet_time():
    tracker = CallTracker(CallSettings(setup_timeout_s=30))
    d = make_dialog(1)
    _feed(tracker, d, _setup(d))
    assert tracker.expire(T0 + 30_099_999) == []
    (record,) = tracker.expire(T0 + 30_100_000)
    assert record.disposition == "no_final_response"
    assert record.ended_by == "timeout"
    assert "timeout" in record.flags
    assert tracker.open_calls == 0


def test_activity_pushes_the_deadline_later():
    tracker = CallTracker(CallSettings(setup_timeout_s=30))
    d = make_dialog(2)
    _feed(tracker, d, _setup(d))
    _feed(tracker, d, [(T0 + 20_000_000, d.response(T0 + 20_000_000, 183), False)])
    assert tracker.expire(T0 + 31_000_000) == []
    assert len(tracker.expire(T0 + 50_000_000)) == 1


def test_close_all_orders_by_start_and_flags_end_of_input():
    tracker = CallTracker()
    dialogs = [make_dialog(n) for n in (5, 3, 4)]
    for n, d in enumerate(dialogs):
        ts = T0 + (2 - n) * 1000
        tracker.on_sip(parse_message(d.invite(ts)), ts, d.caller.ip, 5060, d.callee.ip, 5060)
    records = tracker.close_all(EndReason.END_OF_INPUT)
    assert [r.call_id for r in records] == [d.call_id for d in reversed(dialogs)]
    assert all("end_of_input" in r.flags and r.ended_by is None for r in records)


def test_shutdown_sets_ended_by():
    tracker = CallTracker()
    d = make_dialog(6)
    _feed(tracker, d, _setup(d))
    (record,) = tracker.close_all(EndReason.SHUTDOWN)
    assert record.ended_by == "shutdown"


def test_flow_matching_prefers_the_call_that_announced_both_ends():
    tracker = CallTracker()
    a, b = make_dialog(7), make_dialog(8, caller_ip="10.1.0.11")
    b.callee.media_port = a.callee.media_port  # one media server port for both calls
    for d in (a, b):
        _feed(tracker, d, [(T0, d.invite(T0), True), (T0 + 1, d.answer(T0 + 1), False)])
    server = bytes([192, 0, 2, 50])
    caller_a, caller_b = bytes([10, 1, 0, 10]), bytes([10, 1, 0, 11])
    to_a = tracker.match_flow(server, a.callee.media_port, caller_a, a.caller.media_port)
    to_b = tracker.match_flow(server, b.callee.media_port, caller_b, b.caller.media_port)
    assert to_a.call.call_id == a.call_id
    assert to_b.call.call_id == b.call_id
    # Unknown source to the shared port: the newest announcement.
    stranger = tracker.match_flow(bytes([203, 0, 113, 9]), 9999, server, a.callee.media_port)
    assert stranger.call.call_id == b.call_id
    assert tracker.match_flow(bytes([203, 0, 113, 9]), 1, bytes([203, 0, 113, 8]), 2) is None


def test_closing_a_call_forgets_its_media():
    tracker = CallTracker()
    d = make_dialog(9)
    _feed(tracker, d, [(T0, d.invite(T0), True), (T0 + 1, d.answer(T0 + 1), False)])
    caller, callee = bytes([10, 1, 0, 10]), bytes([192, 0, 2, 50])
    assert tracker.match_flow(caller, d.caller.media_port, callee, d.callee.media_port)
    tracker.close_all()
    assert tracker.flows == {}
    assert tracker.match_flow(caller, d.caller.media_port, callee, d.callee.media_port) is None


def test_tracking_state_stays_bounded_over_many_calls():
    """Finished calls leave nothing behind: not in the heap, not in reference cycles."""
    import gc

    from voiplog.calls._dialog import Dialog as _Call

    tracker = CallTracker(CallSettings(linger_s=1))
    for n in range(1500):
        d = make_dialog(n % 90 + 1)
        d.call_id = f"bounded-{n}"
        ts = T0 + n * 100_000
        _feed(tracker, d, [(ts, d.invite(ts), True), (ts + 10, d.answer(ts + 10), False)])
        caller, callee = bytes([10, 1, 0, 10]), bytes([192, 0, 2, 50])
        tracker.match_flow(caller, d.caller.media_port, callee, d.callee.media_port)
        _feed(tracker, d, [(ts + 20, d.request(ts + 20, "BYE", cseq=2), True)])
        tracker.expire(ts)
    assert tracker.open_calls <= 20
    assert len(tracker._heap) <= 4 * tracker.open_calls + 1024
    gc.disable()
    try:
        alive = sum(isinstance(o, _Call) for o in gc.get_objects())
    finally:
        gc.enable()
    assert alive <= tracker.open_calls + 1
