"""Call flows through the tracker without packets: hold, forks, REFER, correlation hints."""

from __future__ import annotations

import pytest

from tests.sipcraft import T0, make_dialog
from voiplog.calls import CallTracker
from voiplog.sip import parse_message


def _feed(tracker, dialog, *steps):
    """Each step is (payload, from_caller); packets 10 ms apart from T0."""
    for n, (payload, from_caller) in enumerate(steps):
        ts = T0 + n * 10_000
        src, dst = (dialog.caller, dialog.callee) if from_caller else (dialog.callee, dialog.caller)
        tracker.on_sip(parse_message(payload), ts, src.ip, src.port, dst.ip, dst.port)


def _answered(d):
    return [(d.invite(0), True), (d.answer(0), False), (d.ack(0), True)]


def _record(tracker):
    (record,) = tracker.close_all()
    return record


@pytest.mark.parametrize(
    ("sdp_kw", "holds"),
    [
        ({"direction": "sendonly"}, True),
        ({"direction": "inactive"}, True),
        ({"address": "0.0.0.0"}, True),
        ({"direction": "recvonly"}, False),
        ({"direction": "sendrecv"}, False),
        ({"port": 0}, False),  # a rejected stream is not a hold
    ],
)
def test_what_counts_as_a_hold_offer(sdp_kw, holds):
    tracker = CallTracker()
    d = make_dialog(1)
    offer = d.request(0, "INVITE", cseq=2, sdp=d._sdp(d.caller, **sdp_kw))
    accepted = d.response(0, 200, cseq=2, sdp=d._sdp(d.callee))
    _feed(tracker, d, *_answered(d), (offer, True), (accepted, False))
    record = _record(tracker)
    assert ("hold" in record.flags) is holds
    assert ("holds" in record.extra) is holds


@pytest.mark.parametrize("method", ["INVITE", "UPDATE"])
def test_a_refused_hold_offer_changes_nothing(method):
    tracker = CallTracker()
    d = make_dialog(9)
    hold = d._sdp(d.caller, direction="sendonly")
    _feed(
        tracker,
        d,
        *_answered(d),
        (d.request(0, method, cseq=2, sdp=hold), True),
        (d.response(0, 491, method=method, cseq=2), False),  # glare: request pending
        (d.request(0, method, cseq=3, sdp=d._sdp(d.caller, direction="inactive")), True),
        (d.response(0, 200, method=method, cseq=3, sdp=d._sdp(d.callee)), False),
    )
    record = _record(tracker)
    assert record.extra["holds"] == [
        {"by": "caller", "held_at": "2023-11-14T22:13:20.050000Z", "resumed_at": None}
    ]


def test_an_offer_before_the_answer_is_not_a_hold():
    tracker = CallTracker()
    d = make_dialog(2)
    update = d.request(0, "UPDATE", cseq=2, sdp=d._sdp(d.caller, direction="sendonly"))
    _feed(tracker, d, (d.invite(0), True), (d.response(0, 180), False), (update, True))
    assert "hold" not in _record(tracker).flags


def test_callee_reinvite_with_the_initial_cseq_is_no_fork():
    tracker = CallTracker()
    d = make_dialog(3)
    reinvite = d.request(0, "INVITE", from_caller=False, cseq=1, sdp=d._sdp(d.callee, port=50100))
    ok = d.response(0, 200, cseq=1, to_caller=False, sdp=d._sdp(d.caller))
    _feed(tracker, d, *_answered(d), (reinvite, False), (ok, True))
    record = _record(tracker)
    assert record.flags == ("end_of_input", "no_bye", "reinvite")
    assert record.answered_at is not None and "other_answers" not in record.extra


def test_a_bye_with_an_unseen_tag_still_ends_the_call():
    """Only a tag seen answering marks another fork: a stray tag is not enough to
    keep a call open past its BYE."""
    tracker = CallTracker()
    d = make_dialog(4)
    steps = [(d.invite(0), True), (d.response(0, 200, to_tag="fork1", sdp=d._sdp(d.callee)), False)]
    d.callee.tag = "unknown"
    steps.append((d.request(0, "BYE", cseq=2), True))
    _feed(tracker, d, *steps)
    record = _record(tracker)
    assert record.ended_at == "2023-11-14T22:13:20.020000Z"
    assert record.ended_by == "caller"


def test_a_second_answer_is_noted_once_and_its_bye_ignored():
    tracker = CallTracker()
    d = make_dialog(5)
    first = d.response(0, 200, to_tag="one", sdp=d._sdp(d.callee))
    second = d.response(0, 200, to_tag="two", sdp=d._sdp(d.callee, port=52000))
    d.callee.tag = "two"
    release = d.request(0, "BYE", cseq=2)
    _feed(tracker, d, (d.invite(0), True), (first, False), (second, False), (second, False))
    _feed(tracker, d, (release, True))
    assert tracker.open_calls == 1
    record = _record(tracker)
    assert record.extra["other_answers"] == [
        {"to_tag": "two", "status": 200, "at": "2023-11-14T22:13:20.020000Z"}
    ]
    assert "no_bye" in record.flags


def test_refer_retransmission_and_unrelated_responses():
    tracker = CallTracker()
    d = make_dialog(6)
    refer = d.request(0, "REFER", cseq=2, extra=["Refer-To: sip:7000@192.0.2.70;user=phone"])
    _feed(
        tracker,
        d,
        *_answered(d),
        (refer, True),
        (refer, True),
        (d.response(0, 481, method="REFER", cseq=9), False),
        (d.response(0, 202, method="REFER", cseq=2), False),
        (d.response(0, 500, method="REFER", cseq=2), False),
    )
    record = _record(tracker)
    assert record.extra["referred_to"] == "sip:7000@192.0.2.70"
    assert record.extra["transfer"] == {"by": "caller", "status": 202}
    assert "transferred" in record.flags


def test_correlation_taken_from_a_later_response():
    tracker = CallTracker()
    d = make_dialog(7)
    ringing = d.response(0, 180)
    answer = d.answer(0, extra=["P-Charging-Vector: icid-value=abc123", "X-CID: other-leg@b2bua"])
    _feed(tracker, d, (d.invite(0), True), (ringing, False), (answer, False))
    assert _record(tracker).extra["correlation"] == {
        "x_cid": "other-leg@b2bua",
        "icid": "abc123",
        "session_id": None,
        "session_id_remote": None,
    }


def test_a_call_without_flow_details_has_no_extra_keys():
    tracker = CallTracker()
    d = make_dialog(8)
    _feed(tracker, d, *_answered(d))
    record = _record(tracker)
    # Every call is a session of its own (one leg) unless linked to others.
    assert record.extra == {"session_uid": record.uid, "session_link": None}


def test_the_answer_relayed_on_another_leg_under_another_tag_is_no_fork():
    """A proxy captured on both legs, rewriting the To tag on the way back: its
    2xx reaches the caller under a tag of its own, and the caller's BYE with
    that tag ends the call (seen in a real capture, sngrep's ipv6frag)."""
    tracker = CallTracker()
    d = make_dialog(6)
    proxy = ("10.9.9.9", 5060)
    caller, callee = (d.caller.ip, d.caller.port), (d.callee.ip, d.callee.port)
    invite = d.invite(0)
    early_a = d.response(0, 183, to_tag="a", sdp=d._sdp(d.callee))
    early_b = d.response(0, 183, to_tag="b", sdp=d._sdp(d.callee))
    ok_b = d.response(0, 200, to_tag="b", sdp=d._sdp(d.callee))  # callee -> proxy
    ok_a = d.response(0, 200, to_tag="a", sdp=d._sdp(d.callee))  # proxy -> caller
    d.callee.tag = "a"
    bye = d.request(0, "BYE", cseq=2)
    legs = [
        (invite, caller, proxy),
        (invite, proxy, callee),
        (early_a, callee, proxy),
        (early_a, proxy, caller),
        (early_b, callee, proxy),
        (early_b, proxy, caller),
        (ok_b, callee, proxy),
        (ok_a, proxy, caller),
        (bye, caller, proxy),
    ]
    for n, (payload, (sip, sport), (dip, dport)) in enumerate(legs):
        tracker.on_sip(parse_message(payload), T0 + n * 10_000, sip, sport, dip, dport)
    record = _record(tracker)
    assert record.disposition == "answered"
    assert record.ended_by == "caller"
    assert record.ended_at == "2023-11-14T22:13:20.080000Z"
    assert "no_bye" not in record.flags
    assert "other_answers" not in record.extra


def _via_added(payload: bytes, branch: str) -> bytes:
    """The request as a proxy forwards it (RFC 3261 §16.6): its own Via on top."""
    start, rest = payload.split(b"\r\n", 1)
    return start + f"\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch={branch}\r\n".encode() + rest


@pytest.mark.parametrize("upstream_first", [True, False])
def test_an_invite_seen_on_both_sides_of_a_proxy_is_forwarded_not_retransmitted(upstream_first):
    tracker = CallTracker()
    d = make_dialog(10)
    proxy = ("10.9.9.9", 5060)
    caller, callee = (d.caller.ip, d.caller.port), (d.callee.ip, d.callee.port)
    invite = d.invite(0)
    legs = [(invite, caller, proxy), (_via_added(invite, "z9hG4bKproxy1"), proxy, callee)]
    if not upstream_first:
        legs.reverse()  # mirrored links can deliver the downstream copy first
    for n, (payload, (sip, sport), (dip, dport)) in enumerate(legs):
        tracker.on_sip(parse_message(payload), T0 + n * 1_000, sip, sport, dip, dport)
    record = _record(tracker)
    assert "invite_forwarded" in record.flags
    assert "invite_retransmitted" not in record.flags


def test_an_invite_sent_again_on_the_same_hop_is_retransmitted():
    tracker = CallTracker()
    d = make_dialog(11)
    invite = d.invite(0)
    _feed(tracker, d, (invite, True), (invite, True))
    record = _record(tracker)
    assert "invite_retransmitted" in record.flags
    assert "invite_forwarded" not in record.flags
