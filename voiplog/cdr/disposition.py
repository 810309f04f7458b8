"""How a call ended, in the words its record uses.

`Disposition` and `judge` are DESIGN.md's disposition table, judged from the
final answer to a call's initial INVITE; `judge` is the only place it lives.
Records without SIP (media sessions, SIP-over-TLS connections, app calls)
have a disposition of their own kind. `EndReason` is why a tracker wrote a
call or a REGISTER chain before it was over, the flag its record then
carries; `EndedBy` who or what ended a call, as its record says.
"""

from __future__ import annotations

from enum import StrEnum


class Disposition(StrEnum):
    ANSWERED = "answered"
    BUSY = "busy"
    CANCELLED = "cancelled"
    NO_ANSWER = "no_answer"
    UNAUTHORIZED = "unauthorized"
    REDIRECTED = "redirected"
    REJECTED = "rejected"
    FAILED = "failed"
    NO_FINAL_RESPONSE = "no_final_response"
    # Records without readable SIP:
    MEDIA_SESSION = "media_session"  # RTP, SRTP, STUN/ICE, DTLS, TURN of no SIP call
    TLS_SESSION = "tls_session"  # a SIP-over-TLS connection
    APP_CALL = "app_call"  # the media flows of one call of a named application


class EndReason(StrEnum):
    """Why a call, a media session or a REGISTER chain was written before it was
    over (the flag its record carries)."""

    TIMEOUT = "timeout"
    EVICTED = "evicted"
    END_OF_INPUT = "end_of_input"
    SHUTDOWN = "shutdown"


class EndedBy(StrEnum):
    """Who ended a call (a BYE's or a CANCEL's sender), or why it was written before
    its end was seen."""

    CALLER = "caller"
    CALLEE = "callee"
    TIMEOUT = "timeout"
    SHUTDOWN = "shutdown"


class RecordKind(StrEnum):
    """What a record is of (its `kind`)."""

    SIP = "sip"  # a call signalled by readable SIP
    MEDIA = "media"  # RTP seen without signalling
    ENCRYPTED = "encrypted"  # SIP-TLS, SRTP, WebRTC or app-call flow metadata
    REGISTRATION = "registration"  # a REGISTER transaction chain


_BY_STATUS = {
    486: Disposition.BUSY,
    600: Disposition.BUSY,
    487: Disposition.CANCELLED,
    408: Disposition.NO_ANSWER,
    480: Disposition.NO_ANSWER,
    401: Disposition.UNAUTHORIZED,
    407: Disposition.UNAUTHORIZED,
}


def judge(final_status: int | None, cancelled: bool) -> Disposition:
    """Disposition from the final status of the judged INVITE.

    A caller's CANCEL sent before any final answer makes the call cancelled
    whatever non-2xx answer the far end then sends (usually 487, sometimes 408
    from a proxy that timed the branch out): the caller gave up.
    """
    if final_status is not None and 200 <= final_status < 300:
        return Disposition.ANSWERED
    if cancelled:
        return Disposition.CANCELLED
    if final_status is None:
        return Disposition.NO_FINAL_RESPONSE
    named = _BY_STATUS.get(final_status)
    if named is not None:
        return named
    if 300 <= final_status < 400:
        return Disposition.REDIRECTED
    if 500 <= final_status < 600:
        return Disposition.FAILED
    return Disposition.REJECTED
