"""A call seen at several hops (both sides of a proxy, in one capture or feed):
where a message went, whether a request is one relayed by a proxy, and whether
an endpoint is beyond the caller's own hop. The tracker reports what the caller
experienced: its hop is the INVITE copy with the fewest Vias (`origin_ip`).
"""

from __future__ import annotations

from typing import NamedTuple

from voiplog.calls._dialog import Dialog


class Hop(NamedTuple):
    """Where a SIP message went: its packet's endpoints and transport."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str


def another_hop(branches: list[str], hop: Hop, call: Dialog) -> bool:
    """Whether an INVITE with Via `branches`, of the CSeq of the call's INVITE, is
    that INVITE on another hop rather than a retransmission (which repeats its
    topmost branch):
    - relayed by a proxy: another topmost branch, the transaction's own below it
      (RFC 3261 §16.6 step 8);
    - relayed by an SBC or B2BUA that keeps the Call-ID but replaces the Via: no
      branch of the first, and sent from another address than the caller's.
    """
    first = call.invite_branches
    if not branches or not first or branches[0] == first[0]:
        return False
    if set(branches).isdisjoint(first):
        return (hop.src_ip, hop.src_port) != (call.origin_ip, call.origin_port)
    return True


def beyond_caller(call: Dialog, ip: str, port: int) -> bool:
    """Whether an endpoint of a message of a call seen at several hops is not
    the caller on the hop nearest it (`origin_ip`): a proxy's, or the callee's.
    Always False for a call seen at one hop."""
    if not call.relayed:
        return False
    if ip != call.origin_ip:
        return True
    # The caller's address: the port tells only when the proxy shares it
    # (a UDP caller may be answered on its Via port rather than its source's).
    return port != call.origin_port and ip == call.callee_ip
