"""End to end: one call captured on both sides of a stateful proxy.

The proxy (10.9.9.9) keeps the Call-ID and adds its Via to what it forwards;
the record says what the caller experienced, whatever the callee's side saw.
"""

from __future__ import annotations

import pytest

from tests.sipcraft import T0, make_dialog, udp_frame
from voiplog.cdr import format_ts

PROXY = ("10.9.9.9", 5060)


def _via_added(payload: bytes, branch: str) -> bytes:
    start, rest = payload.split(b"\r\n", 1)
    return start + f"\r\nVia: SIP/2.0/UDP 10.9.9.9:5060;branch={branch}\r\n".encode() + rest


class _Capture:
    """Frames of one dialog on the caller's hop and on the callee's, 10 ms apart."""

    def __init__(self, n: int) -> None:
        self.d = make_dialog(n)
        self.frames: list[tuple[int, bytes]] = []
        self.ts = T0

    def _add(self, payload: bytes, src: tuple[str, int], dst: tuple[str, int]) -> int:
        self.ts += 10_000
        self.frames.append((self.ts, udp_frame(*src, *dst, payload)))
        return self.ts

    def up(self, payload: bytes) -> int:
        return self._add(payload, (self.d.caller.ip, self.d.caller.port), PROXY)

    def down(self, payload: bytes, branch: str = "z9hG4bKpx1") -> int:
        return self._add(_via_added(payload, branch), PROXY, (self.d.callee.ip, self.d.callee.port))

    def back(self, payload: bytes, branch: str = "z9hG4bKpx1") -> int:
        return self._add(_via_added(payload, branch), (self.d.callee.ip, self.d.callee.port), PROXY)

    def to_caller(self, payload: bytes) -> int:
        return self._add(payload, PROXY, (self.d.caller.ip, self.d.caller.port))


def test_challenged_answered_call_through_a_proxy(replayer):
    c = _Capture(40)
    d = c.d
    c.up(d.invite(0))
    c.to_caller(d.response(0, 407, to_tag="px-407"))
    c.up(d.request(0, "ACK", in_dialog=False))
    d.cseq = 2
    retry = d.invite(0, extra=['Proxy-Authorization: Digest username="1040", nonce="x"'])
    c.up(retry)
    c.down(retry, "z9hG4bKpx2")
    c.back(d.response(0, 180), "z9hG4bKpx2")
    c.to_caller(d.response(0, 180))
    c.back(d.answer(0), "z9hG4bKpx2")
    c.to_caller(d.answer(0))
    c.up(d.ack(0))
    c.down(d.ack(0), "z9hG4bKpx3")
    d.cseq = 3
    bye = c.up(d.request(0, "BYE"))
    c.down(d.request(0, "BYE"), "z9hG4bKpx4")
    (rec,) = replayer.records(c.frames)
    assert rec["disposition"] == "answered"
    assert rec["flags"] == ["auth_challenged", "invite_forwarded"]
    assert rec["ended_at"] == format_ts(bye)


@pytest.mark.parametrize(
    ("callee_final", "caller_final", "disposition"),
    [(503, 500, "failed"), (487, 408, "no_answer")],
)
def test_the_final_answer_is_the_one_the_caller_received(
    replayer, callee_final, caller_final, disposition
):
    c = _Capture(41)
    d = c.d
    invite = d.invite(0)
    c.up(invite)
    c.down(invite)
    c.back(d.response(0, 180))
    c.to_caller(d.response(0, 180))
    if callee_final == 487:  # the proxy's INVITE timer: it cancels the branch
        c.down(d.request(0, "CANCEL", in_dialog=False))
    c.back(d.response(0, callee_final))
    c.down(d.request(0, "ACK", in_dialog=False))
    received = c.to_caller(d.response(0, caller_final, to_tag="px-own"))
    c.up(d.request(0, "ACK", in_dialog=False))
    (rec,) = replayer.records(c.frames)
    assert (rec["final_status"], rec["disposition"]) == (caller_final, disposition)
    assert rec["ended_at"] == format_ts(received)
    assert rec["ended_by"] == "callee"
    assert rec["flags"] == ["invite_forwarded"]
