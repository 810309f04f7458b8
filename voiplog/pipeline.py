"""The packet pipeline: frames in, call-detail records out.

Frame -> decode -> (RTP of a known flow | SIP | candidate RTP) -> call tracker.
This loop runs once per packet, so it is written for speed: the RTP of flows
already attached to a call (most of the traffic) is handled with one dict
lookup on the 5-tuple and one on the SSRC, before anything else is tried.
Packet time is the only clock; `expire` runs once per second of it.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from voiplog.calls import CallSettings, CallTracker, EndReason, flow_key, new_stream
from voiplog.cdr import CallRecord
from voiplog.errors import ParseError
from voiplog.packet import PROTO_TCP, PROTO_UDP, DecodeError, decode, format_ip
from voiplog.rtp import looks_like_rtp
from voiplog.sip import looks_like_sip, parse_message, split_stream

# Ports always treated as SIP; SIP on any other port is found by its start line.
DEFAULT_SIP_PORTS = (5060, 5061, 5062, 5070, 5080, 5090, 5160)

_EXPIRE_EVERY_US = 1_000_000

# What the fast path reads of an Ethernet/IPv4/UDP/RTP frame, at these offsets:
# EtherType 12, version+IHL 14, flags+fragment offset 20, protocol 23, UDP
# length 38, the first two RTP bytes 42 (all 4 bytes later behind an 802.1Q tag).
_FAST_FIELDS = struct.Struct(">12xHB5xHxB14xH2xBB")
_MAX_NEGATIVE_FLOWS = 200_000


@dataclass
class PipelineStats:
    """What went through the pipeline, for the summary and metrics."""

    packets: int = 0
    not_ip: int = 0
    udp: int = 0
    tcp: int = 0
    sip_messages: int = 0
    rtp_packets: int = 0
    records: int = 0
    sip_requests: Counter = field(default_factory=Counter)
    sip_responses: Counter = field(default_factory=Counter)
    dispositions: Counter = field(default_factory=Counter)
    parse_errors: Counter = field(default_factory=Counter)  # unreadable packets, by kind
    weird: Counter = field(default_factory=Counter)  # oddities in readable traffic, by kind
    radius_packets: int = 0  # RADIUS accounting requests read
    enrichment: Counter = field(default_factory=Counter)  # subscriber/remote found or not


class Pipeline:
    """Feeds frames through decoding, SIP and RTP tracking into `emit`."""

    def __init__(
        self,
        emit: Callable[[CallRecord], None],
        *,
        sip_ports: Iterable[int] = DEFAULT_SIP_PORTS,
        call_settings: CallSettings | None = None,
        classify=None,
        on_parse_error: Callable[[int, ParseError], None] | None = None,
        enricher: Any = None,
        radius_ports: Iterable[int] = (),
    ) -> None:
        """`on_parse_error(packet_number, error)` hears of every unreadable packet;
        packets are numbered from 1 across everything this pipeline is fed.

        `enricher` (a `voiplog.enrich.Enricher`) fills each record's subscriber and
        remote before it is written; UDP to `radius_ports` feeds its RADIUS sessions.
        """
        self.stats = PipelineStats()
        self._emit = emit
        self._on_parse_error = on_parse_error
        self._number = 0  # number of the packet in the slow path, for error reports
        self.sip_ports = frozenset(sip_ports)
        kwargs = {"classify": classify} if classify is not None else {}
        self.tracker = CallTracker(call_settings, on_weird=self._count_weird, **kwargs)
        self._next_expire_us = 0
        self._now_us = 0
        # RTP-looking flows that matched no SDP, with the expectation generation
        # at which they were tried: retried only when new SDP arrives.
        self._unmatched: dict[bytes, int] = {}
        self._enricher = enricher
        self._accounting = enricher.radius if enricher is not None else None
        self.radius_ports = frozenset(radius_ports) if self._accounting is not None else frozenset()
        if enricher is not None:
            self.stats.enrichment = enricher.stats

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
        stats = self.stats
        weird = stats.weird
        tracker = self.tracker
        flows = tracker.flows
        sip_ports = self.sip_ports
        radius_ports = self.radius_ports
        unmatched = self._unmatched
        fast_fields = _FAST_FIELDS.unpack_from
        next_expire = self._next_expire_us
        now = self._now_us
        ts = now
        fast = 0  # packets taken by the fast path (RTP in UDP)
        slow = 0
        rtp = 0
        udp = 0
        for ts, linktype, frame in frames:
            if ts >= next_expire:
                # Once per second of packet time: expire calls, report progress.
                if ts > now:
                    now = ts
                self._now_us = now
                self._expire(now)
                next_expire = now + _EXPIRE_EVERY_US
                if on_progress is not None:
                    on_progress()

            # Fast path for the bulk of the traffic: RTP of a flow already
            # attached to a call, in Ethernet (untagged or one 802.1Q tag) /
            # IPv4 without options, not fragmented / UDP. It reads the frame in
            # place; anything it does not accept takes the general path below.
            if linktype == 1 and len(frame) >= 58:
                ethertype, ver_ihl, frag, proto, udp_len, rtp0, rtp1 = fast_fields(frame)
                ip = 14
                if ethertype == 0x8100:
                    ethertype, ver_ihl, frag, proto, udp_len, rtp0, rtp1 = fast_fields(frame, 4)
                    ip = 18
                if (
                    ethertype == 0x0800
                    and ver_ihl == 0x45
                    and proto == 17
                    and not frag & 0x3FFF
                    and udp_len >= 20
                    and rtp0 & 0xC0 == 0x80
                    and not 72 <= rtp1 & 0x7F <= 79  # RTCP multiplexed on the RTP port
                ):
                    flow = flows.get(frame[ip + 12 : ip + 24])
                    if flow is not None:
                        ssrc = frame[ip + 36 : ip + 40]
                        stream = flow.streams.get(ssrc)
                        if stream is None:
                            stream = new_stream(flow, ssrc, rtp1 & 0x7F, format_ip)
                        stream.add(ts, frame, ip + 28)
                        fast += 1
                        continue

            slow += 1
            self._number = stats.packets + fast + slow
            if ts > now:
                now = ts
            try:
                datagram = decode(linktype, frame)
            except DecodeError as exc:
                self._parse_error(exc)
                continue
            if datagram is None:
                stats.not_ip += 1
                continue
            proto, src, sport, dst, dport, payload = datagram
            if proto == PROTO_UDP:
                udp += 1
                key = flow_key(src, sport, dst, dport)
                flow = flows.get(key)
                if (
                    flow is not None
                    and len(payload) >= 12
                    and payload[0] & 0xC0 == 0x80
                    and not 72 <= payload[1] & 0x7F <= 79  # RTCP multiplexed on the RTP port
                ):
                    ssrc = payload[8:12]
                    stream = flow.streams.get(ssrc)
                    if stream is None:
                        stream = new_stream(flow, ssrc, payload[1] & 0x7F, format_ip)
                    stream.add(ts, payload)
                    rtp += 1
                    continue
                if radius_ports and dport in radius_ports:
                    self._radius(ts, src, payload)
                    continue
                if sport in sip_ports or dport in sip_ports or looks_like_sip(payload):
                    self._sip(ts, src, sport, dst, dport, payload, "udp")
                elif flow is None and looks_like_rtp(payload):
                    generation = tracker.expect_generation
                    if unmatched.get(key) == generation:
                        weird["rtp.unmatched"] += 1
                        continue
                    flow = tracker.match_flow(src, sport, dst, dport)
                    if flow is None:
                        if len(unmatched) >= _MAX_NEGATIVE_FLOWS:
                            unmatched.clear()
                        unmatched[key] = generation
                        weird["rtp.unmatched"] += 1
                        continue
                    unmatched.pop(key, None)
                    ssrc = payload[8:12]
                    new_stream(flow, ssrc, payload[1] & 0x7F, format_ip).add(ts, payload)
                    rtp += 1
            elif proto == PROTO_TCP:
                stats.tcp += 1
                if payload and (
                    sport in sip_ports or dport in sip_ports or looks_like_sip(payload)
                ):
                    self._sip_stream_segment(ts, src, sport, dst, dport, payload)
        if ts > now:
            now = ts  # the fast path leaves `now` behind; catch up with the last packet
        stats.packets += fast + slow
        stats.rtp_packets += rtp + fast
        stats.udp += udp + fast
        self._now_us = now
        self._next_expire_us = next_expire

    def _sip(
        self,
        ts: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        payload: bytes,
        transport: str,
    ) -> None:
        stats = self.stats
        if not payload.strip(b"\r\n\0 "):
            stats.weird["sip.keepalive"] += 1
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
        self.tracker.on_sip(msg, ts, format_ip(src), sport, format_ip(dst), dport, transport)
        self._drain()

    def _sip_stream_segment(
        self, ts: int, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> None:
        # Without TCP stream reassembly only segments holding whole messages can
        # be read, framed by their Content-Length. A piece of a message is
        # counted and left alone rather than read as something it is not (a
        # 200 OK cut in half would make an answered call look refused).
        try:
            messages, consumed = split_stream(payload)
        except ParseError as exc:
            self._parse_error(exc)
            return
        for message in messages:
            if not looks_like_sip(message):
                self.stats.weird["sip.tcp_partial_message"] += 1
                return
            self._sip(ts, src, sport, dst, dport, message, "tcp")
        if consumed < len(payload):
            self.stats.weird["sip.tcp_partial_message"] += 1

    def _radius(self, ts: int, src: bytes, payload: bytes) -> None:
        try:
            if self._accounting.feed(payload, ts, format_ip(src)) is not None:
                self.stats.radius_packets += 1
        except ParseError as exc:
            self._parse_error(exc)

    def _expire(self, now_us: int) -> None:
        if self._accounting is not None:
            self._accounting.expire(now_us)
        for record in self.tracker.expire(now_us):
            self._write(record)

    def _drain(self) -> None:
        for record in self.tracker.take_records():
            self._write(record)

    def _write(self, record: CallRecord) -> None:
        if self._enricher is not None:
            try:
                record = self._enricher.enrich(record)
            except Exception:  # a bug in enrichment must not lose the record
                self.stats.enrichment["enrich.failed"] += 1
        self.stats.records += 1
        self.stats.dispositions[record.disposition] += 1
        self._emit(record)

    def finish(self, reason: EndReason = EndReason.END_OF_INPUT) -> None:
        """End of input: expire what is due, then close every open call."""
        self._expire(self._now_us)
        for record in self.tracker.close_all(reason):
            self._write(record)
