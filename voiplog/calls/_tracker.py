"""SIP dialog tracking: SIP messages and RTP in, call-detail records out.

Strategy: one `_Call` per Call-ID holds the mutable tracking state; nothing in it
is written out as is. Requests and responses move the call through its life
(setup, early, answered, ending); SDP offers and answers register the media
endpoints each side announced, so that RTP flows can be attached to the call
that announced them. Every open call has a deadline on packet time, kept in a
heap and re-checked lazily when it falls due: activity only ever pushes a
deadline later, so entries are recomputed when popped instead of on every packet.
A call leaves the tracker only through `_close`, which always yields a record.
"""

from __future__ import annotations

import heapq
import ipaddress
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from voiplog.calls._disposition import Disposition, judge
from voiplog.calls._registrations import CloseReason, RegistrationTracker
from voiplog.calls._settings import CallSettings
from voiplog.cdr import CallRecord, MediaStream, RegistrationRecord, format_ts, make_uid
from voiplog.errors import ParseError
from voiplog.rtp import RtpStream, codec_for
from voiplog.sip import (
    SessionDescription,
    SipMessage,
    charging_icid,
    parse_name_addr,
    parse_sdp,
    session_id,
    uri_user,
)

_US = 1_000_000
_PORTS = struct.Struct(">HH")


class Side(StrEnum):
    CALLER = "caller"
    CALLEE = "callee"


class EndReason(StrEnum):
    """Why the tracker let go of a call (for a call still in progress)."""

    TIMEOUT = "timeout"
    EVICTED = "evicted"
    END_OF_INPUT = "end_of_input"
    SHUTDOWN = "shutdown"


# Classifies the signalling endpoints of a call:
# (caller_ip, callee_ip) -> (subscriber_ip, direction, subscriber object)
Classifier = Callable[[str, str], tuple[str | None, str | None, dict | None]]


_ADDRESS_CACHE: dict[str, bytes | None] = {}


def _packed_address(text: str) -> bytes | None:
    """Packed bytes of an SDP connection address (cached: media servers repeat)."""
    packed = _ADDRESS_CACHE.get(text, b"")
    if packed != b"":
        return packed
    try:
        packed = ipaddress.ip_address(text).packed
    except ValueError:
        packed = None
    if len(_ADDRESS_CACHE) >= 65536:
        _ADDRESS_CACHE.clear()
    _ADDRESS_CACHE[text] = packed
    return packed


def _no_classification(caller_ip: str, callee_ip: str) -> tuple[None, None, None]:
    return None, None, None


class _Hop(NamedTuple):
    """Where a SIP message went: its packet's endpoints and transport."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str


@dataclass(slots=True)
class _Hold:
    """One side putting the other on hold (an offer with sendonly, inactive or 0.0.0.0)."""

    by: Side
    held_us: int
    resumed_us: int | None = None


@dataclass(frozen=True, slots=True)
class _Offer:
    """An SDP offer of an answered call (re-INVITE or UPDATE) awaiting its answer."""

    method: str
    cseq: int
    from_tag: str | None
    by: Side
    holding: bool
    at_us: int


@dataclass(slots=True)
class _Refer:
    """The last REFER of a call: who asked to transfer it, and to whom."""

    by: Side
    referred_to: str | None
    referred_by: str | None
    cseq: int
    status: int | None = None


# The correlation hints a record may carry, in the order they are written.
_CORRELATION_KEYS = ("x_cid", "icid", "session_id", "session_id_remote")


@dataclass(slots=True)
class _Endpoint:
    """A media address:port announced in one side's SDP."""

    call: _Call
    side: Side
    rtpmap: dict
    announced_us: int


def flow_key(src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int) -> bytes:
    """The key of a UDP flow: source and destination address, then the two ports.

    It is laid out as the bytes of an IPv4 (IPv6) header from its source
    address on, followed by a UDP header's ports, so that the pipeline's fast
    path can take it from a frame with a single slice.
    """
    return src_ip + dst_ip + _PORTS.pack(src_port, dst_port)


class MediaFlow:
    """RTP arriving on one UDP flow, attached to the call that announced it."""

    __slots__ = ("call", "dst_ip", "dst_port", "key", "rtpmap", "src_ip", "src_port", "streams")

    def __init__(
        self,
        call: _Call,
        src_ip: bytes,
        src_port: int,
        dst_ip: bytes,
        dst_port: int,
        rtpmap: dict,
    ) -> None:
        self.call = call
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.key = flow_key(src_ip, src_port, dst_ip, dst_port)
        self.rtpmap = rtpmap
        self.streams: dict[bytes, RtpStream] = {}  # by the SSRC's 4 bytes


def _forwarded(branches: list[str], first: list[str]) -> bool:
    """Whether a request with Via `branches` is the one first seen with `first`
    relayed by a proxy: another topmost branch, the transaction's own below it
    (RFC 3261 §16.6 step 8). A retransmission has the same topmost branch."""
    return (
        bool(branches and first) and branches[0] != first[0] and not set(branches).isdisjoint(first)
    )


class _Call:
    __slots__ = (
        "answer_aliases",
        "answer_hop",
        "answer_tag",
        "answered_us",
        "bye_us",
        "call_id",
        "callee_ip",
        "callee_port",
        "caller_ip",
        "caller_port",
        "caller_tag",
        "cancel_us",
        "challenged",
        "correlation",
        "early_sdp",
        "end_us",
        "ended_by",
        "endpoints",
        "final_status",
        "final_us",
        "flags",
        "flows",
        "from_uri",
        "heap_seq",
        "holds",
        "invite_branches",
        "invite_cseq",
        "last_sdp",
        "last_sip_us",
        "offered_not_rtp",
        "other_answers",
        "pending_offer",
        "refer",
        "reinvites",
        "request_uri",
        "ringing_us",
        "started_us",
        "to_tags",
        "to_uri",
        "transport",
        "user_agent",
    )

    def __init__(self, call_id: str, ts_us: int) -> None:
        self.call_id = call_id
        self.started_us = ts_us
        self.last_sip_us = ts_us
        self.ringing_us: int | None = None
        self.answered_us: int | None = None
        self.final_us: int | None = None
        self.final_status: int | None = None
        self.cancel_us: int | None = None
        self.bye_us: int | None = None
        self.end_us: int | None = None  # set once the call is ending (BYE, failure, CANCEL)
        self.ended_by: str | None = None
        self.challenged = False
        self.invite_cseq = 0
        self.invite_branches: list[str] = []  # Via branches of the INVITE, topmost first
        self.caller_tag: str | None = None
        self.to_tags: set[str] = set()
        # In-dialog INVITEs, by (CSeq, From tag) as each side numbers its own
        # requests -> the side that sent it.
        self.reinvites: dict[tuple[int, str | None], Side] = {}
        self.flags: set[str] = set()
        self.endpoints: list[tuple[bytes, int]] = []
        self.flows: list[MediaFlow] = []
        self.offered_not_rtp: list[tuple[bytes, int]] = []  # pending until answered
        self.last_sdp: dict[Side, bytes] = {}
        self.heap_seq = 0
        self.transport = "udp"
        self.caller_ip = ""
        self.caller_port = 0
        self.callee_ip = ""
        self.callee_port = 0
        self.from_uri: str | None = None
        self.to_uri: str | None = None
        self.request_uri: str | None = None
        self.user_agent: str | None = None
        self.answer_tag: str | None = None  # To tag of the first 2xx: the dialog kept
        self.answer_hop: tuple[str, str] | None = None  # (source, destination) of that 2xx
        # To tags of 2xx seen on another hop than the first one: the same answer
        # on another leg of a proxy or B2BUA that rewrites the tag, not a fork.
        self.answer_aliases: set[str] = set()
        # (To tag, status, time) of the 2xx of forks that answered after the first.
        self.other_answers: list[tuple[str, int, int]] = []
        self.early_sdp = False  # a provisional response carried SDP
        self.holds: list[_Hold] = []
        self.pending_offer: _Offer | None = None
        self.refer: _Refer | None = None
        self.correlation: dict[str, str] | None = None

    def last_activity_us(self) -> int:
        last = self.last_sip_us
        for flow in self.flows:
            for stream in flow.streams.values():
                if stream.last_us > last:
                    last = stream.last_us
        return last


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
        classify: Classifier = _no_classification,
        on_weird: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or CallSettings()
        self._classify = classify
        self._weird = on_weird or (lambda kind: None)
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._heap: list[tuple[int, int, str]] = []
        self._seq = 0
        self._done: list[Record] = []
        # Media endpoints announced by SDP: (packed ip, port) -> endpoints, newest last.
        self._expected: dict[tuple[bytes, int], list[_Endpoint]] = {}
        # Flows attached to calls, by `flow_key`; the pipeline's RTP fast path
        # reads this dict directly.
        self.flows: dict[bytes, MediaFlow] = {}
        # Bumped whenever `_expected` changes, so callers may cache misses.
        self.expect_generation = 0
        self.registrations = RegistrationTracker(self.settings, classify, self._weird)

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
    ) -> None:
        """Feed one parsed SIP message seen at `ts_us`."""
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
        if msg.method is not None:
            hop = _Hop(src_ip, src_port, dst_ip, dst_port, transport)
            self._on_request(msg, call_id, ts_us, hop)
        else:
            self._on_response(msg, call_id, ts_us, (src_ip, dst_ip))

    def match_flow(
        self, src_ip: bytes, src_port: int, dst_ip: bytes, dst_port: int
    ) -> MediaFlow | None:
        """Attach a new RTP 5-tuple to the call whose SDP announced it, if any.

        Several calls may announce the same address:port (a media server), so
        the flow goes to a call that announced both of its ends when there is
        one, else to the newest call that announced its destination, else its
        source (a sender behind NAT receives elsewhere than it announced).
        """
        by_dst = self._expected.get((dst_ip, dst_port))
        by_src = self._expected.get((src_ip, src_port))
        chosen: _Endpoint | None = None
        if by_dst and by_src:
            src_calls = {id(e.call) for e in by_src}
            both = [e for e in by_dst if id(e.call) in src_calls]
            if both:
                chosen = both[-1]
        if chosen is None and by_dst:
            chosen = by_dst[-1]
        if chosen is None and by_src:
            chosen = by_src[-1]
        if chosen is None:
            return None
        if len(self.flows) >= self.settings.max_media_flows:
            self._weird("rtp.flow_table_full")
            return None
        flow = MediaFlow(chosen.call, src_ip, src_port, dst_ip, dst_port, chosen.rtpmap)
        self.flows[flow.key] = flow
        chosen.call.flows.append(flow)
        return flow

    def expire(self, now_us: int) -> list[Record]:
        """Close every call and registration whose deadline has passed at `now_us`."""
        self._done += self.registrations.expire(now_us)
        heap = self._heap
        while heap and heap[0][0] <= now_us:
            _, seq, call_id = heapq.heappop(heap)
            call = self._calls.get(call_id)
            if call is None or call.heap_seq != seq:
                continue
            deadline = self._deadline(call)
            if deadline > now_us:
                self._schedule(call, deadline)
                continue
            if call.end_us is not None:
                self._close(call, None)
            else:
                self._close(call, EndReason.TIMEOUT)
        return self.take_records()

    def close_all(self, reason: EndReason = EndReason.END_OF_INPUT) -> list[Record]:
        """Close every open call (end of input, or daemon shutdown), oldest first,
        then every REGISTER chain in progress."""
        for call in sorted(self._calls.values(), key=lambda c: (c.started_us, c.call_id)):
            self._close(call, None if call.end_us is not None else reason)
        self._done += self.registrations.close_all(CloseReason(reason.value))
        return self.take_records()

    def take_records(self) -> list[Record]:
        done, self._done = self._done, []
        done += self.registrations.take_records()
        return done

    # -- requests ------------------------------------------------------------

    def _on_request(self, msg: SipMessage, call_id: str, ts_us: int, hop: _Hop) -> None:
        method = msg.method
        call = self._calls.get(call_id)
        if method == "INVITE":
            call = self._on_invite(msg, call, call_id, ts_us, hop)
            if call is None:
                return
        elif call is None:
            return
        self._touch(call, ts_us)
        sender = self._request_sender(call, msg, hop)
        if method == "CANCEL":
            if call.cancel_us is None and call.answered_us is None and call.final_us is None:
                call.cancel_us = ts_us
                call.ended_by = Side.CALLER.value
                self._mark_ending(call, ts_us)
        elif method == "BYE":
            if self._other_fork(call, msg):
                # The caller releasing a fork that answered after the first one
                # did (RFC 3261 §13.2.2.4): this call goes on.
                return
            if call.bye_us is None:
                call.bye_us = ts_us
                call.ended_by = sender.value
                if call.answered_us is None:
                    call.flags.add("bye_without_answer")
                self._mark_ending(call, ts_us)
        elif method in ("ACK", "PRACK", "UPDATE") or (method == "INVITE" and msg.to and msg.to.tag):
            sdp = self._take_sdp(call, msg, sender, ts_us, answer=method in ("ACK", "PRACK"))
            offer = method == "INVITE" or method == "UPDATE"
            if sdp is not None and offer and call.answered_us is not None:
                # Taken into account once answered 2xx: a refused offer changes nothing.
                call.pending_offer = _Offer(
                    method, msg.cseq_num or 0, msg.from_tag, sender, _is_hold(sdp), ts_us
                )
        elif method == "REFER":
            self._on_refer(call, msg, sender)

    def _on_invite(
        self, msg: SipMessage, call: _Call | None, call_id: str, ts_us: int, hop: _Hop
    ) -> _Call | None:
        cseq = msg.cseq_num or 0
        in_dialog = bool(msg.to and msg.to.tag)
        if call is not None and in_dialog:
            # re-INVITE: remember who sent it so that its answer's SDP is put
            # on the right side.
            key = (cseq, msg.from_.tag if msg.from_ else None)
            if key not in call.reinvites:
                call.reinvites[key] = self._request_sender(call, msg, hop)
                call.flags.add("reinvite")
            return call
        if call is None:
            if in_dialog:
                # The dialog started before the capture did: nothing reliable
                # to build a record from.
                self._weird("sip.invite_unknown_dialog")
                return None
            return self._new_call(msg, call_id, cseq, ts_us, hop)
        if cseq == call.invite_cseq and _forwarded(msg.via_branches, call.invite_branches):
            # The same INVITE on a proxy's next hop (or, captured in the other
            # order, on the hop before it): one call, no retransmission.
            call.flags.add("invite_forwarded")
            return call
        if cseq <= call.invite_cseq:
            call.flags.add("invite_retransmitted")
            return call
        if call.answered_us is not None or call.bye_us is not None:
            # A fresh INVITE reusing the Call-ID of a finished call is a new call.
            self._close(call, None)
            return self._new_call(msg, call_id, cseq, ts_us, hop)
        # Same Call-ID, higher CSeq, no To tag: the INVITE sent again after a
        # 401/407 challenge (or another retryable failure). One call, judged by
        # the new INVITE.
        if call.challenged:
            call.flags.add("auth_challenged")
        else:
            call.flags.add("invite_retried")
        call.invite_cseq = cseq
        call.invite_branches = msg.via_branches
        call.challenged = False
        call.final_status = None
        call.final_us = None
        call.end_us = None
        call.ended_by = None
        self._take_sdp(call, msg, Side.CALLER, ts_us, answer=False)
        self._schedule(call, self._deadline(call))
        return call

    def _new_call(self, msg: SipMessage, call_id: str, cseq: int, ts_us: int, hop: _Hop) -> _Call:
        if len(self._calls) >= self.settings.max_open_calls:
            _, oldest = next(iter(self._calls.items()))
            self._weird("calls.evicted")
            # A call already over (lingering for retransmissions) loses nothing.
            self._close(oldest, None if oldest.end_us is not None else EndReason.EVICTED)
        call = _Call(call_id, ts_us)
        call.invite_cseq = cseq
        call.invite_branches = msg.via_branches
        call.caller_ip, call.caller_port = hop.src_ip, hop.src_port
        call.callee_ip, call.callee_port = hop.dst_ip, hop.dst_port
        call.transport = hop.transport
        call.caller_tag = msg.from_.tag if msg.from_ else None
        call.from_uri = msg.from_.uri if msg.from_ else None
        call.to_uri = msg.to.uri if msg.to else None
        call.request_uri = msg.request_uri
        call.user_agent = msg.get("user-agent")
        self._note_correlation(call, msg, Side.CALLER)
        self._calls[call_id] = call
        self._take_sdp(call, msg, Side.CALLER, ts_us, answer=False)
        self._schedule(call, self._deadline(call))
        return call

    # -- responses -----------------------------------------------------------

    def _on_response(
        self, msg: SipMessage, call_id: str, ts_us: int, hop: tuple[str, str] = ("", "")
    ) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return
        self._touch(call, ts_us)
        status = msg.status or 0
        cseq = msg.cseq_num
        if status >= 200 and call.pending_offer is not None:
            self._settle_offer(call, msg, status)
        if msg.cseq_method != "INVITE":
            if msg.cseq_method in ("PRACK", "UPDATE") and 200 <= status < 300:
                self._take_sdp(call, msg, self._response_sender(call, msg), ts_us, answer=True)
            elif msg.cseq_method == "REFER" and status >= 200:
                refer = call.refer
                if refer is not None and refer.cseq == cseq and refer.status is None:
                    refer.status = status
                    if status < 300:
                        call.flags.add("transferred")
            return
        # A response carries the From tag of the request it answers: the callee's
        # re-INVITE may well have the CSeq of the initial INVITE.
        sent_by = call.reinvites.get((cseq or 0, msg.from_.tag if msg.from_ else None))
        if sent_by is not None or cseq != call.invite_cseq:
            if sent_by is not None and 200 <= status < 300:
                answerer = Side.CALLEE if sent_by is Side.CALLER else Side.CALLER
                self._take_sdp(call, msg, answerer, ts_us, answer=True)
            return
        to_tag = msg.to.tag if msg.to else None
        if to_tag and status > 100 and to_tag not in call.to_tags:
            call.to_tags.add(to_tag)
            if len(call.to_tags) > 1:
                call.flags.add("forked")
        if status > 100 and (
            call.correlation is None or len(call.correlation) < len(_CORRELATION_KEYS)
        ):
            self._note_correlation(call, msg, Side.CALLEE)
        if status < 200:
            if status in (180, 183) and call.ringing_us is None:
                call.ringing_us = ts_us
            if self._take_sdp(call, msg, Side.CALLEE, ts_us, answer=True) is not None:
                call.early_sdp = True
            return
        if status < 300:
            if call.answer_tag is not None and to_tag and to_tag != call.answer_tag:
                if hop != call.answer_hop and hop[::-1] != call.answer_hop:
                    # Another hop: the same answer relayed on another leg under
                    # a tag of the relay's own. Requests with it are the call's.
                    call.answer_aliases.add(to_tag)
                    return
                # A second fork answered too: the first answer made the call; this
                # one is noted, and its media is not the call's.
                if all(t != to_tag for t, _, _ in call.other_answers):
                    call.other_answers.append((to_tag, status, ts_us))
                return
            if call.answered_us is None:
                call.answer_tag = to_tag
                call.answer_hop = hop
                call.answered_us = ts_us
                call.final_status = status
                call.final_us = ts_us
                call.challenged = False
                if call.bye_us is None and call.cancel_us is None:
                    call.end_us = None
                    call.ended_by = None
                elif call.cancel_us is not None and call.bye_us is None:
                    # The answer crossed the CANCEL: the call was set up after all.
                    call.end_us = None
                    call.ended_by = None
                    call.flags.add("cancel_crossed_answer")
                self._schedule(call, self._deadline(call))
            self._take_sdp(call, msg, Side.CALLEE, ts_us, answer=True)
            return
        if call.answered_us is not None or call.final_status is not None:
            return  # a retransmitted final, or another fork's failure after the answer
        call.final_status = status
        call.final_us = ts_us
        call.challenged = status in (401, 407)
        if call.cancel_us is None:
            call.ended_by = Side.CALLEE.value
        self._mark_ending(call, ts_us)

    # -- helpers -------------------------------------------------------------

    def _request_sender(self, call: _Call, msg: SipMessage, hop: _Hop) -> Side:
        tag = msg.from_.tag if msg.from_ else None
        if tag is not None and call.caller_tag is not None:
            return Side.CALLER if tag == call.caller_tag else Side.CALLEE
        if (hop.src_ip, hop.src_port) == (call.caller_ip, call.caller_port):
            return Side.CALLER
        return Side.CALLEE

    def _response_sender(self, call: _Call, msg: SipMessage) -> Side:
        # A response carries the From of the request it answers.
        tag = msg.from_.tag if msg.from_ else None
        return Side.CALLER if tag is not None and tag != call.caller_tag else Side.CALLEE

    def _touch(self, call: _Call, ts_us: int) -> None:
        if ts_us > call.last_sip_us:
            call.last_sip_us = ts_us
        self._calls.move_to_end(call.call_id)

    def _mark_ending(self, call: _Call, ts_us: int) -> None:
        if call.end_us is None:
            call.end_us = ts_us
            self._schedule(call, self._deadline(call))

    def _deadline(self, call: _Call) -> int:
        s = self.settings
        if call.challenged:
            # The retry after a 401/407 may wait for a person to type a password.
            return call.last_sip_us + int(s.setup_timeout_s * _US)
        if call.end_us is not None:
            return max(call.end_us, call.last_sip_us) + int(s.linger_s * _US)
        if call.answered_us is not None:
            return call.last_activity_us() + int(s.idle_timeout_s * _US)
        return call.last_activity_us() + int(s.setup_timeout_s * _US)

    def _schedule(self, call: _Call, deadline_us: int) -> None:
        self._seq += 1
        call.heap_seq = self._seq
        heap = self._heap
        heapq.heappush(heap, (deadline_us, self._seq, call.call_id))
        if len(heap) > 4 * len(self._calls) + 1024:
            # Superseded entries wait for their (possibly distant) deadline to be
            # dropped; when they pile up, keep only each open call's current one.
            calls = self._calls
            heap[:] = [
                entry
                for entry in heap
                if (c := calls.get(entry[2])) is not None and c.heap_seq == entry[1]
            ]
            heapq.heapify(heap)

    def _take_sdp(
        self, call: _Call, msg: SipMessage, side: Side, ts_us: int, answer: bool
    ) -> SessionDescription | None:
        """Register the media endpoints of an SDP offer (`answer` False) or answer.

        RTP endpoints are expected from the moment they are announced. An
        endpoint that moves to something else (T.38 fax over UDPTL) stops being
        RTP only once an answer accepts the change, as RFC 3264 has it: a
        rejected offer changes nothing. Returns the session description when it
        is new from this side, None when there is none or nothing changed.
        """
        body = msg.sdp_body
        if not body:
            return None
        if call.last_sdp.get(side) == body:
            return None  # a retransmission, or the same SDP once more: nothing changes
        call.last_sdp[side] = body
        try:
            sdp = parse_sdp(body)
        except ParseError as exc:
            self._weird(exc.kind)
            return None
        not_rtp: list[tuple[bytes, int]] = []
        for media in sdp.media:
            if media.port == 0 or not media.connection:
                continue
            packed = _packed_address(media.connection)
            if packed is None:
                self._weird("sdp.bad_connection_address")
                continue
            if packed in (b"\0\0\0\0", b"\0" * 16):
                continue  # RFC 2543 hold: no media expected
            key = (packed, media.port)
            if "RTP" not in media.proto.upper():
                not_rtp.append(key)
                continue
            endpoints = self._expected.setdefault(key, [])
            for existing in endpoints:
                if existing.call is call and existing.side is side:
                    existing.rtpmap = media.rtpmap
                    break
            else:
                endpoints.append(_Endpoint(call, side, media.rtpmap, ts_us))
                call.endpoints.append(key)
                self.expect_generation += 1
        if not answer:
            call.offered_not_rtp = not_rtp
            return sdp
        for key in (*call.offered_not_rtp, *not_rtp) if not_rtp else ():
            self._retire_endpoint(call, key)
        call.offered_not_rtp = []
        return sdp

    # -- call flows ----------------------------------------------------------

    def _other_fork(self, call: _Call, msg: SipMessage) -> bool:
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

    @staticmethod
    def _settle_offer(call: _Call, msg: SipMessage, status: int) -> None:
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
            call.holds.append(_Hold(offer.by, offer.at_us))
            call.flags.add("hold")
        elif not offer.holding and current is not None:
            current.resumed_us = offer.at_us

    @staticmethod
    def _on_refer(call: _Call, msg: SipMessage, sender: Side) -> None:
        cseq = msg.cseq_num or 0
        if call.refer is not None and call.refer.cseq == cseq and call.refer.by is sender:
            return  # a retransmission
        referred_to = _uri_of(msg.get("refer-to"))
        # Without a Referred-By (RFC 3892) the referrer is the REFER's sender.
        referred_by = _uri_of(msg.get("referred-by")) or (msg.from_.uri if msg.from_ else None)
        call.refer = _Refer(sender, referred_to, referred_by, cseq)

    @staticmethod
    def _note_correlation(call: _Call, msg: SipMessage, side: Side) -> None:
        """Keep the hints that tie this leg to the other legs of a B2BUA: X-CID,
        the IMS charging id (P-Charging-Vector icid-value) and the RFC 7989
        Session-ID pair. The first value seen of each is kept."""
        x_cid = msg.get("x-cid")
        icid = charging_icid(msg.get("p-charging-vector"))
        sid = session_id(msg.get("session-id"))
        if not x_cid and icid is None and sid is None:
            return
        hints = call.correlation
        if hints is None:
            hints = call.correlation = {}
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

    def _retire_endpoint(self, call: _Call, key: tuple[bytes, int]) -> None:
        endpoints = self._expected.get(key)
        if endpoints:
            endpoints[:] = [e for e in endpoints if e.call is not call]
            if not endpoints:
                del self._expected[key]
            self.expect_generation += 1
        for flow in call.flows:
            ends = ((flow.src_ip, flow.src_port), (flow.dst_ip, flow.dst_port))
            if key in ends and self.flows.get(flow.key) is flow:
                del self.flows[flow.key]

    def _close(self, call: _Call, reason: EndReason | None) -> None:
        self._calls.pop(call.call_id, None)
        for key in call.endpoints:
            endpoints = self._expected.get(key)
            if endpoints is None:
                continue
            endpoints[:] = [e for e in endpoints if e.call is not call]
            if not endpoints:
                del self._expected[key]
        self.expect_generation += 1
        for flow in call.flows:
            if self.flows.get(flow.key) is flow:
                del self.flows[flow.key]
        self._done.append(self._record(call, reason))
        # Flows point back at their call: break the cycle so that the call's
        # memory goes now, not at the next full garbage collection.
        call.flows.clear()

    def _record(self, call: _Call, reason: EndReason | None) -> CallRecord:
        flags = set(call.flags)
        disposition = judge(call.final_status, call.cancel_us is not None)
        ended_by = call.ended_by
        if disposition is Disposition.ANSWERED:
            if call.bye_us is not None:
                ended_us = call.bye_us
            else:
                ended_us = call.last_activity_us()
                flags.add("no_bye")
        elif disposition is Disposition.CANCELLED and call.cancel_us is not None:
            ended_us = call.cancel_us
            ended_by = Side.CALLER.value
        elif call.final_us is not None:
            ended_us = call.final_us
        elif call.bye_us is not None:
            ended_us = call.bye_us
        else:
            ended_us = call.last_activity_us()
        if reason is not None:
            flags.add(reason.value)
            if reason is EndReason.TIMEOUT or reason is EndReason.SHUTDOWN:
                ended_by = reason.value
        answered_us = call.answered_us
        duration = round((ended_us - answered_us) / _US, 6) if answered_us is not None else 0.0
        first_reply = call.ringing_us if call.ringing_us is not None else call.final_us
        setup_ms = (
            (first_reply - call.started_us + 500) // 1000 if first_reply is not None else None
        )
        media = self._media(call)
        directions = {(m.src_ip, m.src_port) for m in media}
        if media and len(directions) == 1:
            flags.add("one_way_media")
        answered_at = format_ts(answered_us)
        if call.early_sdp and media and (answered_at is None or media[0].first_at < answered_at):
            flags.add("early_media")  # RTP flowed before the answer, on a 1xx's SDP
        subscriber_ip, direction, subscriber = self._classify(call.caller_ip, call.callee_ip)
        return CallRecord(
            uid=make_uid("sip", call.call_id, call.started_us, call.caller_ip, call.caller_port),
            kind="sip",
            call_id=call.call_id,
            caller=uri_user(call.from_uri) if call.from_uri else None,
            callee=uri_user(call.to_uri) if call.to_uri else None,
            caller_uri=call.from_uri,
            callee_uri=call.to_uri,
            request_uri=call.request_uri,
            caller_ip=call.caller_ip,
            caller_port=call.caller_port,
            callee_ip=call.callee_ip,
            callee_port=call.callee_port,
            transport=call.transport,
            subscriber_ip=subscriber_ip,
            direction=direction,
            started_at=format_ts(call.started_us),
            ringing_at=format_ts(call.ringing_us),
            answered_at=answered_at,
            ended_at=format_ts(ended_us),
            duration_s=duration,
            setup_ms=setup_ms,
            disposition=disposition.value,
            final_status=call.final_status,
            ended_by=ended_by,
            user_agent=call.user_agent,
            media=media,
            flags=tuple(sorted(flags)),
            subscriber=subscriber,
            extra=self._flow_details(call),
        )

    @staticmethod
    def _flow_details(call: _Call) -> dict:
        """Keys beyond the contract, present only when the call had that flow."""
        extra: dict = {}
        if call.other_answers:
            extra["other_answers"] = [
                {"to_tag": tag, "status": status, "at": format_ts(at)}
                for tag, status, at in call.other_answers
            ]
        if call.holds:
            extra["holds"] = [
                {
                    "by": hold.by.value,
                    "held_at": format_ts(hold.held_us),
                    "resumed_at": format_ts(hold.resumed_us),
                }
                for hold in call.holds
            ]
        refer = call.refer
        if refer is not None:
            extra["referred_to"] = refer.referred_to
            extra["referred_by"] = refer.referred_by
            extra["transfer"] = {"by": refer.by.value, "status": refer.status}
        if call.correlation:
            extra["correlation"] = {key: call.correlation.get(key) for key in _CORRELATION_KEYS}
        return extra

    @staticmethod
    def _media(call: _Call) -> tuple[MediaStream, ...]:
        streams = []
        for flow in call.flows:
            for stream in flow.streams.values():
                s = stream.summary()
                streams.append(MediaStream.from_summary(s))
        streams.sort(key=lambda m: (m.first_at, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.ssrc))
        return tuple(streams)


def _is_hold(sdp: SessionDescription) -> bool:
    """Whether an offer puts the other side on hold: its audio is sendonly or
    inactive, or sent to 0.0.0.0 (RFC 2543), as RFC 6337 §5.3 describes."""
    streams = [m for m in sdp.media if m.port != 0 and m.media == "audio"]
    if not streams:
        streams = [m for m in sdp.media if m.port != 0]
    return bool(streams) and all(
        m.direction in ("sendonly", "inactive") or m.connection == "0.0.0.0" for m in streams
    )


def _uri_of(value: str | None) -> str | None:
    """The URI of a name-addr header value (Refer-To, Referred-By), else None."""
    if not value:
        return None
    try:
        return parse_name_addr(value).uri
    except ParseError:
        return None


def new_stream(flow: MediaFlow, ssrc: bytes, payload_type: int, fmt_ip: Callable) -> RtpStream:
    """Create and attach the RTP stream of one SSRC on a flow."""
    codec, clock = codec_for(payload_type, flow.rtpmap)
    stream = RtpStream(
        fmt_ip(flow.src_ip),
        flow.src_port,
        fmt_ip(flow.dst_ip),
        flow.dst_port,
        int.from_bytes(ssrc, "big"),
        payload_type,
        codec,
        clock,
        flow.rtpmap,
    )
    flow.streams[ssrc] = stream
    return stream
