"""SIP dialog tracking: SIP messages and RTP in, call-detail records out.

Strategy: one `Dialog` per Call-ID holds the tracking state of a call. Each
message is classified into an input of the dialog's transition table
(`voiplog.calls._dialog`), and the table's action is performed here; messages
that change no state (in-dialog offers and answers, REFER) update the call's
media and transfer data directly (`voiplog.calls._in_dialog`). SDP offers and answers register the media
endpoints each side announced in a `MediaIndex`, so that RTP flows can be
attached to the call that announced them. Every open call has a deadline on
packet time, set by its state, in a `DeadlineHeap` (the REGISTER tracker
keeps its chains' in another). A call leaves the tracker only through `_close`, which always
yields a record (built by `voiplog.cdr.sip_call`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from sys import intern

from voiplog.calls import _snapshot as snap
from voiplog.calls._deadlines import DeadlineHeap
from voiplog.calls._dialog import (
    DEADLINES,
    OVER,
    TRANSITIONS,
    Action,
    Deadline,
    Dialog,
    Input,
    Offer,
    Side,
)
from voiplog.calls._hops import Hop, another_hop, beyond_caller
from voiplog.calls._in_dialog import is_hold, note_correlation, note_refer, settle_offer
from voiplog.calls._legs import LegLinker
from voiplog.calls._media import MediaFlow, MediaIndex
from voiplog.calls._registrations import RegistrationTracker
from voiplog.cdr import CallRecord, RegistrationRecord
from voiplog.cdr.disposition import EndReason
from voiplog.cdr.sip_call import (
    CORRELATION_KEYS,
    SubscriberLookup,
    build_call_record,
    call_uid,
    no_subscriber_lookup,
)
from voiplog.errors import ParseError
from voiplog.settings import CallSettings
from voiplog.sip import (
    SessionDescription,
    SipMessage,
    parse_sdp,
)

_new_tuple = tuple.__new__
_US = 1_000_000


Record = CallRecord | RegistrationRecord


class CallTracker:
    """Tracks INVITE dialogs by Call-ID and yields one `CallRecord` per call.

    REGISTER transactions go to a `RegistrationTracker` kept alongside, whose
    `RegistrationRecord`s come out of the same `expire`, `close_all` and
    `take_records`.
    """

    def __init__(
        self,
        settings: CallSettings | None = None,
        lookup_subscriber: SubscriberLookup = no_subscriber_lookup,
        on_weird: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or CallSettings()
        self._lookup_subscriber = lookup_subscriber
        self._weird = on_weird or (lambda kind: None)
        self._calls: OrderedDict[str, Dialog] = OrderedDict()
        self._heap: DeadlineHeap[Dialog] = DeadlineHeap(self._calls)
        self._done: list[Record] = []
        self.media = MediaIndex(self.settings.max_media_flows, self._weird)
        # Flows attached to calls, by `flow_key`: the media index's own dict,
        # which the pipeline's RTP fast path reads directly.
        self.flows: dict[bytes, MediaFlow] = self.media.flows
        self.registrations = RegistrationTracker(self.settings, lookup_subscriber, self._weird)
        # Legs of one call behind a B2BUA, linked into sessions.
        self.legs = LegLinker(
            call_uid,
            int(self.settings.session_link_window_s * _US),
            int(self.settings.session_link_keep_s * _US),
            self.settings.max_open_calls,
        )

    # -- public API ----------------------------------------------------------

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    def on_sip(
        self,
        msg: SipMessage,
        ts_us: int,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        transport: str = "udp",
        hep_correlation: str | None = None,
    ) -> None:
        """Feed one parsed SIP message seen at `ts_us` (with the correlation id of
        the HEP packet that carried it, if any)."""
        call_id = msg.call_id
        if call_id is None:
            return
        if msg.cseq_method == "REGISTER":
            if msg.method is not None:
                self.registrations.on_request(
                    msg, ts_us, src_ip, src_port, dst_ip, dst_port, transport
                )
            else:
                self.registrations.on_response(msg, ts_us)
            return
        # The Hop made as its own __new__ makes it, without that Python frame.
        hop = _new_tuple(Hop, (src_ip, src_port, dst_ip, dst_port, transport))
        if msg.method is not None:
            self._on_request(msg, call_id, ts_us, hop)
        else:
            self._on_response(msg, call_id, ts_us, hop)
        if hep_correlation:
            call = self._calls.get(call_id)
            if call is not None and call.hep_correlation is None:
                call.hep_correlation = hep_correlation
                self.legs.note(call)

    def match_flow(
        self, src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int
    ) -> MediaFlow | None:
        """Attach a new RTP 5-tuple to the call whose SDP announced it, if any
        (see `MediaIndex.match`)."""
        return self.media.match(src_ip, src_port, dst_ip, dst_port)

    def expire(self, now_us: int) -> list[Record]:
        """Close every call and registration whose deadline has passed at `now_us`."""
        self._done += self.registrations.expire(now_us)
        self.legs.expire(now_us)
        heap = self._heap
        while (call := heap.pop_due(now_us)) is not None:
            deadline = self._deadline(call)
            if deadline > now_us:
                heap.schedule(call, deadline)
                continue
            self._close(call, None if call.state in OVER else EndReason.TIMEOUT)
        return self.take_records()

    def close_all(self, reason: EndReason = EndReason.END_OF_INPUT) -> list[Record]:
        """Close every open call (end of input, or daemon shutdown), oldest first,
        then every REGISTER chain in progress."""
        for call in sorted(self._calls.values(), key=lambda c: (c.started_us, c.call_id)):
            self._close(call, None if call.state in OVER else reason)
        self._done += self.registrations.close_all(reason)
        return self.take_records()

    def snapshot(self) -> dict:
        """The open calls, their media and the REGISTER chains as plain data, for
        `restore` in another process (see `voiplog.calls._snapshot`)."""
        flows = self.media.flows
        return {
            "format": snap.FORMAT,
            "calls": [snap.dialog_data(call, flows) for call in self._calls.values()],
            "expected": snap.expected_data(self.media._expected),
            "registrations": [snap.chain_data(c) for c in self.registrations.chains()],
        }

    def restore(self, data: dict, gap: tuple[int, int] | None = None) -> int:
        """Take back the calls and chains of a `snapshot` into this empty tracker;
        return how many calls. With `gap` (start, end, in µs), packets in it were not
        seen: each call is flagged ``restarted`` and keeps the gap for its record.

        Raises ValueError (another format, or data that does not read) before
        anything is changed: a state is taken whole or not at all.
        """
        if self._calls or self.registrations.open_chains or self.media.flows:
            raise ValueError("the tracker is not empty")
        try:
            if data.get("format") != snap.FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {snap.FORMAT}")
            indexed: dict[bytes, MediaFlow] = {}
            calls = {}
            for saved in data["calls"]:
                call = snap.restore_dialog(saved, indexed)
                calls[call.call_id] = call
            expected = snap.restore_expected(data["expected"], calls)
            chains = [snap.restore_chain(c) for c in data["registrations"]]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ValueError(f"saved calls do not read: {exc!r}") from None
        for call in calls.values():
            if gap is not None:
                call.flag("restarted")
                call.gaps = [*call.gaps, gap]
            self._calls[call.call_id] = call
            self._heap.schedule(call, self._deadline(call))
        # The legs' links are not saved: made again among the calls kept.
        for call in sorted(calls.values(), key=lambda c: (c.started_us, c.call_id)):
            self.legs.open(call)
        self.media._expected.update(expected)
        self.media.flows.update(indexed)
        self.media.generation += 1
        if gap is not None:
            for chain in chains:
                chain.flags.add("restarted")
        self.registrations.adopt(chains)
        return len(calls)

    def take_records(self) -> list[Record]:
        done = self._done
        if not done and not self.registrations.has_records():
            return []  # asked after every message: mostly nothing
        self._done = []
        done += self.registrations.take_records()
        return done

    # -- the transition table ------------------------------------------------

    @staticmethod
    def _step(call: Dialog, event: Input) -> Action:
        """Look up what `event` does to `call`, and move it to the next state
        (left as it is by REPLACE, whose call is closed)."""
        action, state = TRANSITIONS[call.state, event]
        if state is not None:
            call.state = state
        return action

    # -- requests ------------------------------------------------------------

    def _on_request(self, msg: SipMessage, call_id: str, ts_us: int, hop: Hop) -> None:
        method = msg.method
        call = self._calls.get(call_id)
        if method == "INVITE":
            known = call
            call = self._on_invite(msg, call, call_id, ts_us, hop)
            if call is None or call is not known:
                # None, or a call this INVITE opened: it is the newest, touched
                # now, by its caller, and an INVITE without a To tag is all it had.
                return
        elif call is None:
            return
        self._touch(call, ts_us)
        sender = self._request_sender(call, msg, hop)
        if method == "CANCEL":
            if beyond_caller(call, hop.src_ip, hop.src_port):
                event = Input.CANCEL_BEYOND
            elif call.cancel_us is None:
                event = Input.CANCEL
            else:
                event = Input.CANCEL_AGAIN
            if self._step(call, event) is Action.CANCEL:
                call.cancel_us = ts_us
                call.ended_by = Side.CALLER.value
                self._mark_ending(call, ts_us)
        elif method == "BYE":
            event = Input.BYE_OTHER_FORK if self._other_fork(call, msg) else Input.BYE
            action = self._step(call, event)
            if action is Action.BYE or action is Action.BYE_UNANSWERED:
                call.bye_us = ts_us
                call.ended_by = sender.value
                if action is Action.BYE_UNANSWERED:
                    call.flag("bye_without_answer")
                self._mark_ending(call, ts_us)
        elif method in ("ACK", "PRACK", "UPDATE") or (method == "INVITE" and msg.to and msg.to.tag):
            sdp = self._take_sdp(call, msg, sender, ts_us, answer=method in ("ACK", "PRACK"))
            offer = method == "INVITE" or method == "UPDATE"
            if sdp is not None and offer and call.answered_us is not None:
                # Taken into account once answered 2xx: a refused offer changes nothing.
                call.pending_offer = Offer(
                    method, msg.cseq_num or 0, msg.from_tag, sender, is_hold(sdp), ts_us
                )
        elif method == "REFER":
            note_refer(call, msg, sender)

    def _on_invite(
        self, msg: SipMessage, call: Dialog | None, call_id: str, ts_us: int, hop: Hop
    ) -> Dialog | None:
        cseq = msg.cseq_num or 0
        in_dialog = bool(msg.to and msg.to.tag)
        if call is not None and in_dialog:
            # re-INVITE: remember who sent it so that its answer's SDP is put
            # on the right side.
            key = (cseq, msg.from_.tag if msg.from_ else None)
            if call.reinvites is None:
                call.reinvites = {}
            if key not in call.reinvites:
                call.reinvites[key] = self._request_sender(call, msg, hop)
                call.flag("reinvite")
            return call
        if call is None:
            if in_dialog:
                # The dialog started before the capture did: nothing reliable
                # to build a record from.
                self._weird("sip.invite_unknown_dialog")
                return None
            return self._new_call(msg, call_id, cseq, ts_us, hop)
        if cseq == call.invite_cseq and another_hop(msg.via_branches, hop, call):
            # The same INVITE on a proxy's next hop (or, captured in the other
            # order, on the hop before it), or relayed by an SBC with a Via of
            # its own: one call, no retransmission.
            event = Input.INVITE_FORWARDED
        elif cseq <= call.invite_cseq:
            event = Input.INVITE_AGAIN
        else:
            event = Input.INVITE_NEXT
        action = self._step(call, event)
        if action is Action.NOTE_FORWARDED:
            call.flag("invite_forwarded")
            if len(msg.via_branches) < call.origin_vias:
                # The copy nearer the caller, captured after the one beyond it.
                call.origin_ip, call.origin_port = hop.src_ip, hop.src_port
                call.origin_vias = len(msg.via_branches)
        elif action is Action.NOTE_RETRANSMITTED:
            call.flag("invite_retransmitted")
        elif action is Action.REPLACE:
            self._close(call, None)
            return self._new_call(msg, call_id, cseq, ts_us, hop)
        elif action is Action.RETRY or action is Action.AUTHENTICATE:
            # Same Call-ID, higher CSeq, no To tag: the INVITE sent again after a
            # 401/407 challenge (or another retryable failure). One call, judged
            # by the new INVITE.
            call.flag("auth_challenged" if action is Action.AUTHENTICATE else "invite_retried")
            call.invite_cseq = cseq
            call.invite_branches = msg.via_branches
            # The tags that answered the INVITE before (a proxy's challenge, a
            # failed branch) are no branches of the call judged by this one.
            call.to_tags = ()
            call.branch_tags = ()
            call.final_status = None
            call.final_reached_caller = False
            call.final_us = None
            call.end_us = None
            call.ended_by = None
            self._take_sdp(call, msg, Side.CALLER, ts_us, answer=False)
            self._heap.schedule(call, self._deadline(call))
        return call

    def _new_call(self, msg: SipMessage, call_id: str, cseq: int, ts_us: int, hop: Hop) -> Dialog:
        if len(self._calls) >= self.settings.max_open_calls:
            _, oldest = next(iter(self._calls.items()))
            self._weird("calls.evicted")
            # A call already over (lingering for retransmissions) loses nothing.
            self._close(oldest, None if oldest.state in OVER else EndReason.EVICTED)
        call = Dialog(call_id, ts_us, ts_us)
        call.invite_cseq = cseq
        call.invite_branches = tuple(msg.via_branches)
        call.caller_ip, call.caller_port = hop.src_ip, hop.src_port
        call.origin_ip, call.origin_port = hop.src_ip, hop.src_port
        call.origin_vias = len(call.invite_branches)
        # Strings that many calls repeat (the callee's address, the User-Agent of
        # a SIP scanner or of one model of phone) are kept once.
        call.callee_ip, call.callee_port = intern(hop.dst_ip), hop.dst_port
        call.transport = hop.transport
        call.caller_tag = msg.from_.tag if msg.from_ else None
        call.from_uri = msg.from_.uri if msg.from_ else None
        call.request_uri = msg.request_uri
        to_uri = msg.to.uri if msg.to else None
        call.to_uri = msg.request_uri if to_uri == msg.request_uri else to_uri
        user_agent = msg.get("user-agent")
        call.user_agent = intern(user_agent) if user_agent is not None else None
        note_correlation(call, msg, Side.CALLER)
        self._calls[call_id] = call
        self.legs.open(call)
        self._take_sdp(call, msg, Side.CALLER, ts_us, answer=False)
        self._heap.schedule(call, self._deadline(call))
        return call

    # -- responses -----------------------------------------------------------

    def _on_response(self, msg: SipMessage, call_id: str, ts_us: int, hop: Hop) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        self._touch(call, ts_us)
        status = msg.status or 0
        cseq = msg.cseq_num
        if status >= 200 and call.pending_offer is not None:
            settle_offer(call, msg, status)
        if msg.cseq_method != "INVITE":
            if msg.cseq_method in ("PRACK", "UPDATE") and 200 <= status < 300:
                self._take_sdp(call, msg, self._response_sender(call, msg), ts_us, answer=True)
            elif msg.cseq_method == "REFER" and status >= 200:
                refer = call.refer
                if refer is not None and refer.cseq == cseq and refer.status is None:
                    refer.status = status
                    if status < 300:
                        call.flag("transferred")
            return
        # A response carries the From tag of the request it answers: the callee's
        # re-INVITE may well have the CSeq of the initial INVITE.
        reinvites = call.reinvites
        sent_by = (
            reinvites.get((cseq or 0, msg.from_.tag if msg.from_ else None)) if reinvites else None
        )
        if sent_by is not None or cseq != call.invite_cseq:
            if sent_by is not None and 200 <= status < 300:
                answerer = Side.CALLEE if sent_by is Side.CALLER else Side.CALLER
                self._take_sdp(call, msg, answerer, ts_us, answer=True)
            return
        to_tag = msg.to.tag if msg.to else None
        if to_tag and status > 100 and to_tag not in call.to_tags:
            call.to_tags = (*call.to_tags, to_tag)
        # Toward the caller, or on a hop beyond it: what a proxy answered the
        # caller itself (its challenge, its timeout, a failure it relayed as
        # another) is no branch, and the caller's answer is the one received.
        reaches_caller = not beyond_caller(call, hop.dst_ip, hop.dst_port)
        if to_tag and 100 < status < 300 and not (reaches_caller and call.relayed):
            branch = (hop.dst_ip, hop.dst_port, to_tag)
            if branch not in call.branch_tags:
                call.branch_tags = (*call.branch_tags, branch)
                if any(b[:2] == branch[:2] and b != branch for b in call.branch_tags):
                    call.flag("forked")
        if (
            status > 100
            and (call.correlation is None or len(call.correlation) < len(CORRELATION_KEYS))
            and note_correlation(call, msg, Side.CALLEE)
        ):
            self.legs.note(call)
        if status < 200:
            event = Input.TRYING if status <= 100 else Input.PROVISIONAL
        elif status < 300:
            if call.answer_tag is not None and to_tag and to_tag != call.answer_tag:
                event = Input.SUCCESS_OTHER
            else:
                event = Input.SUCCESS
        elif (
            reaches_caller
            and not call.final_reached_caller
            and call.final_status is not None
            and call.final_status >= 300
        ):
            event = Input.FAILURE_RELAYED
        else:
            event = Input.CHALLENGE if status in (401, 407) else Input.FAILURE
        action = self._step(call, event)
        if action is Action.PROVISIONAL:
            # The caller's ringing: on the caller's hop when seen there.
            if status in (180, 183) and (
                call.ringing_us is None or (reaches_caller and not call.ringing_reached_caller)
            ):
                call.ringing_us = ts_us
                call.ringing_reached_caller = reaches_caller
            if self._take_sdp(call, msg, Side.CALLEE, ts_us, answer=True) is not None:
                call.early_sdp = True
        elif action is Action.OTHER_ANSWER:
            pair = (hop.src_ip, hop.dst_ip)
            if pair != call.answer_hop and pair[::-1] != call.answer_hop:
                # Another hop: the same answer relayed on another leg under a
                # tag of the relay's own. Requests with it are the call's.
                call.answer_aliases = {*call.answer_aliases, to_tag}
                self._answer_reached_caller(call, ts_us, reaches_caller)
            elif all(t != to_tag for t, _, _ in call.other_answers):
                # A second fork answered too: the first answer made the call;
                # this one is noted, and its media is not the call's.
                call.other_answers = [*call.other_answers, (to_tag, status, ts_us)]
        elif action is Action.ANSWER or action is Action.ANSWER_AFTER_BYE:
            call.answer_tag = to_tag
            call.answer_hop = (hop.src_ip, hop.dst_ip)
            call.answered_us = ts_us
            call.final_status = status
            call.final_us = ts_us
            call.final_reached_caller = reaches_caller
            if action is Action.ANSWER:
                # Any end noted before is undone; if it was a CANCEL, the answer
                # crossed it: the call was set up after all.
                if call.cancel_us is not None:
                    call.flag("cancel_crossed_answer")
                call.end_us = None
                call.ended_by = None
            self._heap.schedule(call, self._deadline(call))
            self._take_sdp(call, msg, Side.CALLEE, ts_us, answer=True)
        elif action is Action.ANSWER_AGAIN:
            self._answer_reached_caller(call, ts_us, reaches_caller)
            self._take_sdp(call, msg, Side.CALLEE, ts_us, answer=True)
        elif action is Action.FAIL:
            call.final_status = status
            call.final_us = ts_us
            call.final_reached_caller = reaches_caller
            if call.cancel_us is None:
                call.ended_by = Side.CALLEE.value
            self._mark_ending(call, ts_us)
        elif action is Action.RELAY_FAILURE:
            call.final_status = status
            call.final_us = ts_us
            call.final_reached_caller = True

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def _answer_reached_caller(call: Dialog, ts_us: int, reaches_caller: bool) -> None:
        """The answer relayed to the caller, first seen beyond it: the caller was
        answered now, on its own hop."""
        if reaches_caller and not call.final_reached_caller:
            call.answered_us = call.final_us = ts_us
            call.final_reached_caller = True

    def _request_sender(self, call: Dialog, msg: SipMessage, hop: Hop) -> Side:
        tag = msg.from_.tag if msg.from_ else None
        if tag is not None and call.caller_tag is not None:
            return Side.CALLER if tag == call.caller_tag else Side.CALLEE
        if (hop.src_ip, hop.src_port) == (call.caller_ip, call.caller_port):
            return Side.CALLER
        return Side.CALLEE

    def _response_sender(self, call: Dialog, msg: SipMessage) -> Side:
        # A response carries the From of the request it answers.
        tag = msg.from_.tag if msg.from_ else None
        return Side.CALLER if tag is not None and tag != call.caller_tag else Side.CALLEE

    def _touch(self, call: Dialog, ts_us: int) -> None:
        if ts_us > call.last_sip_us:
            call.last_sip_us = ts_us
        self._calls.move_to_end(call.call_id)

    def _mark_ending(self, call: Dialog, ts_us: int) -> None:
        if call.end_us is None:
            call.end_us = ts_us
            self._heap.schedule(call, self._deadline(call))

    def _deadline(self, call: Dialog) -> int:
        s = self.settings
        rule = DEADLINES[call.state]
        if rule is Deadline.RETRY:
            return call.last_sip_us + int(s.setup_timeout_s * _US)
        if rule is Deadline.LINGER:
            return max(call.end_us or 0, call.last_sip_us) + int(s.linger_s * _US)
        if rule is Deadline.IDLE:
            return call.last_activity_us() + int(s.idle_timeout_s * _US)
        return call.last_activity_us() + int(s.setup_timeout_s * _US)

    def _take_sdp(
        self, call: Dialog, msg: SipMessage, side: Side, ts_us: int, answer: bool
    ) -> SessionDescription | None:
        """Register the media endpoints of an SDP offer (`answer` False) or answer.

        Returns the session description when it is new from this side, None
        when there is none or nothing changed.
        """
        body = msg.sdp_body
        if not body:
            return None
        key = side._value_  # `value` is a property of Python code before 3.12
        if call.last_sdp is None:
            call.last_sdp = {}
        elif call.last_sdp.get(key) == body:
            return None  # a retransmission, or the same SDP once more: nothing changes
        call.last_sdp[key] = body
        try:
            sdp = parse_sdp(body)
        except ParseError as exc:
            self._weird(exc.kind)
            return None
        self.media.announce(call, side, sdp, ts_us, answer)
        return sdp

    # -- call flows ----------------------------------------------------------

    def _other_fork(self, call: Dialog, msg: SipMessage) -> bool:
        """Whether an in-dialog request belongs to another fork than the one that
        answered first: it carries the tag of a fork seen answering and not the
        first 2xx's To tag. (Looking at both tags also keeps apart the legs of a
        B2BUA that reuses the Call-ID with a From tag of its own.)"""
        answer_tag = call.answer_tag
        if answer_tag is None:
            return False
        from_tag = msg.from_.tag if msg.from_ else None
        to_tag = msg.to.tag if msg.to else None
        if answer_tag in (to_tag, from_tag):
            return False
        if to_tag in call.answer_aliases or from_tag in call.answer_aliases:
            return False
        return to_tag in call.to_tags or from_tag in call.to_tags

    def _close(self, call: Dialog, reason: EndReason | None) -> None:
        self._calls.pop(call.call_id, None)
        uid = call_uid(call)
        call.session_uid, call.session_link = self.legs.close(call, uid, call.last_sip_us)
        self.media.release(call)
        self._done.append(build_call_record(call, reason, self._lookup_subscriber, uid))
        # Flows point back at their call: break the cycle so that the call's
        # memory goes now, not at the next full garbage collection.
        call.flows = ()
