"""How a call ended, in the words its record uses.

`Disposition` and `judge` are DESIGN.md's disposition table, judged from the
final answer to a call's initial INVITE; `judge` is the only place it lives.
`EndReason` is why a tracker wrote a call or a REGISTER chain before it was
over, the flag its record then carries.
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


class EndReason(StrEnum):
    """Why a call, a media session or a REGISTER chain was written before it was
    over (the flag its record carries)."""

    TIMEOUT = "timeout"
    EVICTED = "evicted"
    END_OF_INPUT = "end_of_input"
    SHUTDOWN = "shutdown"


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
