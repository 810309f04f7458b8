"""One call seen at two hops: both sides of a stateful proxy in one capture.

The proxy keeps the Call-ID, adds its Via to what it forwards, challenges with
407 under a To tag of its own, times branches out with its own 408 and turns a
503 into 500 (RFC 3261 §16.7). The record says what the caller experienced.
"""

from __future__ import annotations

import pytest

from tests.sipcraft import T0, Dialog, make_dialog
from voiplog.calls import CallTracker
from voiplog.sip import parse_message

PROXY = ("10.9.9.9", 5060)


def _via_added(payload: bytes, branch: str) -> bytes:
    """The message with a proxy's Via on top (a request it forwards, or a response
    on the proxy's downstream hop)."""
    start, rest = payload.split(b"\r\n", 1)
    return start + f"\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch={branch}\r\n".encode() + rest


class _TwoHops:
    """Messages of one dialog fed on the caller's hop (caller <-> proxy) and on the
    callee's (proxy <-> callee), 10 ms apart."""

    def __init__(self, d: Dialog) -> None:
        self.d = d
        self.tracker = CallTracker()
        self.ts = T0
        self.caller = (d.caller.ip, d.caller.port)
        self.callee = (d.callee.ip, d.callee.port)

    def _feed(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> int:
        self.ts += 10_000
        self.tracker.on_sip(parse_message(payload), self.ts, *src, *dst)
        return self.ts

    def up(self, payload: bytes) -> int:
        """Caller -> proxy."""
        return self._feed(payload, self.caller, PROXY)

    def down(self, payload: bytes, branch: str = "z9hG4bKpx1") -> int:
        """Proxy -> callee, the request forwarded."""
        return self._feed(_via_added(payload, branch), PROXY, self.callee)

    def back(self, payload: bytes, branch: str = "z9hG4bKpx1") -> int:
        """Callee -> proxy, a response on the callee's hop."""
        return self._feed(_via_added(payload, branch), self.callee, PROXY)

    def to_caller(self, payload: bytes) -> int:
        """Proxy -> caller, a response relayed or of the proxy's own."""
        return self._feed(payload, PROXY, self.caller)

    def record(self):
        (record,) = self.tracker.close_all()
        return record


def test_a_challenged_then_answered_call_is_not_forked():
    """The proxy's 407 carries a To tag of its own; once the INVITE is sent again
    with credentials, that tag is no branch of the call."""
    h = _TwoHops(make_dialog(1))
    d = h.d
    h.up(d.invite(0))
    h.to_caller(d.response(0, 407, to_tag="proxy-challenge"))
    h.up(d.request(0, "ACK", cseq=1, in_dialog=False))
    d.cseq = 2
    retry = d.invite(0, extra=['Proxy-Authorization: Digest username="1001", nonce="n"'])
    h.up(retry)
    h.down(retry, "z9hG4bKpx2")
    h.back(d.response(0, 180), "z9hG4bKpx2")
    rang = h.to_caller(d.response(0, 180))
    h.back(d.answer(0), "z9hG4bKpx2")
    answered = h.to_caller(d.answer(0))
    h.up(d.ack(0))
    h.down(d.ack(0), "z9hG4bKpx3")
    record = h.record()
    assert record.disposition == "answered"
    assert record.final_status == 200
    assert "forked" not in record.flags
    assert {"auth_challenged", "invite_forwarded"} <= set(record.flags)
    # The times the caller was rung and answered: on its own hop, 10 ms after
    # the callee's hop saw them.
    assert record.ringing_at == _at(rang)
    assert record.answered_at == _at(answered)


def _at(ts: int) -> str:
    return f"2023-11-14T22:13:20.{ts - T0:06d}Z"


@pytest.mark.parametrize("caller_hop_first", [False, True])
def test_ringing_and_answer_times_are_the_callers(caller_hop_first):
    """Whichever hop a mirror delivers first, the record has the times of the
    responses on the caller's hop; the callee hop's come 10 ms apart."""
    h = _TwoHops(make_dialog(9))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.down(invite)
    times = {}
    for name, payload in (("rang", d.response(0, 180)), ("answered", d.answer(0))):
        if caller_hop_first:
            times[name] = h.to_caller(payload)
            h.back(payload)
        else:
            h.back(payload)
            times[name] = h.to_caller(payload)
    h.up(d.ack(0))
    h.down(d.ack(0), "z9hG4bKpx3")
    ended = h.up(d.request(0, "BYE", cseq=2))
    h.down(d.request(0, "BYE", cseq=2), "z9hG4bKpx4")
    record = h.record()
    assert record.ringing_at == _at(times["rang"])
    assert record.answered_at == _at(times["answered"])
    assert record.ended_at == _at(ended)
    assert record.final_status == 200


def test_the_proxys_own_timeout_is_not_a_fork():
    """The callee rings; the proxy's INVITE timer fires: it cancels the branch and
    answers the caller 408 under its own To tag. The caller never cancelled."""
    h = _TwoHops(make_dialog(2))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.down(invite)
    h.back(d.response(0, 180))
    h.to_caller(d.response(0, 180))
    h.down(d.request(0, "CANCEL", in_dialog=False))
    h.back(d.response(0, 200, method="CANCEL"))
    h.back(d.response(0, 487))
    timed_out = h.to_caller(d.response(0, 408, to_tag="proxy-timer"))
    h.up(d.request(0, "ACK", in_dialog=False))
    record = h.record()
    assert "forked" not in record.flags
    assert record.final_status == 408
    assert record.disposition == "no_answer"
    assert record.ended_by == "callee"
    assert record.ended_at == f"2023-11-14T22:13:20.{timed_out - T0:06d}Z"


@pytest.mark.parametrize("relayed_tag", [None, "proxy-own"])
def test_a_503_relayed_as_500_is_recorded_as_500(relayed_tag):
    """RFC 3261 §16.7: a proxy must not forward a 503; the caller got 500."""
    h = _TwoHops(make_dialog(3))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.down(invite)
    h.back(d.response(0, 100))
    h.back(d.response(0, 503))
    h.down(d.request(0, "ACK", in_dialog=False))
    relayed = h.to_caller(d.response(0, 500, to_tag=relayed_tag))
    h.up(d.request(0, "ACK", in_dialog=False))
    record = h.record()
    assert record.final_status == 500
    assert record.disposition == "failed"
    assert record.ended_at == f"2023-11-14T22:13:20.{relayed - T0:06d}Z"
    assert "forked" not in record.flags


def test_the_downstream_copy_captured_first_still_ends_with_what_the_caller_got():
    """Mirrored links may deliver the callee's hop first: the hop nearest the
    caller is the INVITE with the fewest Vias, whichever came first."""
    h = _TwoHops(make_dialog(4))
    d = h.d
    invite = d.invite(0)
    h.down(invite)
    h.up(invite)
    h.back(d.response(0, 503))
    h.to_caller(d.response(0, 500))
    assert h.record().final_status == 500


def test_two_branches_that_ring_are_forked():
    """Parallel forking: two callee-side branches establish early dialogs."""
    h = _TwoHops(make_dialog(5))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.down(invite)
    h.back(d.response(0, 180, to_tag="phone-a"))
    h.to_caller(d.response(0, 180, to_tag="phone-a"))
    h.back(d.response(0, 180, to_tag="phone-b"))
    h.to_caller(d.response(0, 180, to_tag="phone-b"))
    h.back(d.answer(0, to_tag="phone-b"))
    h.to_caller(d.answer(0, to_tag="phone-b"))
    record = h.record()
    assert "forked" in record.flags
    assert record.disposition == "answered"


def test_the_callers_cancel_relayed_by_the_proxy_is_one_cancel():
    h = _TwoHops(make_dialog(6))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.down(invite)
    h.back(d.response(0, 180))
    h.to_caller(d.response(0, 180))
    cancelled = h.up(d.request(0, "CANCEL", in_dialog=False))
    h.down(d.request(0, "CANCEL", in_dialog=False))
    h.back(d.response(0, 487))
    h.to_caller(d.response(0, 487))
    record = h.record()
    assert record.disposition == "cancelled"
    assert record.ended_by == "caller"
    assert record.ended_at == f"2023-11-14T22:13:20.{cancelled - T0:06d}Z"


def test_a_challenge_not_answered_with_credentials_is_no_branch_either():
    """Single hop: a 407 and a 180 of another tag are one branch that rang."""
    tracker = CallTracker()
    d = make_dialog(7)
    for n, (payload, from_caller) in enumerate(
        [(d.invite(0), True), (d.response(0, 180), False), (d.response(0, 486), False)]
    ):
        src, dst = (d.caller, d.callee) if from_caller else (d.callee, d.caller)
        tracker.on_sip(parse_message(payload), T0 + n, src.ip, src.port, dst.ip, dst.port)
    (record,) = tracker.close_all()
    assert "forked" not in record.flags


def test_a_relay_rewriting_the_to_tag_on_each_side_is_not_a_fork():
    """An SBC that keeps the Call-ID but puts its own Via and To tag on each side
    (seen in a real capture): one tag toward the SBC, another toward the caller."""
    h = _TwoHops(make_dialog(8))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h._feed(invite.replace(b"branch=z9hG4bK", b"branch=z9hG4bKsbc"), PROXY, h.callee)
    h.back(d.response(0, 180, to_tag="callee-tag"))
    rang = h.to_caller(d.response(0, 180, to_tag="sbc-tag"))
    h.back(d.answer(0, to_tag="callee-tag"))
    answered = h.to_caller(d.answer(0, to_tag="sbc-tag"))
    record = h.record()
    assert record.disposition == "answered"
    assert "forked" not in record.flags
    # The INVITE relayed under the SBC's own Via is no retransmission of the caller's.
    assert "invite_forwarded" in record.flags
    assert "invite_retransmitted" not in record.flags
    assert (record.ringing_at, record.answered_at) == (_at(rang), _at(answered))


def test_an_invite_sent_again_with_a_new_branch_by_the_caller_is_a_retransmission():
    """Only a relay's copy is a forwarded INVITE: the caller's own INVITE again,
    even under another branch, is not."""
    h = _TwoHops(make_dialog(10))
    d = h.d
    invite = d.invite(0)
    h.up(invite)
    h.up(invite.replace(b"branch=z9hG4bK", b"branch=z9hG4bKagain"))
    h.to_caller(d.response(0, 486))
    record = h.record()
    assert "invite_retransmitted" in record.flags
    assert "invite_forwarded" not in record.flags
