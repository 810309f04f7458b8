"""The INVITE dialog's transition table, walked pair by pair with real messages.

Every (state, input) pair is either brought about by SIP messages fed to a
`CallTracker` and shown to do what the table says, or listed as unreachable
(ignored) and shown not to arise from the messages that come closest.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.sipcraft import T0, make_dialog
from voiplog.calls import CallSettings, CallTracker
from voiplog.calls._dialog import (
    DEADLINES,
    OVER,
    TRANSITIONS,
    UNREACHABLE,
    Action,
    Dialog,
    Input,
    State,
)
from voiplog.sip import parse_message

_MS = 1_000
_PROXY = ("192.0.2.99", 5060)


class _Call:
    """One crafted call fed to a tracker, and the (state, input) pairs it met."""

    def __init__(self, n: int) -> None:
        self.tracker = CallTracker(CallSettings())
        self.d = make_dialog(n)
        self.ts = T0
        self.cseq = 1  # CSeq of the INVITE the call is judged by
        self.met: list[tuple[State, Input]] = []
        self.beyond = False  # responses go to a proxy, on a hop beyond the caller's
        step = self.tracker._step

        def recording_step(call, event):
            self.met.append((call.state, event))
            return step(call, event)

        self.tracker._step = recording_step

    @property
    def call(self) -> Dialog:
        return self.tracker._calls[self.d.call_id]

    def feed(self, payload: bytes, from_caller: bool) -> None:
        d = self.d
        src, dst = (d.caller, d.callee) if from_caller else (d.callee, d.caller)
        to = _PROXY if self.beyond and not from_caller else (dst.ip, dst.port)
        self.tracker.on_sip(parse_message(payload), self.ts, src.ip, src.port, *to)

    def tick(self) -> int:
        self.ts += 10 * _MS
        return self.ts

    # -- messages --------------------------------------------------------------

    def invite(self, cseq: int | None = None, forwarded: bool = False) -> None:
        payload = self.d.invite(self.tick(), cseq=self.cseq if cseq is None else cseq)
        if forwarded:
            proxy = b"Via: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKproxy1\r\n"
            payload = payload.replace(b"Via: ", proxy + b"Via: ", 1)
        self.feed(payload, True)

    def retry(self) -> None:
        self.cseq += 1
        self.invite()

    def cancel(self) -> None:
        self.feed(self.d.request(self.tick(), "CANCEL", cseq=self.cseq, in_dialog=False), True)

    def cancel_beyond(self) -> None:
        """A proxy cancelling its branch toward the callee."""
        payload = self.d.request(self.tick(), "CANCEL", cseq=self.cseq, in_dialog=False)
        callee = self.d.callee
        self.tracker.on_sip(parse_message(payload), self.ts, *_PROXY, callee.ip, callee.port)

    def bye(self, to_tag: str | None = None) -> None:
        payload = self.d.request(self.tick(), "BYE", cseq=self.cseq + 10)
        if to_tag is not None:
            own = f";tag={self.d.callee.tag}".encode()
            payload = payload.replace(own, f";tag={to_tag}".encode(), 1)
        self.feed(payload, True)

    def reply(self, status: int, to_tag: str | None = None) -> None:
        ts = self.tick()
        if status == 200 and to_tag is None:
            payload = self.d.answer(ts, cseq=self.cseq)
        else:
            payload = self.d.response(ts, status, cseq=self.cseq, to_tag=to_tag)
        self.feed(payload, False)


# How to bring a call into each state: plainly, after a CANCEL (for CANCEL_AGAIN),
# and with a second fork answering (for the inputs that need a fork to tell apart).
_RECIPES = {
    State.CALLING: ([], ["cancel", 487, "retry"]),
    State.EARLY: ([180], ["cancel", 487, "retry", 180]),
    State.CANCELLING: (["cancel"], ["cancel"]),
    State.CHALLENGED: ([407], ["cancel", 407]),
    State.FAILED: ([486], ["cancel", 487]),
    State.ANSWERED: ([200], ["cancel", 200]),
    State.ENDING: ([200, "bye"], ["cancel", 200, "bye"]),
    State.UNANSWERED_BYE: (["bye"], ["cancel", "bye"]),
    State.FAILED_BYE: ([486, "bye"], ["cancel", 487, "bye"]),
    State.CHALLENGED_BYE: ([407, "bye"], ["cancel", 407, "bye"]),
}
_FORKED = {State.ANSWERED: [200, "fork"], State.ENDING: [200, "fork", "bye"]}


def _call_in(state: State, event: Input, n: int) -> _Call:
    c = _Call(n)
    c.invite()
    if event in (Input.CANCEL_BEYOND, Input.FAILURE_RELAYED):
        c.invite(forwarded=True)  # the call is seen at two hops
        # Answers come on the hop beyond the caller's, the relayed failure to it.
        c.beyond = event is Input.FAILURE_RELAYED
    if event is Input.CANCEL_AGAIN:
        steps = _RECIPES[state][1]
    elif event in (Input.SUCCESS_OTHER, Input.BYE_OTHER_FORK):
        steps = _FORKED.get(state, _RECIPES[state][0])
    else:
        steps = _RECIPES[state][0]
    for step in steps:
        if step == "cancel":
            c.cancel()
        elif step == "retry":
            c.retry()
        elif step == "bye":
            c.bye()
        elif step == "fork":
            c.reply(200, to_tag="fork2")
        else:
            c.reply(step)
    assert c.call.state is state, f"recipe for {state}"
    c.beyond = False
    return c


def _send(c: _Call, event: Input) -> None:
    if event is Input.INVITE_AGAIN:
        c.invite()
    elif event is Input.INVITE_FORWARDED:
        c.invite(forwarded=True)
    elif event is Input.INVITE_NEXT:
        c.invite(cseq=c.cseq + 1)
    elif event in (Input.CANCEL, Input.CANCEL_AGAIN):
        c.cancel()
    elif event is Input.CANCEL_BEYOND:
        c.cancel_beyond()
    elif event is Input.BYE:
        c.bye()
    elif event is Input.BYE_OTHER_FORK:
        c.bye(to_tag="fork2")
    elif event is Input.SUCCESS_OTHER:
        c.reply(200, to_tag="fork3")
    else:
        status = {
            Input.TRYING: 100,
            Input.PROVISIONAL: 180,
            Input.SUCCESS: 200,
            Input.CHALLENGE: 407,
            Input.FAILURE: 486,
            Input.FAILURE_RELAYED: 500,
        }[event]
        c.reply(status)


_OBSERVED = (
    "state",
    "cancel_us",
    "bye_us",
    "answered_us",
    "final_status",
    "final_us",
    "end_us",
    "ended_by",
    "invite_cseq",
    "ringing_us",
)


def _observe(call: Dialog) -> dict:
    return {name: getattr(call, name) for name in _OBSERVED} | {
        "flags": set(call.flags),
        "other_answers": list(call.other_answers),
    }


def test_transition_table_is_total():
    assert set(TRANSITIONS) == {(state, event) for state in State for event in Input}
    assert set(DEADLINES) == set(State)


def test_every_pair_is_handled_or_explicitly_ignored():
    from voiplog.calls._dialog import _ANY_STATE, _BY_STATE

    for state, event in TRANSITIONS:
        listed = (state, event) in _BY_STATE or event in _ANY_STATE
        assert listed != ((state, event) in UNREACHABLE), (state, event)
    for state, event in UNREACHABLE:
        assert TRANSITIONS[state, event] == (Action.IGNORE, state), (state, event)


_REACHABLE = sorted(set(TRANSITIONS) - UNREACHABLE)


@pytest.mark.parametrize(("state", "event"), _REACHABLE, ids=lambda v: str(v))
def test_every_reachable_pair_does_what_the_table_says(state, event):
    action, next_state = TRANSITIONS[state, event]
    c = _call_in(state, event, 1)
    before_call = c.call
    before = _observe(before_call)
    c.met.clear()
    _send(c, event)
    assert c.met == [(state, event)], "the message is the input it stands for"
    written = c.tracker.take_records()
    if action is Action.REPLACE:
        assert c.call is not before_call and len(written) == 1
        assert c.call.state is State.CALLING
        return
    call = c.call
    assert call is before_call and written == []
    after = _observe(call)
    assert call.state is next_state
    # A call's end is known exactly in the states that say so.
    assert (call.end_us is not None) == (call.state in OVER)
    ts = c.ts
    changed = {name for name in after if after[name] != before[name]} - {"state"}
    if action is Action.IGNORE:
        assert changed == set()
    elif action is Action.NOTE_RETRANSMITTED:
        assert changed == {"flags"} and "invite_retransmitted" in call.flags
    elif action is Action.NOTE_FORWARDED:
        assert changed == {"flags"} and "invite_forwarded" in call.flags
    elif action in (Action.RETRY, Action.AUTHENTICATE):
        flag = "auth_challenged" if action is Action.AUTHENTICATE else "invite_retried"
        assert flag in call.flags and call.invite_cseq == c.cseq + 1
        assert call.final_status is None and call.end_us is None and call.ended_by is None
    elif action is Action.CANCEL:
        assert call.cancel_us == ts and call.ended_by == "caller"
    elif action in (Action.BYE, Action.BYE_UNANSWERED):
        assert call.bye_us == ts and call.ended_by == "caller"
        assert ("bye_without_answer" in call.flags) is (action is Action.BYE_UNANSWERED)
    elif action is Action.PROVISIONAL:
        assert changed <= {"ringing_us"}
        if event is Input.PROVISIONAL and before["ringing_us"] is None:
            assert call.ringing_us == ts
    elif action in (Action.ANSWER, Action.ANSWER_AFTER_BYE):
        assert call.answered_us == ts and call.final_status == 200
        if action is Action.ANSWER:
            assert call.end_us is None and call.ended_by is None
            crossed = before["cancel_us"] is not None
            assert ("cancel_crossed_answer" in call.flags) is crossed
        else:
            assert call.end_us == before["end_us"] and call.bye_us is not None
    elif action is Action.ANSWER_AGAIN:
        assert changed == set()
    elif action is Action.OTHER_ANSWER:
        assert changed == {"other_answers"} and call.other_answers[-1][0] == "fork3"
    elif action is Action.FAIL:
        assert call.final_status == (407 if event is Input.CHALLENGE else 486)
        assert call.ended_by == ("caller" if call.cancel_us is not None else "callee")
    elif action is Action.RELAY_FAILURE:
        assert changed == {"final_status", "final_us"}
        assert call.final_status == 500 and call.final_us == ts
    else:
        pytest.fail(f"{action} is not checked")


@pytest.mark.parametrize(("state", "event"), sorted(UNREACHABLE), ids=lambda v: str(v))
def test_unreachable_pairs_do_not_arise(state, event):
    """The message closest to an unreachable input is classified otherwise."""
    if event is Input.CANCEL:
        c = _call_in(state, Input.CANCEL, 1)  # a cancelling call has had its CANCEL
    else:
        c = _call_in(state, Input.TRYING, 1)  # no answer yet: no fork to tell apart
    c.met.clear()
    _send(c, event)
    assert c.met and all(pair not in UNREACHABLE for pair in c.met)


def test_deadline_follows_the_state():
    """The deadline rule of each state, in packet time (setup 300 s, idle 1800 s,
    linger 10 s): a call closes at its state's deadline, and not before."""
    settings = CallSettings()
    expected_after = {
        "setup": settings.setup_timeout_s,
        "retry": settings.setup_timeout_s,
        "idle": settings.idle_timeout_s,
        "linger": settings.linger_s,
    }
    for state in State:
        c = _call_in(state, Input.TRYING, 1)
        call = c.call
        last = max(call.last_sip_us, call.end_us or 0)
        deadline = last + int(expected_after[DEADLINES[state].value] * 1_000_000)
        assert c.tracker.expire(deadline - 1) == [], state
        (record,) = c.tracker.expire(deadline)
        assert ("timeout" in record.flags) is (state not in OVER), state


def test_dialog_is_plain_data():
    """A dialog is a state and plain fields (what a restart would have to keep);
    only `flows` refers to live objects (the media index rebuilds those)."""
    call = _call_in(State.ANSWERED, Input.TRYING, 1).call
    names = {f.name for f in dataclasses.fields(Dialog)}
    assert {"state", "answered_us", "end_us", "cancel_us", "bye_us"} <= names
    assert isinstance(call.state, State) and isinstance(call.state, str)
