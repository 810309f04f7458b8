"""What messages inside a dialog add to a call beside its state: hold and
resume (an offer settled by its final answer, RFC 6337), a transfer (REFER,
RFC 3515 and 3892), and the hints that tie the legs of a B2BUA together
(X-CID, the IMS charging id, RFC 7989's Session-ID). The tracker calls these
once its transition table has placed the message.
"""

from __future__ import annotations

from voiplog.calls._dialog import Dialog, Hold, Refer, Side
from voiplog.errors import ParseError
from voiplog.sip import SessionDescription, SipMessage, charging_icid, parse_name_addr, session_id

# The headers `note_correlation` reads, by their canonical (lower-case) names.
_CORRELATION_HEADERS = frozenset({"x-cid", "p-charging-vector", "session-id"})


def settle_offer(call: Dialog, msg: SipMessage, status: int) -> None:
    """Follow hold and resume once the final answer to an offer of an answered
    call comes: a 2xx makes the offer's hold or resume happen (at the offer's
    time), anything else drops it."""
    offer = call.pending_offer
    if offer is None or (msg.cseq_method, msg.cseq_num, msg.from_tag) != (
        offer.method,
        offer.cseq,
        offer.from_tag,
    ):
        return
    call.pending_offer = None
    if status >= 300:
        return
    current = None
    for hold in reversed(call.holds):
        if hold.by is offer.by and hold.resumed_us is None:
            current = hold
            break
    if offer.holding and current is None:
        call.holds = [*call.holds, Hold(offer.by, offer.at_us)]
        call.flag("hold")
    elif not offer.holding and current is not None:
        current.resumed_us = offer.at_us


def note_refer(call: Dialog, msg: SipMessage, sender: Side) -> None:
    cseq = msg.cseq_num or 0
    if call.refer is not None and call.refer.cseq == cseq and call.refer.by is sender:
        return  # a retransmission
    referred_to = uri_of(msg.get("refer-to"))
    # Without a Referred-By (RFC 3892) the referrer is the REFER's sender.
    referred_by = uri_of(msg.get("referred-by")) or (msg.from_.uri if msg.from_ else None)
    call.refer = Refer(sender, referred_to, referred_by, cseq)


def note_correlation(call: Dialog, msg: SipMessage, side: Side) -> bool:
    """Keep the hints that tie this leg to the other legs of a B2BUA: X-CID,
    the IMS charging id (P-Charging-Vector icid-value) and the RFC 7989
    Session-ID pair. The first value seen of each is kept. Whether any
    hint is new."""
    found = None  # most messages carry none: one pass over the headers
    for header, value in msg.headers:
        if header in _CORRELATION_HEADERS:
            if found is None:
                found = {}
            found.setdefault(header, value)
    if found is None:
        return False
    x_cid = found.get("x-cid")
    icid = charging_icid(found.get("p-charging-vector"))
    sid = session_id(found.get("session-id"))
    if not x_cid and icid is None and sid is None:
        return False
    hints = call.correlation
    if hints is None:
        hints = call.correlation = {}
    known = len(hints)
    if x_cid:
        hints.setdefault("x_cid", x_cid)
    if icid is not None:
        hints.setdefault("icid", icid)
    if sid is not None:
        # RFC 7989: each side sends its own UUID first and the other's as remote.
        local, remote = sid
        ours, theirs = ("session_id", "session_id_remote")
        if side is Side.CALLEE:
            ours, theirs = theirs, ours
        hints.setdefault(ours, local)
        if remote is not None:
            hints.setdefault(theirs, remote)
    return len(hints) > known


def is_hold(sdp: SessionDescription) -> bool:
    """Whether an offer puts the other side on hold: its audio is sendonly or
    inactive, or sent to 0.0.0.0 (RFC 2543), as RFC 6337 §5.3 describes."""
    streams = [m for m in sdp.media if m.port != 0 and m.media == "audio"]
    if not streams:
        streams = [m for m in sdp.media if m.port != 0]
    return bool(streams) and all(
        m.direction in ("sendonly", "inactive") or m.connection == "0.0.0.0" for m in streams
    )


def uri_of(value: str | None) -> str | None:
    """The URI of a name-addr header value (Refer-To, Referred-By), else None."""
    if not value:
        return None
    try:
        return parse_name_addr(value).uri
    except ParseError:
        return None
