"""The packet pipeline: frames in, call-detail records out.

Frame -> decode -> (RTP of a known flow | SIP | candidate RTP) -> call tracker;
UDP that no SDP announced and TLS that may carry SIP -> flow classifier.
This loop runs once per packet, so it is written for speed: the RTP of flows
already attached to a call (most of the traffic) is handled with one dict
lookup on the 5-tuple and one on the SSRC, before anything else is tried.
`feed` reads as the two paths: the fast path (`voiplog._fastpath`, compiled in
`_cpipeline` when built), which takes that RTP and yields every other frame, and
`_packet`, the general path, which decodes a frame
and hands it on by protocol (`_udp`, `_tcp`, `_sctp`).
Packet time is the clock; `expire` runs once per second of it (the live daemon
also calls `expire` with wall-clock time while traffic is idle).

The general (slow) path also reassembles IP fragments, follows the TCP
connections that carry SIP (and SIP over WebSocket) through
`voiplog.sip.SipStreamTable`, drops mirror copies when a dedup window is set,
and notes the outer tunnel of each call's first INVITE, which is added to the
call's record as ``tunnel`` when it is written.

One file, just over 600 lines: the `Pipeline` is the one place where a packet
is handed from one part to the next (decoding, reassembly, SIP, RTP, HEP,
RADIUS, the flow classifier) and where records leave, enriched; each step is
a short method, and the parts themselves live in their own packages.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voiplog._extensions import compiled
from voiplog._fastpath import EXPIRE_EVERY_US, fast_path, udp_fields
from voiplog.calls import CallSettings, CallTracker, EndReason, flow_key
from voiplog.cdr import CallRecord, RegistrationRecord
from voiplog.errors import ParseError
from voiplog.flows import AppClassifier, FlowClassifier, FlowSettings, looks_like_tls
from voiplog.packet import (
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    Datagram,
    DecodeError,
    TcpSegment,
    decode_fragment,
    decode_general,
    decode_tcp,
    decode_transport,
    format_ip,
)
from voiplog.packet.hep import (
    HEP_PAYLOAD_NAMES,
    HEP_SIP,
    HepError,
    HepGate,
    HepSettings,
    HepTcpStreams,
    decode_hep,
)
from voiplog.packet.ipfrag import FragmentReassembler
from voiplog.packet.mirror import MirrorDedup, SourceCopiesInUse
from voiplog.packet.sctp import SctpReassembler
from voiplog.packet.tunnel import outer_tunnel
from voiplog.rtp import is_rtp_of_flow, looks_like_rtp
from voiplog.settings import DEFAULT_SIP_PORTS, ReassemblySettings
from voiplog.sip import SipStreamTable, looks_like_sip, parse_message

if TYPE_CHECKING:
    from voiplog.cdr.sip_call import SubscriberLookup
    from voiplog.enrich.enricher import Enricher

# The fast path compiled (`_cpipeline.pyx`), else its pure-Python reference.
_cpipeline = compiled("voiplog._cpipeline")
_FastPath = _cpipeline.FastPath if _cpipeline is not None else fast_path
_udp_fields = _cpipeline.udp_fields if _cpipeline is not None else udp_fields

# Requests whose packet's outer tunnel is noted for the record of their Call-ID.
_TUNNELLED_METHODS = frozenset({"INVITE", "REGISTER"})

# A datagram of nothing but these bytes is a keepalive (RFC 5626 CRLF, a NUL).
_KEEPALIVE = b"\r\n\0 "
_KEEPALIVE_BYTES = frozenset(_KEEPALIVE)

_MAX_NEGATIVE_FLOWS = 200_000
# How long a SIP message is remembered to tell a copy from another source
# (capture and HEP, two HEP nodes) from a retransmission: one to two windows.
_COPY_WINDOW_US = 5_000_000
_COPY_KINDS = {"source": "sip.copy_from_another_source", "echo": "sip.mirror_copy"}

# Transport of a SIP message sent by HEP, by the IP protocol of the original packet.
_HEP_TRANSPORTS = {17: "udp", 6: "tcp", 132: "sctp"}

log = logging.getLogger("voiplog.pipeline")


@dataclass
class PipelineStats:
    """What went through the pipeline, for the summary and metrics."""

    packets: int = 0
    not_ip: int = 0
    udp: int = 0
    tcp: int = 0
    sip_messages: int = 0
    rtp_packets: int = 0
    media_session_packets: int = 0  # RTP of media sessions, taken by the fast path
    records: int = 0  # call, media and encrypted-session records
    app_classifier_packets: int = 0  # datagrams handed to the application classifier
    registrations: int = 0  # registration records
    sip_requests: Counter = field(default_factory=Counter)
    sip_responses: Counter = field(default_factory=Counter)
    dispositions: Counter = field(default_factory=Counter)
    reassembled: int = 0  # IP datagrams rebuilt from fragments
    mirror_duplicates: int = 0  # mirror copies dropped
    parse_errors: Counter = field(default_factory=Counter)  # unreadable packets, by kind
    weird: Counter = field(default_factory=Counter)  # oddities in readable traffic, by kind
    radius_packets: int = 0  # RADIUS accounting requests read
    enrichment: Counter = field(default_factory=Counter)  # subscriber/remote found or not
    hep: Counter = field(default_factory=Counter)  # HEP packets read, by payload kind


class Pipeline:
    """Feeds frames through decoding, SIP and RTP tracking into `emit`."""

    def __init__(
        self,
        emit: Callable[[CallRecord | RegistrationRecord], None],
        *,
        sip_ports: Iterable[int] = DEFAULT_SIP_PORTS,
        call_settings: CallSettings | None = None,
        lookup_subscriber: SubscriberLookup | None = None,
        on_parse_error: Callable[[int, ParseError], None] | None = None,
        flow_settings: FlowSettings | None = None,
        reassembly: ReassemblySettings | None = None,
        enricher: Enricher | None = None,
        radius_ports: Iterable[int] = (),
        apps: AppClassifier | None = None,
        hep: HepSettings | None = None,
    ) -> None:
        """`on_parse_error(packet_number, error)` hears of every unreadable packet;
        packets are numbered from 1 across everything this pipeline is fed.

        `lookup_subscriber` says which end of a call is the subscriber (default:
        neither). `enricher` fills each record's subscriber (and
        a call's remote) before it is written; UDP to `radius_ports` feeds its RADIUS sessions.
        `apps` (see `voiplog.apps.open_app_classifier`) names the application of UDP
        flows for app-call records. UDP and TCP to the ports of `hep` (default: 9060)
        is read as HEP, its SIP fed on as if captured (see `feed_hep`).
        """
        self.stats = PipelineStats()
        self._emit = emit
        self._on_parse_error = on_parse_error
        self._number = 0  # number of the packet in the slow path, for error reports
        self.sip_ports = frozenset(sip_ports)
        kwargs = {"lookup_subscriber": lookup_subscriber} if lookup_subscriber is not None else {}
        self.tracker = CallTracker(call_settings, on_weird=self._count_weird, **kwargs)
        # UDP that no SDP announced and TLS that may carry SIP go to the flow
        # classifier, for media and encrypted session records (None: disabled).
        flow_settings = flow_settings or FlowSettings()
        self.classifier = (
            FlowClassifier(flow_settings, on_weird=self._count_weird, apps=apps, **kwargs)
            if flow_settings.enabled
            else None
        )
        self._next_expire_us = 0
        self._now_us = 0
        # RTP-looking flows that matched no SDP, with the expectation generation
        # at which they were tried: retried only when new SDP arrives.
        self._unmatched: dict[bytes, int] = {}
        reassembly = reassembly or ReassemblySettings()
        self.fragments = FragmentReassembler(reassembly.fragments, self._count_weird)
        self.streams = SipStreamTable(
            self.sip_ports,
            reassembly.tcp,
            max_buffer=reassembly.max_stream_buffer,
            on_weird=self._count_weird,
            on_error=self._parse_error,
        )
        self.sctp = SctpReassembler(reassembly.tcp, self._count_weird)
        self._dedup = (
            MirrorDedup(reassembly.mirror_window_us, reassembly.mirror_max_entries)
            if reassembly.mirror_window_us > 0
            else None
        )
        # Keys each open call's record gets beside the tracker's, learnt from its
        # packets, by Call-ID: the outer tunnel of its first INVITE (`tunnel`),
        # the HEP node its signalling came from (`source`). Added to the record
        # when written. Bounded like the call table it shadows, with room for the
        # INVITE that makes the tracker evict a call and for messages that open
        # no call (their entries go first).
        self._call_extras: OrderedDict[str, dict] = OrderedDict()
        self._max_call_extras = self.tracker.settings.max_open_calls + 1024
        self._enricher = enricher
        self._accounting = enricher.radius if enricher is not None else None
        self.radius_ports = frozenset(radius_ports) if self._accounting is not None else frozenset()
        if enricher is not None:
            self.stats.enrichment = enricher.stats
        hep = hep or HepSettings()
        # The same SIP message captured and also sent as HEP (or sent by two HEP
        # nodes), or captured twice within milliseconds (a port mirrored twice),
        # is one message, not a retransmission.
        self._copies = SourceCopiesInUse(_COPY_WINDOW_US)
        self.hep_ports = hep.ports
        self._hep_gate = HepGate(hep)
        self._hep_streams = HepTcpStreams(
            reassembly.tcp, reassembly.max_stream_buffer, self._count_weird
        )

    def _count_weird(self, kind: str) -> None:
        self.stats.weird[kind] += 1

    def _parse_error(self, error: ParseError) -> None:
        self.stats.parse_errors[error.kind] += 1
        if self._on_parse_error is not None:
            self._on_parse_error(self._number, error)

    def feed(
        self,
        frames: Iterable[tuple[int, int, bytes]],
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """Run every (ts_us, linktype, frame) through the pipeline."""
        for ts, linktype, frame, udp in _FastPath(self, frames, on_progress):
            self._packet(ts, linktype, frame, udp)

    def _packet(self, ts: int, linktype: int, frame: bytes, udp: int) -> None:
        """The general path: one frame decoded (or reassembled), then handed on by protocol."""
        if udp:
            # Ethernet/IPv4/UDP as the fast path read it: no need to decode it again;
            # the flow key is the frame's addresses and ports as they stand.
            proto = PROTO_UDP
            src, sport, dst, dport, payload, key = _udp_fields(frame, udp)
        else:
            try:
                datagram = decode_general(linktype, frame)  # the fast path read it already
            except DecodeError as exc:
                self._parse_error(exc)
                return
            if datagram is None:
                datagram = self._reassemble(ts, linktype, frame)
                if datagram is None:
                    return
            proto, src, sport, dst, dport, payload = datagram[:6]
            key = flow_key(src, sport, dst, dport) if proto == PROTO_UDP else None
        dedup = self._dedup
        if dedup is not None and (payload or proto != PROTO_TCP):
            if proto == PROTO_UDP:
                seen = dedup.seen(key + payload, ts)
            else:
                seen = dedup.seen(b"\x06" + flow_key(src, sport, dst, dport) + payload, ts)
            if seen:
                self.stats.mirror_duplicates += 1
                return
        if proto == PROTO_UDP:
            self._udp(ts, src, sport, dst, dport, payload, linktype, frame, key)
        elif proto == PROTO_TCP:
            self.stats.tcp += 1
            if self.classifier is not None and looks_like_tls(payload):
                self._write_all(self.classifier.feed_tcp(ts, src, sport, dst, dport, payload))
            else:
                self._tcp(ts, linktype, frame, datagram)
        elif proto == PROTO_SCTP:
            self._sctp(ts, datagram)

    def _udp(
        self,
        ts: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        payload: bytes,
        linktype: int,
        frame: bytes,
        key: bytes,
    ) -> None:
        """One UDP datagram (`key`: its `flow_key`): RTP of a known flow, RADIUS,
        HEP, SIP, or new RTP."""
        stats = self.stats
        stats.udp += 1
        flow = self.tracker.flows.get(key)
        if flow is not None and len(payload) >= 12 and is_rtp_of_flow(payload[0], payload[1]):
            flow.add_rtp(ts, payload)
            stats.rtp_packets += 1
        elif self.radius_ports and dport in self.radius_ports:
            self._radius(ts, src, payload)
        elif self.hep_ports and dport in self.hep_ports:
            self._hep(ts, payload, src)
        elif sport in self.sip_ports or dport in self.sip_ports or looks_like_sip(payload):
            self._sip(ts, src, sport, dst, dport, payload, "udp", linktype, frame)
        elif flow is None and looks_like_rtp(payload):
            self._new_rtp(ts, key, src, sport, dst, dport, payload)
        elif flow is None and self.classifier is not None and payload:
            # STUN, DTLS, TURN ChannelData, RTCP: the classifier's to judge.
            self._write_all(self.classifier.feed_udp(ts, src, sport, dst, dport, payload))

    def _new_rtp(
        self, ts: int, key: bytes, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> None:
        """RTP of a flow not seen before: attached to the call whose SDP announced it,
        else the flow classifier's. A miss is remembered until new SDP arrives."""
        unmatched = self._unmatched
        classifier = self.classifier
        generation = self.tracker.media.generation
        flow = None
        if unmatched.get(key) != generation:
            flow = self.tracker.match_flow(src, sport, dst, dport)
            if flow is None:
                if len(unmatched) >= _MAX_NEGATIVE_FLOWS:
                    unmatched.clear()
                unmatched[key] = generation
        if flow is None:
            self.stats.weird["rtp.unmatched"] += 1
            if classifier is not None:
                self._write_all(classifier.feed_udp(ts, src, sport, dst, dport, payload))
            return
        if classifier is not None:
            classifier.claim(src, sport, dst, dport)
        unmatched.pop(key, None)
        flow.add_rtp(ts, payload)
        self.stats.rtp_packets += 1

    def _sip(
        self,
        ts: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        payload: bytes,
        transport: str,
        linktype: int = -1,
        frame: bytes = b"",
        source: dict | None = None,
    ) -> None:
        stats = self.stats
        # Only blanks (a keepalive): tested on the first byte before stripping a copy.
        if (not payload or payload[0] in _KEEPALIVE_BYTES) and not payload.strip(_KEEPALIVE):
            stats.weird["sip.keepalive"] += 1
            return
        way = ("hep", source["node_id"]) if source is not None else "capture"
        copy = self._copies.copy((src, sport, dst, dport, payload), payload, way, ts)
        if copy is not None:
            stats.weird[_COPY_KINDS[copy]] += 1
            return
        try:
            msg = parse_message(payload)
        except ParseError as exc:
            self._parse_error(exc)
            return
        stats.sip_messages += 1
        for anomaly in msg.anomalies:
            stats.weird[anomaly] += 1
        if msg.method is not None:
            stats.sip_requests[msg.method] += 1
        else:
            stats.sip_responses[msg.status] += 1
        if msg.call_id is not None:
            if frame and msg.method in _TUNNELLED_METHODS:
                self._note_tunnel(msg.call_id, linktype, frame)
            if source is not None:
                self._note_extra(msg.call_id, "source", source)
        self.tracker.on_sip(
            msg,
            ts,
            format_ip(src),
            sport,
            format_ip(dst),
            dport,
            transport,
            source.get("correlation_id") if source is not None else None,
        )
        self._drain()

    def feed_hep(self, packets: Iterable[tuple[int, bytes, object]]) -> None:
        """Run every (received_us, hep_packet, sender) through the pipeline: the HEP
        listener's path. The clock is the time of receipt; each SIP message keeps the
        capture time its sender wrote."""
        stats = self.stats
        for received, data, sender in packets:
            stats.packets += 1
            self._number = stats.packets
            if received >= self._next_expire_us:
                self._now_us = max(self._now_us, received)
                self._expire(self._now_us)
                self._next_expire_us = self._now_us + EXPIRE_EVERY_US
            self._hep(received, data, sender)

    def _hep(self, ts: int, data: bytes, sender: object) -> None:
        """One HEP packet: its SIP goes on as a captured message would."""
        stats = self.stats
        try:
            msg = decode_hep(data)
        except HepError as exc:
            self._parse_error(exc)
            return
        if msg.unknown_chunks:
            stats.weird["hep.unknown_chunk"] += msg.unknown_chunks
        refused = self._hep_gate.reject(msg, sender, ts)
        if refused is not None:
            stats.weird[refused] += 1
            return
        kind = HEP_PAYLOAD_NAMES.get(msg.payload_type, "other")
        stats.hep[kind] += 1
        if msg.payload_type != HEP_SIP:
            return  # RTCP and QoS reports: counted, not (yet) part of a record
        transport = _HEP_TRANSPORTS.get(msg.proto)
        if transport is None:
            stats.weird["hep.other_protocol"] += 1
            return
        source = {"type": "hep", "node_id": msg.node_id}
        if msg.correlation_id is not None:
            source["correlation_id"] = msg.correlation_id
        self._sip(
            msg.ts_us or ts,
            msg.src_ip,
            msg.src_port,
            msg.dst_ip,
            msg.dst_port,
            msg.payload,
            transport,
            source=source,
        )

    def _hep_tcp(
        self, ts: int, linktype: int, frame: bytes, datagram: Datagram | TcpSegment, key: tuple
    ) -> None:
        """A segment of a captured HEP-over-TCP connection."""
        segment = datagram if type(datagram) is TcpSegment else decode_tcp(linktype, frame)
        if segment is None:
            return
        ack = segment.ack if segment.flags & 0x10 else None
        streams = self._hep_streams
        for when, packet, way in streams.segment(
            key, segment.seq, segment.flags, segment.payload, ts, ack
        ):
            self._hep(when, packet, way[0])

    def _reassemble(self, ts: int, linktype: int, frame: bytes) -> Datagram | TcpSegment | None:
        """The datagram an IP fragment completes, if it is one and completes it."""
        fragment = decode_fragment(linktype, frame)
        if fragment is None:
            self.stats.not_ip += 1
            return None
        dedup = self._dedup
        if dedup is not None and dedup.seen(
            (fragment.src_ip, fragment.dst_ip, fragment.ident, fragment.offset, fragment.data), ts
        ):
            self.stats.mirror_duplicates += 1
            return None
        data = self.fragments.add(fragment, ts)
        if data is None:
            return None
        self.stats.reassembled += 1
        try:
            return decode_transport(
                fragment.proto, fragment.src_ip, fragment.dst_ip, data, detail=True
            )
        except DecodeError as exc:
            self._parse_error(exc)
            return None

    def _tcp(self, ts: int, linktype: int, frame: bytes, datagram: Datagram | TcpSegment) -> None:
        """One TCP segment: fed to the stream table when it may carry SIP."""
        src, sport, dst, dport, payload = datagram[1:6]
        key = (src, sport, dst, dport)
        hep_ports = self.hep_ports
        if hep_ports and (dport in hep_ports or sport in hep_ports):
            self._hep_tcp(ts, linktype, frame, datagram, key)
            return
        streams = self.streams
        if type(datagram) is not TcpSegment:
            sip_ports = self.sip_ports
            if not (
                streams.tcp.get(key) is not None
                or sport in sip_ports
                or dport in sip_ports
                or (payload and streams.wants(key, 0, payload))
            ):
                return
            # Sequence number and flags: walked again only for the few segments
            # of connections that carry SIP.
            datagram = decode_tcp(linktype, frame)
            if datagram is None:
                return
        ack = datagram.ack if datagram.flags & 0x10 else None
        messages = streams.segment(key, datagram.seq, datagram.flags, payload, ts, ack)
        for way, when, message, transport in messages:
            if way is key:
                self._sip(when, src, sport, dst, dport, message, transport, linktype, frame)
            else:
                self._sip(when, way[0], way[1], way[2], way[3], message, transport)

    def _sctp(self, ts: int, datagram: Datagram) -> None:
        """One SCTP packet: the SIP of the user messages it completes."""
        src, sport, dst, dport, chunks = datagram[1:6]
        try:
            messages = self.sctp.packet((src, sport, dst, dport), chunks, ts)
        except ParseError as exc:
            self._parse_error(exc)
            return
        sip_ports = self.sip_ports
        for _ppid, message in messages:
            if sport in sip_ports or dport in sip_ports or looks_like_sip(message):
                self._sip(ts, src, sport, dst, dport, message, "sctp")

    def _note_tunnel(self, call_id: str, linktype: int, frame: bytes) -> None:
        if "tunnel" in self._call_extras.get(call_id, ()):
            return
        tunnel = outer_tunnel(linktype, frame)
        if tunnel is not None:
            self._note_extra(call_id, "tunnel", tunnel.to_dict())

    def _note_extra(self, call_id: str, key: str, value: dict) -> None:
        """`key` of the record of call `call_id`, unless a message before set it."""
        extras = self._call_extras.get(call_id)
        if extras is None:
            if len(self._call_extras) >= self._max_call_extras:
                self._call_extras.popitem(last=False)
                self.stats.weird["call_extras.table_full"] += 1
            extras = self._call_extras[call_id] = {}
        extras.setdefault(key, value)

    def expire(self, now_us: int) -> None:
        """Expire what is due at `now_us` without a packet: the live daemon calls this
        with wall-clock time when traffic is idle (the same path `feed` takes once per
        second of packet time). A clock behind the last packet seen changes nothing."""
        if now_us > self._now_us:
            self._now_us = now_us
        self._expire(self._now_us)
        self._next_expire_us = self._now_us + EXPIRE_EVERY_US

    def _radius(self, ts: int, src: bytes, payload: bytes) -> None:
        try:
            if self._accounting.feed(payload, ts, format_ip(src)) is not None:
                self.stats.radius_packets += 1
        except ParseError as exc:
            self._parse_error(exc)

    def _expire(self, now_us: int) -> None:
        self.fragments.expire(now_us)
        self.sctp.expire(now_us)
        for when, packet, way in self._hep_streams.expire(now_us):
            self._hep(when, packet, way[0])
        for (src, sport, dst, dport), ts, message, transport in self.streams.expire(now_us):
            self._sip(ts, src, sport, dst, dport, message, transport)
        if self._accounting is not None:
            self._accounting.expire(now_us)
        for record in self.tracker.expire(now_us):
            self._write(record)
        if self.classifier is not None:
            self._write_all(self.classifier.expire(now_us))
            self._app_counts()

    def _drain(self) -> None:
        for record in self.tracker.take_records():
            self._write(record)

    def _write_all(self, records: Iterable[CallRecord]) -> None:
        for record in records:
            self._write(record)

    def _write(self, record: CallRecord | RegistrationRecord) -> None:
        if self._call_extras:
            extras = self._call_extras.pop(getattr(record, "call_id", None), None)
            if extras and hasattr(record, "extra"):
                # The record's `extra` is a dict made for it alone (by the tracker
                # or the flow table that built it), and no one else has the record
                # yet: the pipeline's keys go in without copying the record.
                record.extra.update(extras)
        if self._enricher is not None:
            try:
                record = self._enricher.enrich(record)
            except Exception as exc:  # a bug in enrichment must not lose the record
                # The record goes out unenriched; the failure is counted by kind,
                # and said once per kind (with the traceback at debug level).
                kind = f"enrich.failed.{type(exc).__name__}"
                counts = self.stats.enrichment
                if not counts[kind]:
                    log.error(
                        "enrichment failed (%s: %s); record %s is written without it, "
                        "and later failures of this kind are only counted (%s)",
                        type(exc).__name__, exc, record.uid, kind,
                    )  # fmt: skip
                    log.debug("enrichment failure", exc_info=True)
                counts[kind] += 1
                counts["enrich.failed"] += 1
        if type(record) is RegistrationRecord:
            self.stats.registrations += 1
        else:
            self.stats.records += 1
            self.stats.dispositions[record.disposition] += 1
        self._emit(record)

    def finish(self, reason: EndReason = EndReason.END_OF_INPUT) -> None:
        """End of input: expire what is due, then close every open call."""
        self._expire(self._now_us)
        for (src, sport, dst, dport), ts, message, transport in self.streams.flush():
            self._sip(ts, src, sport, dst, dport, message, transport)
        for record in self.tracker.close_all(reason):
            self._write(record)
        if self.classifier is not None:
            self._write_all(self.classifier.close_all(reason))
            self._app_counts()

    def suspend(self, reason: EndReason = EndReason.SHUTDOWN) -> dict:
        """End of a run that a later one continues: as `finish`, but the open calls,
        REGISTER chains, media sessions and app calls are returned as plain data
        (`snapshot`) instead of being closed."""
        self._expire(self._now_us)
        for (src, sport, dst, dport), ts, message, transport in self.streams.flush():
            self._sip(ts, src, sport, dst, dport, message, transport)
        if self.classifier is not None:
            self._app_counts()
        return self.snapshot()

    def snapshot(self) -> dict:
        """What is open, as plain data: the tracker's calls and REGISTER chains
        (`CallTracker.snapshot`) and, under ``media_sessions``, the flow
        classifier's sessions (`FlowClassifier.snapshot`; None without one)."""
        state = self.tracker.snapshot()
        state["media_sessions"] = (
            self.classifier.snapshot() if self.classifier is not None else None
        )
        return state

    def restore(self, state: dict, gap: tuple[int, int] | None = None) -> tuple[int, int]:
        """Take back a `snapshot` before any packet: (calls, media sessions) restored.

        Raises ValueError, changing nothing, for a state that does not read: the
        media sessions are read whole into a scratch classifier first."""
        media = state.get("media_sessions")
        if media is not None and self.classifier is not None:
            FlowClassifier(self.classifier.settings).restore(media, gap)
        calls = self.tracker.restore(state, gap)
        sessions = 0
        if media is not None and self.classifier is not None:
            sessions = self.classifier.restore(media, gap)
        return calls, sessions

    def _app_counts(self) -> None:
        classifier = self.classifier
        self.stats.app_classifier_packets = classifier.app_datagrams
        if classifier.app_attempts_without_media:
            # Calls of call apps that never carried media (unanswered, or STUN
            # checks alone): no record, but counted where oddities are.
            self.stats.weird["app.call_without_media"] = classifier.app_attempts_without_media
