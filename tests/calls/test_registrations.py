"""The REGISTER tracker fed directly: parsed messages and packet time in, records out."""

from __future__ import annotations

import pytest

from tests.sipcraft import T0, make_registration
from voiplog.calls import CallSettings, CallTracker, EndReason, RegistrationTracker
from voiplog.cdr import RegistrationRecord
from voiplog.pipeline import Pipeline
from voiplog.sip import parse_message


def _request(tracker, reg, ts, payload):
    tracker.on_request(
        parse_message(payload), ts, reg.ua_ip, reg.ua_port, reg.registrar_ip, 5060, "udp"
    )


def _response(tracker, ts, payload):
    tracker.on_response(parse_message(payload), ts)


def test_a_final_answer_is_written_after_the_linger():
    tracker = RegistrationTracker(CallSettings(linger_s=10))
    reg = make_registration(1)
    _request(tracker, reg, T0, reg.register(T0, 1))
    _response(tracker, T0 + 1_000, reg.reply(T0 + 1_000, 200, 1))
    assert tracker.expire(T0 + 10_000_999) == []
    # A retransmitted REGISTER and its answer are absorbed while the chain lingers.
    _request(tracker, reg, T0 + 500_000, reg.register(T0 + 500_000, 1))
    _response(tracker, T0 + 501_000, reg.reply(T0 + 501_000, 200, 1))
    assert tracker.expire(T0 + 10_500_999) == []
    (record,) = tracker.expire(T0 + 10_501_000)
    assert (record.result, record.status, record.flags) == (
        "registered",
        200,
        ("register_retransmitted",),
    )
    assert tracker.open_chains == 0


def test_no_response_is_given_up_after_the_register_timeout():
    tracker = RegistrationTracker(CallSettings(register_timeout_s=32))
    reg = make_registration(2)
    _request(tracker, reg, T0, reg.register(T0, 1))
    _response(tracker, T0 + 10, reg.reply(T0 + 10, 100, 1))
    assert tracker.expire(T0 + 32_000_009) == []
    (record,) = tracker.expire(T0 + 32_000_010)
    assert (record.result, record.status, record.answered_at) == ("no_response", None, None)


def test_challenge_waits_for_the_retry_then_gives_up():
    tracker = RegistrationTracker(CallSettings(register_timeout_s=5))
    reg = make_registration(3)
    _request(tracker, reg, T0, reg.register(T0, 1))
    _response(tracker, T0 + 1_000, reg.reply(T0 + 1_000, 407, 1))
    assert tracker.expire(T0 + 5_000_999) == []
    (record,) = tracker.expire(T0 + 5_001_000)
    assert (record.result, record.status, record.flags) == ("challenged", 407, ())


def test_a_new_register_after_the_answer_starts_a_new_record():
    tracker = RegistrationTracker()
    reg = make_registration(4)
    _request(tracker, reg, T0, reg.register(T0, 1))
    _response(tracker, T0 + 1_000, reg.reply(T0 + 1_000, 200, 1))
    _request(tracker, reg, T0 + 2_000_000, reg.register(T0 + 2_000_000, 2, expires=0))
    (first,) = tracker.take_records()
    assert (first.result, first.expires_s) == ("registered", 3600)
    _response(tracker, T0 + 2_001_000, reg.reply(T0 + 2_001_000, 200, 2))
    (second,) = tracker.close_all()
    assert (second.result, second.expires_s, second.flags) == ("unregistered", 0, ())
    assert first.uid != second.uid


def test_an_unanswered_register_followed_by_another_is_counted():
    weird = []
    tracker = RegistrationTracker(on_weird=weird.append)
    reg = make_registration(5)
    _request(tracker, reg, T0, reg.register(T0, 1))
    _request(tracker, reg, T0 + 3_000_000, reg.register(T0 + 3_000_000, 2))
    (first,) = tracker.take_records()
    assert first.result == "no_response"
    assert weird == ["sip.register_unanswered"]


def test_a_challenge_answered_for_another_aor_is_not_a_retry():
    """Some UAs register several lines on one Call-ID: each AoR is its own chain."""
    tracker = RegistrationTracker()
    line1 = make_registration(6)
    line2 = make_registration(6)
    line2.user = "line2"
    _request(tracker, line1, T0, line1.register(T0, 1))
    _response(tracker, T0 + 1_000, line1.reply(T0 + 1_000, 401, 1))
    _request(tracker, line2, T0 + 2_000, line2.register(T0 + 2_000, 2))
    (first,) = tracker.take_records()
    assert (first.user, first.result, first.flags) == ("3006", "challenged", ())
    _response(tracker, T0 + 3_000, line2.reply(T0 + 3_000, 200, 2))
    (second,) = tracker.close_all()
    assert (second.user, second.result) == ("line2", "registered")


def test_responses_to_unseen_or_older_requests_are_ignored():
    tracker = RegistrationTracker()
    reg = make_registration(7)
    _response(tracker, T0, reg.reply(T0, 200, 1))
    assert tracker.open_chains == 0
    _request(tracker, reg, T0 + 10, reg.register(T0 + 10, 5))
    _response(tracker, T0 + 20, reg.reply(T0 + 20, 200, 4))
    (record,) = tracker.close_all()
    assert (record.result, record.flags) == ("no_response", ("end_of_input",))


def test_open_chains_are_bounded_and_evicted_chains_are_written():
    weird = []
    tracker = RegistrationTracker(CallSettings(max_open_registrations=3), on_weird=weird.append)
    for n in range(1, 6):
        reg = make_registration(n)
        _request(tracker, reg, T0 + n, reg.register(T0 + n, 1))
    assert tracker.open_chains == 3
    evicted = tracker.take_records()
    assert [r.call_id for r in evicted] == ["reg-1@craft.example", "reg-2@craft.example"]
    assert all(r.flags == ("evicted",) for r in evicted)
    assert weird == ["registrations.evicted"] * 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Digest username="bob", realm="x"', "bob"),
        ('Digest realm="x",username="b\\"ob"', 'b"ob'),
        ("Digest username=carol,realm=x", "carol"),
        ('Digest realm="x"', None),
        ("Basic Ym9iOnB3", None),
    ],
)
def test_auth_user_from_the_credentials(value, expected):
    tracker = RegistrationTracker()
    reg = make_registration(8)
    payload = reg.register(T0, 1, extra=[f"Authorization: {value}"])
    _request(tracker, reg, T0, payload)
    (record,) = tracker.close_all()
    assert record.auth_user == expected


def test_query_without_contact_and_domain_contact():
    tracker = RegistrationTracker()
    query, named = make_registration(9), make_registration(10)
    _request(tracker, query, T0, query.register(T0, 1, contacts=[], expires=None))
    _response(
        tracker, T0 + 5, query.reply(T0 + 5, 200, 1, contacts=["<sip:a@10.0.0.1>;expires=60"])
    )
    contact = "<sip:3010@pbx.example.net:5070>;expires=120"
    _request(tracker, named, T0 + 10, named.register(T0 + 10, 1, contacts=[contact]))
    _response(tracker, T0 + 15, named.reply(T0 + 15, 200, 1, contacts=[contact]))
    first, second = tracker.close_all()
    assert (first.contact_uri, first.expires_s, first.flags) == (None, None, ("query",))
    # Only an address is an address: a host name gives neither IP nor port.
    assert (second.contact_uri, second.contact_ip, second.contact_port, second.expires_s) == (
        "sip:3010@pbx.example.net:5070",
        None,
        None,
        120,
    )


def test_the_call_tracker_routes_register_and_writes_both_kinds():
    calls = CallTracker()
    reg = make_registration(11)
    msg = parse_message(reg.register(T0, 1))
    calls.on_sip(msg, T0, reg.ua_ip, reg.ua_port, reg.registrar_ip, 5060, "tcp")
    assert calls.open_calls == 0 and calls.registrations.open_chains == 1
    calls.on_sip(parse_message(reg.reply(T0 + 9, 200, 1)), T0 + 9, reg.registrar_ip, 5060, "", 0)
    (record,) = calls.close_all(EndReason.SHUTDOWN)
    assert isinstance(record, RegistrationRecord)
    assert (record.transport, record.result, record.flags) == ("tcp", "registered", ())


def test_pipeline_counts_registrations_apart_from_calls():
    from tests.sipcraft import sorted_frames

    written = []
    pipeline = Pipeline(written.append)
    reg = make_registration(12)
    reg.register(T0, 1)
    reg.reply(T0 + 1_000, 401, 1)
    pipeline.feed((ts, 1, frame) for ts, frame in sorted_frames(reg))
    pipeline.finish()
    assert pipeline.stats.registrations == 1
    assert pipeline.stats.records == 0
    assert not pipeline.stats.dispositions
    assert [r.result for r in written] == ["challenged"]


def test_transition_table_is_total():
    from voiplog.calls._registrations import _TRANSITIONS, _Input, _State

    assert set(_TRANSITIONS) == {(state, event) for state in _State for event in _Input}


def _chain_in(state):
    """A tracker holding one chain of `reg` (CSeq 1, branch b1) in `state`."""
    from voiplog.calls._registrations import _State

    tracker, reg = RegistrationTracker(), make_registration(20)
    _request(tracker, reg, T0, reg.register(T0, 1, branch="b1"))
    final = {_State.PENDING: None, _State.RETRY_EXPECTED: 401, _State.DONE: 200}[state]
    if final is not None:
        _response(tracker, T0 + 1, reg.reply(T0 + 1, final, 1, branch="b1"))
    return tracker, reg


def _send(tracker, reg, event):
    from voiplog.calls._registrations import _Input

    ts = T0 + 10
    if event is _Input.SAME_REQUEST:
        _request(tracker, reg, ts, reg.register(ts, 1, branch="b1"))
    elif event is _Input.NEXT_REQUEST:
        _request(tracker, reg, ts, reg.register(ts, 1, branch="b2"))
    elif event is _Input.OTHER_AOR:
        other = make_registration(20)
        other.user = "someone-else"
        _request(tracker, other, ts, other.register(ts, 2, branch="b3"))
    else:
        status = {_Input.PROVISIONAL: 100, _Input.RETRYABLE: 407, _Input.FINAL: 404}[event]
        _response(tracker, ts, reg.reply(ts, status, 1, branch="b1"))


def test_every_state_and_input_does_what_the_table_says():
    from voiplog.calls._registrations import _TRANSITIONS, _Action

    for (state, event), (action, next_state) in _TRANSITIONS.items():
        tracker, reg = _chain_in(state)
        before = tracker._chains[reg.call_id]
        status_before = before.status
        _send(tracker, reg, event)
        after = tracker._chains[reg.call_id]
        written = tracker.take_records()
        where = f"{state} + {event}"
        if action is _Action.REPLACE:
            assert after is not before and len(written) == 1, where
            continue
        assert after is before and written == [], where
        assert after.state is next_state, where
        if action is _Action.RETRANSMITTED:
            assert "register_retransmitted" in after.flags, where
        elif action is _Action.RETRY:
            assert after.attempts == 2 and after.status is None, where
        elif action is _Action.ANSWER:
            assert after.status in (407, 404), where
        else:
            assert after.status == status_before, where


def test_contact_expires_zero_is_a_removal_whatever_the_expires_header():
    tracker = RegistrationTracker()
    reg = make_registration(21)
    removal = f"{reg.default_contact()};expires=0"
    _request(tracker, reg, T0, reg.register(T0, 4, contacts=[removal], expires=3600))
    # The answer lists the bindings that remain: another device's, not this one.
    remaining = ["<sip:3021@10.9.9.9:5060>;expires=1200"]
    _response(tracker, T0 + 10, reg.reply(T0 + 10, 200, 4, contacts=remaining))
    (record,) = tracker.close_all()
    assert (record.result, record.expires_s, record.contact_ip) == ("unregistered", 0, reg.ua_ip)


def test_granted_expiry_falls_back_to_the_request_when_the_answer_says_nothing():
    tracker = RegistrationTracker()
    reg = make_registration(22)
    _request(tracker, reg, T0, reg.register(T0, 1, expires=900))
    _response(tracker, T0 + 10, reg.reply(T0 + 10, 200, 1))
    (record,) = tracker.close_all()
    assert (record.result, record.expires_s) == ("registered", 900)


def _forwarded(payload: bytes, branch: str) -> bytes:
    """The message as a proxy forwards it: its own Via added on top."""
    start, rest = payload.split(b"\r\n", 1)
    return start + f"\r\nVia: SIP/2.0/UDP 192.0.2.5:5060;branch={branch}\r\n".encode() + rest


def test_register_seen_on_both_sides_of_a_proxy_is_one_chain():
    tracker = RegistrationTracker()
    reg = make_registration(23)
    proxy, registrar = "192.0.2.5", "192.0.2.10"

    def upstream(ts, payload, hop):
        src, dst = (reg.ua_ip, proxy) if hop == 1 else (proxy, registrar)
        port = reg.ua_port if hop == 1 else 5060
        tracker.on_request(parse_message(payload), ts, src, port, dst, 5060, "udp")

    first = reg.register(T0, 1, branch="ua-1")
    upstream(T0, first, 1)
    upstream(T0 + 100, _forwarded(first, "px-1"), 2)
    challenge = reg.reply(T0 + 200, 401, 1, branch="ua-1")
    _response(tracker, T0 + 200, _forwarded(challenge, "px-1"))
    _response(tracker, T0 + 300, challenge)
    retry = reg.register(T0 + 400, 2, auth_user=reg.user, branch="ua-2")
    upstream(T0 + 400, retry, 1)
    upstream(T0 + 500, _forwarded(retry, "px-2"), 2)
    ok = reg.reply(T0 + 600, 200, 2, branch="ua-2")
    _response(tracker, T0 + 600, _forwarded(ok, "px-2"))
    _response(tracker, T0 + 700, ok)
    (record,) = tracker.close_all()
    assert (record.source_ip, record.registrar_ip) == (reg.ua_ip, proxy)  # the first hop
    assert (record.result, record.answered_at) == ("registered", "2023-11-14T22:13:20.000600Z")
    assert record.flags == ("auth_challenged", "register_forwarded")
    assert record.extra == {"attempts": 2}
