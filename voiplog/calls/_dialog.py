"""The INVITE dialog of one call: its state, the table that moves it, its data.

Strategy: a call's life is an explicit state (`State`), moved only by the
transition table `TRANSITIONS`, ``(state, input) -> (action, next state)``, in
the style of the REGISTER chains' table. An input is what one SIP message is to
the call: the tracker classifies a request or a response to the initial INVITE
into an `Input`, looks the pair up, performs the `Action` and takes the next
state. Every state has a deadline rule (`DEADLINES`) and says whether the call's
end is known (`OVER`): a call closed in such a state needs no reason on its
record. Messages that mean the same in every state (in-dialog offers and
answers, re-INVITEs, REFER) are no input of the table: they change the call's
media and transfer data, never its state.

`Dialog` holds everything the tracker knows of one call as plain fields (the
state, timestamps, tags, flags); what it is written as is decided in
`voiplog.cdr.sip_call`. Its `flows` refer to the RTP flows attached to it.
Its sets, lists and dicts start as shared empty (immutable) values, and are
made when a first item comes: most calls of a flood never get one.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voiplog.calls._media import EndpointKey, MediaFlow

_NONE: frozenset = frozenset()


class Side(StrEnum):
    CALLER = "caller"
    CALLEE = "callee"


class State(StrEnum):
    CALLING = "calling"  # INVITE sent, no answer but 100 Trying yet
    EARLY = "early"  # a provisional answer (180, 183...) came
    CANCELLING = "cancelling"  # the caller sent CANCEL; waiting for the final answer
    CHALLENGED = "challenged"  # 401/407: the INVITE should come again with credentials
    FAILED = "failed"  # final failure (3xx-6xx); lingering for retransmissions
    ANSWERED = "answered"  # a 2xx made the call
    ENDING = "ending"  # answered, then BYE; lingering for retransmissions and media
    # A BYE before any final answer (some UAs give up so instead of with CANCEL),
    # then perhaps a final answer: the call is ending whatever else comes.
    UNANSWERED_BYE = "unanswered_bye"
    FAILED_BYE = "failed_bye"  # a final failure and a BYE, in either order
    CHALLENGED_BYE = "challenged_bye"  # 401/407 and a BYE, in either order


class Input(StrEnum):
    """What a message is to the call of its Call-ID."""

    INVITE_AGAIN = "invite_again"  # a retransmission of the initial INVITE, or an older one
    INVITE_FORWARDED = "invite_forwarded"  # the same INVITE on a proxy's next hop
    INVITE_NEXT = "invite_next"  # an initial INVITE (no To tag) with a higher CSeq
    CANCEL = "cancel"  # the first CANCEL of the call
    CANCEL_AGAIN = "cancel_again"  # a CANCEL once the call had one
    CANCEL_BEYOND = "cancel_beyond"  # a CANCEL a proxy sent on a hop beyond the caller's
    BYE = "bye"  # a BYE of the call's dialog
    BYE_OTHER_FORK = "bye_other_fork"  # the caller releasing a fork that answered later
    TRYING = "trying"  # 100 (or less) to the initial INVITE
    PROVISIONAL = "provisional"  # 101-199 to the initial INVITE
    SUCCESS = "success"  # 2xx to the initial INVITE, from the dialog that answered first
    SUCCESS_OTHER = "success_other"  # 2xx with another To tag once answered
    CHALLENGE = "challenge"  # 401 or 407 to the initial INVITE
    FAILURE = "failure"  # any other final failure to the initial INVITE
    # The final failure reaching the caller, after the one noted came on a hop
    # beyond the caller's (a proxy relaying it, perhaps as another status).
    FAILURE_RELAYED = "failure_relayed"


class Action(StrEnum):
    NOTE_RETRANSMITTED = "note_retransmitted"  # flag invite_retransmitted
    NOTE_FORWARDED = "note_forwarded"  # flag invite_forwarded
    RETRY = "retry"  # one call, judged by the new INVITE (flag invite_retried)
    AUTHENTICATE = "authenticate"  # the same, after a challenge (flag auth_challenged)
    REPLACE = "replace"  # the call is over: write it, open a new one for the INVITE
    CANCEL = "cancel"  # the caller gave up: the call is ending
    BYE = "bye"  # released after the answer: the call is ending
    BYE_UNANSWERED = "bye_unanswered"  # the same before any answer (flag bye_without_answer)
    PROVISIONAL = "provisional"  # ringing time, early SDP
    ANSWER = "answer"  # the call is set up; any end noted before is undone
    ANSWER_AFTER_BYE = "answer_after_bye"  # noted, but a BYE already ended the call
    ANSWER_AGAIN = "answer_again"  # a retransmitted 2xx: only its SDP counts
    OTHER_ANSWER = "other_answer"  # another fork's 2xx, or the answer relayed on another leg
    FAIL = "fail"  # the final failure: the call is ending
    RELAY_FAILURE = "relay_failure"  # the caller's final failure replaces the one noted
    IGNORE = "ignore"


class Deadline(StrEnum):
    """How long a call in a state is kept without activity (see `CallSettings`)."""

    SETUP = "setup"  # setup_timeout_s after the last SIP or RTP
    RETRY = "retry"  # setup_timeout_s after the last SIP: a person may be typing a password
    IDLE = "idle"  # idle_timeout_s after the last SIP or RTP
    LINGER = "linger"  # linger_s after the end (or the last SIP, if later)


_S, _I, _A = State, Input, Action

# Inputs handled alike in every state (the state stays as it is).
_ANY_STATE: dict[Input, Action] = {
    _I.INVITE_AGAIN: _A.NOTE_RETRANSMITTED,
    _I.INVITE_FORWARDED: _A.NOTE_FORWARDED,
    _I.CANCEL_AGAIN: _A.IGNORE,
    # A proxy's CANCEL of its branch (its INVITE timer, another branch answered):
    # the caller did not give up. The caller's own CANCEL relayed is one too.
    _I.CANCEL_BEYOND: _A.IGNORE,
    _I.TRYING: _A.PROVISIONAL,
    _I.PROVISIONAL: _A.PROVISIONAL,
}

# States in which the final answer noted is a failure (3xx-6xx).
_FAILED_STATES = (_S.FAILED, _S.CHALLENGED, _S.FAILED_BYE, _S.CHALLENGED_BYE)

# Pairs that no message makes, ignored: forks are told apart only once a call is
# answered (by the To tag of its first 2xx), a cancelling call has had its
# CANCEL, so that another one is CANCEL_AGAIN, and a failure is relayed only
# once one was noted.
UNREACHABLE: frozenset[tuple[State, Input]] = frozenset(
    {
        (state, event)
        for state in State
        if state not in (_S.ANSWERED, _S.ENDING)
        for event in (_I.SUCCESS_OTHER, _I.BYE_OTHER_FORK)
    }
    | {(_S.CANCELLING, _I.CANCEL)}
    | {(state, _I.FAILURE_RELAYED) for state in State if state not in _FAILED_STATES}
)

# Inputs whose meaning depends on the state; pairs not listed fall to `_ANY_STATE`.
_BY_STATE: dict[tuple[State, Input], tuple[Action, State | None]] = {
    (_S.CALLING, _I.PROVISIONAL): (_A.PROVISIONAL, _S.EARLY),
    **{
        (state, event): outcome
        for state in (_S.CALLING, _S.EARLY)
        for event, outcome in {
            _I.INVITE_NEXT: (_A.RETRY, _S.CALLING),
            _I.CANCEL: (_A.CANCEL, _S.CANCELLING),
            _I.BYE: (_A.BYE_UNANSWERED, _S.UNANSWERED_BYE),
            _I.SUCCESS: (_A.ANSWER, _S.ANSWERED),
            _I.CHALLENGE: (_A.FAIL, _S.CHALLENGED),
            _I.FAILURE: (_A.FAIL, _S.FAILED),
        }.items()
    },
    (_S.CANCELLING, _I.INVITE_NEXT): (_A.RETRY, _S.CALLING),
    (_S.CANCELLING, _I.BYE): (_A.BYE_UNANSWERED, _S.UNANSWERED_BYE),
    (_S.CANCELLING, _I.SUCCESS): (_A.ANSWER, _S.ANSWERED),  # the answer crossed the CANCEL
    (_S.CANCELLING, _I.CHALLENGE): (_A.FAIL, _S.CHALLENGED),
    (_S.CANCELLING, _I.FAILURE): (_A.FAIL, _S.FAILED),
    (_S.CHALLENGED, _I.INVITE_NEXT): (_A.AUTHENTICATE, _S.CALLING),
    (_S.CHALLENGED, _I.CANCEL): (_A.IGNORE, _S.CHALLENGED),
    (_S.CHALLENGED, _I.BYE): (_A.BYE_UNANSWERED, _S.CHALLENGED_BYE),
    (_S.CHALLENGED, _I.SUCCESS): (_A.ANSWER, _S.ANSWERED),  # another fork answered
    (_S.CHALLENGED, _I.CHALLENGE): (_A.IGNORE, _S.CHALLENGED),  # a retransmission
    (_S.CHALLENGED, _I.FAILURE): (_A.IGNORE, _S.CHALLENGED),  # another fork's failure
    (_S.FAILED, _I.INVITE_NEXT): (_A.RETRY, _S.CALLING),
    (_S.FAILED, _I.CANCEL): (_A.IGNORE, _S.FAILED),
    (_S.FAILED, _I.BYE): (_A.BYE_UNANSWERED, _S.FAILED_BYE),
    (_S.FAILED, _I.SUCCESS): (_A.ANSWER, _S.ANSWERED),  # another fork answered
    (_S.FAILED, _I.CHALLENGE): (_A.IGNORE, _S.FAILED),
    (_S.FAILED, _I.FAILURE): (_A.IGNORE, _S.FAILED),
    # A fresh INVITE reusing the Call-ID of a finished call is a new call.
    (_S.ANSWERED, _I.INVITE_NEXT): (_A.REPLACE, None),
    (_S.ANSWERED, _I.CANCEL): (_A.IGNORE, _S.ANSWERED),
    (_S.ANSWERED, _I.BYE): (_A.BYE, _S.ENDING),
    (_S.ANSWERED, _I.SUCCESS): (_A.ANSWER_AGAIN, _S.ANSWERED),
    (_S.ANSWERED, _I.SUCCESS_OTHER): (_A.OTHER_ANSWER, _S.ANSWERED),
    # The caller releasing a fork that answered after the first one did
    # (RFC 3261 §13.2.2.4): this call goes on.
    (_S.ANSWERED, _I.BYE_OTHER_FORK): (_A.IGNORE, _S.ANSWERED),
    (_S.ANSWERED, _I.CHALLENGE): (_A.IGNORE, _S.ANSWERED),  # another fork's failure
    (_S.ANSWERED, _I.FAILURE): (_A.IGNORE, _S.ANSWERED),
    (_S.ENDING, _I.INVITE_NEXT): (_A.REPLACE, None),
    (_S.ENDING, _I.CANCEL): (_A.IGNORE, _S.ENDING),
    (_S.ENDING, _I.BYE): (_A.IGNORE, _S.ENDING),  # a retransmission, or the other side's
    (_S.ENDING, _I.SUCCESS): (_A.ANSWER_AGAIN, _S.ENDING),
    (_S.ENDING, _I.SUCCESS_OTHER): (_A.OTHER_ANSWER, _S.ENDING),
    (_S.ENDING, _I.BYE_OTHER_FORK): (_A.IGNORE, _S.ENDING),
    (_S.ENDING, _I.CHALLENGE): (_A.IGNORE, _S.ENDING),
    (_S.ENDING, _I.FAILURE): (_A.IGNORE, _S.ENDING),
    (_S.UNANSWERED_BYE, _I.INVITE_NEXT): (_A.REPLACE, None),
    (_S.UNANSWERED_BYE, _I.CANCEL): (_A.CANCEL, _S.UNANSWERED_BYE),
    (_S.UNANSWERED_BYE, _I.BYE): (_A.IGNORE, _S.UNANSWERED_BYE),
    (_S.UNANSWERED_BYE, _I.SUCCESS): (_A.ANSWER_AFTER_BYE, _S.ENDING),
    (_S.UNANSWERED_BYE, _I.CHALLENGE): (_A.FAIL, _S.CHALLENGED_BYE),
    (_S.UNANSWERED_BYE, _I.FAILURE): (_A.FAIL, _S.FAILED_BYE),
    **{
        (state, event): outcome
        for state in (_S.FAILED_BYE, _S.CHALLENGED_BYE)
        for event, outcome in {
            _I.INVITE_NEXT: (_A.REPLACE, None),
            _I.CANCEL: (_A.IGNORE, state),
            _I.BYE: (_A.IGNORE, state),
            _I.SUCCESS: (_A.ANSWER_AFTER_BYE, _S.ENDING),
            _I.CHALLENGE: (_A.IGNORE, state),
            _I.FAILURE: (_A.IGNORE, state),
        }.items()
    },
    # What the caller received is the call's final answer (its status and time).
    **{(state, _I.FAILURE_RELAYED): (_A.RELAY_FAILURE, state) for state in _FAILED_STATES},
}

# (state, input) -> (action, next state); REPLACE leaves the old call behind (None).
# Pairs in neither table above are ignored: those of UNREACHABLE.
TRANSITIONS: dict[tuple[State, Input], tuple[Action, State | None]] = {
    (state, event): _BY_STATE.get((state, event), (_ANY_STATE.get(event, _A.IGNORE), state))
    for state in State
    for event in Input
}

# How long a call in each state is kept without activity.
DEADLINES: dict[State, Deadline] = {
    _S.CALLING: Deadline.SETUP,
    _S.EARLY: Deadline.SETUP,
    _S.CANCELLING: Deadline.LINGER,
    _S.CHALLENGED: Deadline.RETRY,
    _S.FAILED: Deadline.LINGER,
    _S.ANSWERED: Deadline.IDLE,
    _S.ENDING: Deadline.LINGER,
    _S.UNANSWERED_BYE: Deadline.LINGER,
    _S.FAILED_BYE: Deadline.LINGER,
    _S.CHALLENGED_BYE: Deadline.RETRY,
}

# States in which the call's end is known (its `end_us` is set): closed early in
# one of these, a call loses nothing and its record names no reason.
OVER: frozenset[State] = frozenset(State) - {_S.CALLING, _S.EARLY, _S.ANSWERED}


@dataclass(slots=True)
class Hold:
    """One side putting the other on hold (an offer with sendonly, inactive or 0.0.0.0)."""

    by: Side
    held_us: int
    resumed_us: int | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """An SDP offer of an answered call (re-INVITE or UPDATE) awaiting its answer."""

    method: str
    cseq: int
    from_tag: str | None
    by: Side
    holding: bool
    at_us: int


@dataclass(slots=True)
class Refer:
    """The last REFER of a call: who asked to transfer it, and to whom."""

    by: Side
    referred_to: str | None
    referred_by: str | None
    cseq: int
    status: int | None = None


@dataclass(slots=True, eq=False)
class Dialog:
    """One call as tracked: its state and plain data; nothing here is written as is."""

    call_id: str
    started_us: int
    last_sip_us: int
    state: State = State.CALLING
    ringing_us: int | None = None
    ringing_reached_caller: bool = False  # the ringing noted was the caller's
    answered_us: int | None = None
    final_us: int | None = None
    final_status: int | None = None
    final_reached_caller: bool = False  # the final answer noted was the caller's
    cancel_us: int | None = None
    bye_us: int | None = None
    end_us: int | None = None  # set while the state is in OVER (BYE, failure, CANCEL)
    ended_by: str | None = None
    invite_cseq: int = 0
    invite_branches: Sequence[str] = ()  # of the INVITE, topmost first
    # Where the INVITE came from on the hop nearest the caller: the copy with
    # the fewest Vias seen (a proxy adds one), whichever hop was captured first.
    origin_ip: str = ""
    origin_port: int = 0
    origin_vias: int = 0
    caller_tag: str | None = None
    # Tag lists, media keys and SDP bodies are held in tuples and dicts of
    # strings, which the cyclic collector stops walking once it has seen
    # them: an open call keeps them for minutes.
    to_tags: tuple[str, ...] = ()  # of the responses to the judged INVITE, each once
    # (destination ip, port, To tag) of the responses 101-299 to the judged
    # INVITE on the callee's side: two tags toward one destination make the
    # call `forked`. (A relay that rewrites the tag sends its own elsewhere.)
    branch_tags: tuple[tuple[str, int, str], ...] = ()  # each once
    # In-dialog INVITEs, by (CSeq, From tag) as each side numbers its own
    # requests -> the side that sent it.
    reinvites: dict[tuple[int, str | None], Side] | None = None
    flags: AbstractSet[str] = _NONE
    # Media this call announced and the flows attached to it (see `MediaIndex`).
    endpoints: tuple[EndpointKey, ...] = ()
    flows: Sequence[MediaFlow] = ()
    offered_not_rtp: tuple[EndpointKey, ...] = ()  # pending until answered
    last_sdp: dict[str, bytes] | None = None  # the last SDP body of each side (its value)
    heap_seq: int = 0
    transport: str = "udp"
    caller_ip: str = ""
    caller_port: int = 0
    callee_ip: str = ""
    callee_port: int = 0
    from_uri: str | None = None
    to_uri: str | None = None
    request_uri: str | None = None
    user_agent: str | None = None
    answer_tag: str | None = None  # To tag of the first 2xx: the dialog kept
    answer_hop: tuple[str, str] | None = None  # (source, destination) of that 2xx
    # To tags of 2xx seen on another hop than the first one: the same answer
    # on another leg of a proxy or B2BUA that rewrites the tag, not a fork.
    answer_aliases: AbstractSet[str] = _NONE
    # (To tag, status, time) of the 2xx of forks that answered after the first.
    other_answers: Sequence[tuple[str, int, int]] = ()
    early_sdp: bool = False  # a provisional response carried SDP
    holds: Sequence[Hold] = ()
    pending_offer: Offer | None = None
    refer: Refer | None = None
    correlation: dict[str, str] | None = None
    hep_correlation: str | None = None  # the correlation id of the HEP that carried the SIP
    # The B2BUA session the call is a leg of (see `voiplog.calls._legs`): its
    # uid, and the evidence that linked it to another leg (None: not linked).
    session_uid: str | None = None
    session_link: str | None = None
    # (start, end) of each daemon restart the call lived through: packets then were not seen.
    gaps: Sequence[tuple[int, int]] = ()

    def flag(self, name: str) -> None:
        """Add `name` to the call's flags."""
        if self.flags:
            self.flags.add(name)  # type: ignore[union-attr]
        else:
            self.flags = {name}

    @property
    def relayed(self) -> bool:
        """Whether the call's INVITE was seen at several hops (on both sides of a proxy)."""
        return "invite_forwarded" in self.flags

    def last_activity_us(self) -> int:
        last = self.last_sip_us
        for flow in self.flows:
            for stream in flow.streams.values():
                if stream.last_us > last:
                    last = stream.last_us
        return last
