"""Synthetic SIP + RTP capture for the offline-pipeline benchmark, with its ground truth.

Writes a classic pcap (Ethernet / IPv4 / UDP) of subscriber calls through an SBC:
subscribers in 10.0.0.0/8 call out through a SIP proxy, media flows two-way between the
subscriber and a media gateway as G.711 RTP at 20 ms. Beside the capture goes
``NAME.expected.json``: what a correct pipeline must find in it (calls by disposition,
RTP streams, packets and loss, SIP message counts, and one entry per call).

Strategy: planning and writing are separate. ``calls_concurrent`` lanes each run calls
back to back up to a time horizon; every call is planned in full when it starts (its SIP
messages with their times, its RTP streams with packet counts, loss and reordering), so
the ground truth is known before a byte is written, and a packet target is met by
searching the horizon with cheap planning passes. Writing then merges the calls in
timestamp order with a heap of per-call next events. An RTP frame is assembled from
per-stream precomputed header bytes and checksum partial sums, so writing one costs a
single ``struct.pack`` and a few integer additions; scapy is never used here.

Usable as a script (``python bench/gencapture.py --out x.pcap``) and as a module
(``generate(path, calls_concurrent=..., packets=..., seed=...) -> Expected``).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SIDECAR_FORMAT = "voiplog-bench-expected/1"

# 2024-03-04T10:00:00Z: a fixed start so that the same seed gives the same bytes.
CAPTURE_START_US = 1_709_546_400 * 1_000_000

PCAP_GLOBAL = struct.Struct("<IHHiIII")
PCAP_RECORD = struct.Struct("<IIII")
PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535

IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
UDP_HEADER = struct.Struct("!HHHH")
# IPv4 + UDP + RTP fixed header of one RTP packet, with only the varying fields unpacked:
# IP id, IP checksum, UDP checksum, RTP marker/payload type, sequence, timestamp, SSRC.
RTP_FRAME = struct.Struct("!4sH4sH8s6sHBBHII")

RTP_PTIME_US = 20_000
RTP_SAMPLES_PER_PACKET = 160
G711_PAYLOAD_BYTES = 160
RTP_PAYLOAD_POOL = 64  # distinct 20 ms audio chunks, cycled by sequence number

DSCP_CS3 = 0x60  # SIP signalling
DSCP_EF = 0xB8  # voice media
IP_DONT_FRAGMENT = 0x4000
TTL_FROM_SUBSCRIBER = 63
TTL_FROM_CORE = 57

SIP_PORT = 5060
SIP_DOMAIN = "voice.example-isp.net"
PROXY_IPS = ("203.0.113.10", "203.0.113.11")
MEDIA_GATEWAY_IPS = tuple(f"203.0.113.{n}" for n in range(20, 30))
GATEWAY_PORT_FIRST, GATEWAY_PORT_LAST = 16384, 32766
ROUTER_MAC = bytes.fromhex("02005e0001fe")

USER_AGENTS = (
    "FRITZ!Box 7590 154.07.57 (Mar 19 2024)",
    "Grandstream HT802 1.0.33.4",
    "Yealink SIP-T46S 66.86.0.15",
    "Linksys/SPA941-7.5.5",
    "Zoiper rv2.10.20.4",
    "Cisco/SPA112-1.4.1(SR5)",
    "MicroSIP/3.21.3",
    "Gigaset N670 IP PRO/2.52.0",
)
SERVER_HEADER = "Server: ExampleISP-SBC 5.2"

# Disposition mix of a call attempt, as the DESIGN.md table names them.
DISPOSITION_WEIGHTS = (("answered", 80), ("busy", 7), ("cancelled", 8), ("rejected", 5))
FINAL_STATUS = {"answered": 200, "busy": 486, "cancelled": 487, "rejected": 404}
REASON = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    404: "Not Found",
    486: "Busy Here",
    487: "Request Terminated",
}


@dataclass(frozen=True, slots=True)
class Expected:
    """Ground truth of one generated capture, as written to the ``.expected.json`` sidecar.

    Counts are of packets actually written. ``rtp_lost`` follows Wireshark: per stream,
    expected (highest minus first sequence number, plus one) minus received; the
    generator never drops the first or last packet of a stream, so it is exact.
    """

    format: str
    generator: dict  # the parameters that produced the capture, seed included
    packets: int  # pcap records
    first_ts: str  # ISO 8601 UTC, microseconds, Z
    last_ts: str
    capture_duration_s: float
    calls: int  # call attempts = SIP dialogs started by an INVITE
    calls_by_disposition: dict  # answered / busy / cancelled / rejected -> count
    calls_by_final_status: dict  # "200" / "486" / ... -> count
    calls_peak_concurrent: int
    calls_with_invite_retransmission: int
    calls_with_loss: int
    calls_with_reordering: int
    answered_duration_s_total: float  # sum over answered calls of BYE time - 200 OK time
    sip_messages: int  # SIP packets, retransmissions included
    sip_requests: dict  # method -> count
    sip_responses: dict  # "status" -> count
    invite_retransmissions: int  # INVITE packets that repeat an earlier one
    rtp_streams: int  # one per SSRC and source address:port
    rtp_packets: int
    rtp_lost: int
    rtp_reordered_pairs: int
    call_records: list = field(repr=False)  # one dict per call, see _Call._commit()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> Expected:
        data = json.loads(Path(path).read_text())
        if data.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"{path}: format is {data.get('format')!r}, not {SIDECAR_FORMAT!r}")
        return cls(**data)


def sidecar_path(capture: str | Path) -> Path:
    """``calls.pcap`` -> ``calls.expected.json``."""
    capture = Path(capture)
    return capture.with_name(capture.stem + ".expected.json")


def iso_utc(ts_us: int) -> str:
    seconds, micros = divmod(ts_us, 1_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{micros:06d}Z"


def _ones_complement_sum(data: bytes) -> int:
    """Unfolded 16-bit word sum, for checksums built up in parts."""
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def _fold(total: int) -> int:
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(total: int) -> int:
    return ~_fold(total) & 0xFFFF


def _udp_checksum(total: int) -> int:
    value = _checksum(total)
    return value or 0xFFFF  # zero means "no checksum" in UDP over IPv4


def _ipv4(text: str) -> bytes:
    return bytes(int(part) for part in text.split("."))


def _mac_for(ip: bytes) -> bytes:
    return b"\x02\x10" + ip


def udp_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    *,
    ip_id: int,
    tos: int,
    ttl: int,
) -> bytes:
    """One complete Ethernet/IPv4/UDP frame with correct checksums (the slow, general path)."""
    udp_len = 8 + len(payload)
    ip_header = IPV4_HEADER.pack(
        0x45, tos, 20 + udp_len, ip_id, IP_DONT_FRAGMENT, ttl, 17, 0, src_ip, dst_ip
    )
    ip_sum = _checksum(_ones_complement_sum(ip_header))
    ip_header = ip_header[:10] + struct.pack("!H", ip_sum) + ip_header[12:]
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    udp_header = UDP_HEADER.pack(sport, dport, udp_len, 0)
    udp_sum = _udp_checksum(_ones_complement_sum(pseudo + udp_header + payload))
    udp_header = UDP_HEADER.pack(sport, dport, udp_len, udp_sum)
    return dst_mac + src_mac + b"\x08\x00" + ip_header + udp_header + payload


class _RtpStream:
    """One RTP stream (one SSRC from one address:port), emitted a packet at a time.

    Slot ``i`` of the stream is due at ``start + i * 20 ms + jitter``. A dropped slot emits
    nothing; a reordered pair of slots carries each other's sequence numbers.
    """

    __slots__ = (
        "addrs",
        "drops",
        "eth",
        "ip_base",
        "ip_head",
        "ip_id",
        "ip_mid",
        "jitter_us",
        "lost",
        "packets",
        "pool_offset",
        "pt",
        "remap",
        "reordered_pairs",
        "seq0",
        "slot",
        "slots",
        "ssrc",
        "start_us",
        "ts0",
        "udp_base",
        "udp_head",
    )

    def __init__(
        self,
        rng: random.Random,
        src_ip: bytes,
        src_port: int,
        dst_ip: bytes,
        dst_port: int,
        src_mac: bytes,
        dst_mac: bytes,
        ttl: int,
        pt: int,
        start_us: int,
        slots: int,
        loss_rate: float,
        reorder_pairs: int,
        jitter_us: int,
    ) -> None:
        self.eth = dst_mac + src_mac + b"\x08\x00"
        udp_len = 8 + 12 + G711_PAYLOAD_BYTES
        self.ip_head = struct.pack("!BBH", 0x45, DSCP_EF, 20 + udp_len)
        self.ip_mid = struct.pack("!HBB", IP_DONT_FRAGMENT, ttl, 17)
        self.addrs = src_ip + dst_ip
        self.udp_head = struct.pack("!HHH", src_port, dst_port, udp_len)
        self.ip_base = _ones_complement_sum(self.ip_head + self.ip_mid + self.addrs)
        self.ssrc = rng.getrandbits(32)
        self.pt = pt
        self.seq0 = rng.getrandbits(16)
        self.ts0 = rng.getrandbits(32)
        self.ip_id = rng.getrandbits(16)
        # Pseudo header, UDP header and the RTP words that never change (V=2 and the
        # payload type, SSRC); marker, sequence, timestamp and payload are added per packet.
        self.udp_base = (
            _ones_complement_sum(self.addrs + struct.pack("!BBH", 0, 17, udp_len))
            + _ones_complement_sum(self.udp_head)
            + (0x8000 | pt)
            + (self.ssrc >> 16)
            + (self.ssrc & 0xFFFF)
        )
        self.pool_offset = rng.randrange(RTP_PAYLOAD_POOL)
        self.start_us = start_us
        self.slots = slots
        self.jitter_us = jitter_us
        self.drops: set[int] = set()
        self.remap: dict[int, int] = {}
        if loss_rate > 0 and slots > 4:
            count = max(1, round((slots - 2) * loss_rate))
            self.drops = set(rng.sample(range(1, slots - 1), min(count, slots - 2)))
        if reorder_pairs and slots > 6:
            for _ in range(reorder_pairs * 4):
                if len(self.remap) >= 2 * reorder_pairs:
                    break
                i = rng.randrange(1, slots - 2)
                pair = (i, i + 1)
                if any(j in self.drops or j in self.remap for j in pair):
                    continue
                self.remap[i] = i + 1
                self.remap[i + 1] = i
        self.reordered_pairs = len(self.remap) // 2
        self.lost = len(self.drops)
        self.packets = slots - self.lost
        self.slot = 0

    def first_due(self, rng: random.Random) -> int:
        return self.start_us + int(rng.random() * self.jitter_us)

    def frame(self, payloads: list[bytes], payload_sums: list[int]) -> bytes:
        """The frame for the current slot."""
        index = self.remap.get(self.slot, self.slot)
        seq = (self.seq0 + index) & 0xFFFF
        ts = (self.ts0 + RTP_SAMPLES_PER_PACKET * index) & 0xFFFFFFFF
        chunk = (self.pool_offset + index) % RTP_PAYLOAD_POOL
        marker = 0x80 if index == 0 else 0
        ip_id = self.ip_id = (self.ip_id + 1) & 0xFFFF
        total = self.ip_base + ip_id
        total = (total & 0xFFFF) + (total >> 16)
        ip_sum = ~((total & 0xFFFF) + (total >> 16)) & 0xFFFF
        total = self.udp_base + payload_sums[chunk] + marker + seq + (ts >> 16) + (ts & 0xFFFF)
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        udp_sum = ~total & 0xFFFF or 0xFFFF
        return (
            self.eth
            + RTP_FRAME.pack(
                self.ip_head,
                ip_id,
                self.ip_mid,
                ip_sum,
                self.addrs,
                self.udp_head,
                udp_sum,
                0x80,
                marker | self.pt,
                seq,
                ts,
                self.ssrc,
            )
            + payloads[chunk]
        )

    def advance(self, rng: random.Random) -> int | None:
        """Move to the next slot that carries a packet; its due time, or None at the end."""
        slot = self.slot + 1
        while slot in self.drops:
            slot += 1
        self.slot = slot
        if slot >= self.slots:
            return None
        return self.start_us + slot * RTP_PTIME_US + int(rng.random() * self.jitter_us)


@dataclass(slots=True)
class _Subscriber:
    ip: str
    ip_bytes: bytes
    mac: bytes
    number: str
    sip_port: int
    user_agent: str
    busy: bool = False


@dataclass(slots=True)
class _Lane:
    """One of the ``calls_concurrent`` lanes; runs calls back to back."""

    subscriber: _Subscriber | None = None


class _Planner:
    """Decides every call of a capture, lane by lane, up to a time horizon.

    Planning draws from its own random generator and writes nothing, so the packet
    count of a horizon can be found cheaply before the capture is written.
    """

    def __init__(
        self,
        *,
        seed: int,
        calls_concurrent: int,
        horizon_s: float,
        mean_hold_s: float,
        loss_call_fraction: float,
        reorder_call_fraction: float,
        invite_retransmit_fraction: float,
    ) -> None:
        self.rng = random.Random(seed)
        self.calls_concurrent = calls_concurrent
        self.end_us = CAPTURE_START_US + int(horizon_s * 1e6)
        self.mean_hold_us = int(mean_hold_s * 1e6)
        self.loss_call_fraction = loss_call_fraction
        self.reorder_call_fraction = reorder_call_fraction
        self.invite_retransmit_fraction = invite_retransmit_fraction
        self.gateway_endpoints = itertools.cycle(
            [
                (ip, port)
                for port in range(GATEWAY_PORT_FIRST, GATEWAY_PORT_LAST + 1, 2)
                for ip in MEDIA_GATEWAY_IPS
            ]
        )
        self.used_subscriber_media: set[tuple[str, int]] = set()
        self.subscribers = self._make_subscribers(max(4 * calls_concurrent, 64))
        self.calls: list[_Call] = []
        self.packets = 0
        self.sip_requests: dict[str, int] = {}
        self.sip_responses: dict[str, int] = {}
        self.invite_retransmissions = 0
        self.rtp_streams = 0
        self.rtp_packets = 0
        self.rtp_lost = 0
        self.rtp_reordered_pairs = 0

    def _make_subscribers(self, count: int) -> list[_Subscriber]:
        rng = self.rng
        seen: set[str] = set()
        subscribers = []
        while len(subscribers) < count:
            ip = f"10.{rng.randrange(0, 64)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            if ip in seen:
                continue
            seen.add(ip)
            ip_bytes = _ipv4(ip)
            sip_port = SIP_PORT if rng.random() < 0.7 else rng.randrange(1025, 65000)
            if sip_port % 2 == 0 and sip_port != SIP_PORT:
                sip_port += 1  # keep odd so it never collides with an even RTP port
            subscribers.append(
                _Subscriber(
                    ip=ip,
                    ip_bytes=ip_bytes,
                    mac=_mac_for(ip_bytes),
                    number=f"+4930{rng.randrange(10**7, 10**8)}",
                    sip_port=sip_port,
                    user_agent=rng.choice(USER_AGENTS),
                )
            )
        return subscribers

    def plan(self) -> _Planner:
        rng = self.rng
        order = itertools.count()
        stagger_us = min(self.mean_hold_us, 4_000_000)
        lanes = [
            (CAPTURE_START_US + rng.randrange(stagger_us), next(order), _Lane())
            for _ in range(self.calls_concurrent)
        ]
        heapq.heapify(lanes)
        while lanes:
            now_us, _, lane = heapq.heappop(lanes)
            if lane.subscriber is not None:
                lane.subscriber.busy = False
                lane.subscriber = None
            if now_us >= self.end_us:
                continue
            for _ in range(20):
                subscriber = rng.choice(self.subscribers)
                if not subscriber.busy:
                    break
            else:
                subscriber = next(s for s in self.subscribers if not s.busy)
            call = _Call(self, subscriber, now_us)
            if not call.planned:
                continue  # it would not end inside the horizon: the lane stays idle
            self._count(call)
            subscriber.busy = True
            lane.subscriber = subscriber
            gap_us = rng.randrange(100_000, 3_000_000)
            heapq.heappush(lanes, (call.end_us + gap_us, next(order), lane))
        self.calls.sort(key=lambda c: c.t0)
        return self

    def _count(self, call: _Call) -> None:
        self.calls.append(call)
        seen_invite = False
        for _, payload, _ in call.sip:
            first_line = payload[: payload.index(b"\r\n")].decode()
            if first_line.startswith("SIP/2.0 "):
                status = first_line.split(" ", 2)[1]
                self.sip_responses[status] = self.sip_responses.get(status, 0) + 1
            else:
                method = first_line.split(" ", 1)[0]
                self.sip_requests[method] = self.sip_requests.get(method, 0) + 1
                if method == "INVITE":
                    self.invite_retransmissions += seen_invite
                    seen_invite = True
        for stream in call.streams:
            self.rtp_streams += 1
            self.rtp_packets += stream.packets
            self.rtp_lost += stream.lost
            self.rtp_reordered_pairs += stream.reordered_pairs
        self.packets += len(call.sip) + sum(s.packets for s in call.streams)

    def expected(self, written: int, first_us: int | None, last_us: int | None) -> Expected:
        records = [call.record for call in self.calls]
        by_disposition = {name: 0 for name, _ in DISPOSITION_WEIGHTS}
        by_status: dict[str, int] = {}
        duration_total_us = 0
        for serial, rec in enumerate(records, 1):
            rec["serial"] = serial
            by_disposition[rec["disposition"]] += 1
            status = str(rec["final_status"])
            by_status[status] = by_status.get(status, 0) + 1
            duration_total_us += rec.pop("duration_us")
        events = sorted([(c.t0, 1) for c in self.calls] + [(c.end_us, -1) for c in self.calls])
        peak = current = 0
        for _, delta in events:
            current += delta
            peak = max(peak, current)
        first_us = first_us or CAPTURE_START_US
        last_us = last_us or CAPTURE_START_US
        return Expected(
            format=SIDECAR_FORMAT,
            generator={},
            packets=written,
            first_ts=iso_utc(first_us),
            last_ts=iso_utc(last_us),
            capture_duration_s=round((last_us - first_us) / 1e6, 6),
            calls=len(records),
            calls_by_disposition=by_disposition,
            calls_by_final_status=dict(sorted(by_status.items())),
            calls_peak_concurrent=peak,
            calls_with_invite_retransmission=sum(
                "invite_retransmitted" in r["flags"] for r in records
            ),
            calls_with_loss=sum("rtp_loss" in r["flags"] for r in records),
            calls_with_reordering=sum("rtp_reordering" in r["flags"] for r in records),
            answered_duration_s_total=round(duration_total_us / 1e6, 6),
            sip_messages=sum(self.sip_requests.values()) + sum(self.sip_responses.values()),
            sip_requests=dict(sorted(self.sip_requests.items())),
            sip_responses=dict(sorted(self.sip_responses.items(), key=lambda kv: int(kv[0]))),
            invite_retransmissions=self.invite_retransmissions,
            rtp_streams=self.rtp_streams,
            rtp_packets=self.rtp_packets,
            rtp_lost=self.rtp_lost,
            rtp_reordered_pairs=self.rtp_reordered_pairs,
            call_records=records,
        )


def _write(path: Path, plan: _Planner, seed: int) -> tuple[int, int | None, int | None]:
    """Write the planned calls in timestamp order; (packets, first and last time in µs)."""
    rng = random.Random(seed)  # jitter and IP ids, apart from the plan's draws
    payloads = [rng.randbytes(G711_PAYLOAD_BYTES) for _ in range(RTP_PAYLOAD_POOL)]
    payload_sums = [_ones_complement_sum(p) for p in payloads]
    calls = plan.calls
    next_call, call_count = 0, len(calls)
    heap: list[tuple] = []
    heappush, heappop, heapreplace = heapq.heappush, heapq.heappop, heapq.heapreplace
    order = itertools.count()
    record = PCAP_RECORD.pack
    written = 0
    first_us = last_us = None
    chunks: list[bytes] = []
    with open(path, "wb", buffering=1 << 20) as out:
        out.write(PCAP_GLOBAL.pack(PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        while True:
            if next_call < call_count and (not heap or calls[next_call].t0 <= heap[0][0]):
                call = calls[next_call]
                next_call += 1
                for due_us, frame in call.frames(rng):
                    heappush(heap, (due_us, next(order), None, frame))
                for stream in call.streams:
                    heappush(heap, (stream.first_due(rng), next(order), stream, None))
                continue
            if not heap:
                break
            due_us, _, stream, frame = heap[0]
            if stream is None:
                heappop(heap)
            else:
                frame = stream.frame(payloads, payload_sums)
                next_us = stream.advance(rng)
                if next_us is None:
                    heappop(heap)
                else:
                    heapreplace(heap, (next_us, next(order), stream, None))
            seconds, micros = divmod(due_us, 1_000_000)
            chunks.append(record(seconds, micros, len(frame), len(frame)))
            chunks.append(frame)
            written += 1
            if first_us is None:
                first_us = due_us
            last_us = due_us
            if len(chunks) >= 8192:
                out.write(b"".join(chunks))
                chunks.clear()
        out.write(b"".join(chunks))
    return written, first_us, last_us


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


class _Call:
    """One call attempt, planned in full at its start: SIP messages with times, RTP streams."""

    def __init__(self, gen: _Planner, sub: _Subscriber, start_us: int) -> None:
        self.gen = gen
        self.planned = False
        rng = gen.rng
        self.sub = sub
        self.proxy = rng.choice(PROXY_IPS)
        self.proxy_bytes = _ipv4(self.proxy)
        self.callee = self._callee_number(rng)
        self.call_id = f"{_hex(rng, 96)}@{sub.ip}"
        self.from_tag = _hex(rng, 32)
        self.to_tag = _hex(rng, 40)
        self.cseq = rng.randrange(1, 5000)
        self.invite_branch = "z9hG4bK" + _hex(rng, 64)
        self.rtt_us = rng.randrange(8_000, 60_000)
        self.disposition = rng.choices(
            [name for name, _ in DISPOSITION_WEIGHTS],
            weights=[weight for _, weight in DISPOSITION_WEIGHTS],
        )[0]
        offer = [0, 8] if rng.random() < 0.6 else [8, 0]
        self.offer = offer
        self.pt = offer[0] if rng.random() < 0.85 else offer[1]
        while True:
            port = rng.randrange(10000, 60000, 2)
            if (sub.ip, port) not in gen.used_subscriber_media:
                break
        self.sub_media_port = port
        self.gw_ip, self.gw_port = next(gen.gateway_endpoints)
        self.flags: list[str] = []
        self.sip: list[tuple[int, bytes, str]] = []  # (due, frame, first line)
        self.streams: list[_RtpStream] = []
        self._plan(start_us)

    @staticmethod
    def _callee_number(rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.55:
            return f"+49{rng.choice(['30', '40', '89', '221', '69'])}{rng.randrange(10**6, 10**8)}"
        if roll < 0.85:
            return f"+491{rng.choice(['51', '52', '60', '62', '70', '76'])}{rng.randrange(10**7, 10**8)}"
        return f"+{rng.choice(['33', '44', '39', '48', '90', '1'])}{rng.randrange(10**8, 10**10)}"

    # -- SIP text --------------------------------------------------------------------

    def _sdp_offer(self) -> bytes:
        sub, sid = self.sub, self.gen.rng.randrange(10**9, 10**10)
        fmts = " ".join(str(p) for p in [*self.offer, 101])
        lines = [
            "v=0",
            f"o=- {sid} {sid} IN IP4 {sub.ip}",
            "s=-",
            f"c=IN IP4 {sub.ip}",
            "t=0 0",
            f"m=audio {self.sub_media_port} RTP/AVP {fmts}",
            *[f"a=rtpmap:{p} {'PCMU' if p == 0 else 'PCMA'}/8000" for p in self.offer],
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _sdp_answer(self) -> bytes:
        sid = self.gen.rng.randrange(10**9, 10**10)
        lines = [
            "v=0",
            f"o=SBC {sid} {sid} IN IP4 {self.gw_ip}",
            "s=SBC",
            f"c=IN IP4 {self.gw_ip}",
            "t=0 0",
            f"m=audio {self.gw_port} RTP/AVP {self.pt} 101",
            f"a=rtpmap:{self.pt} {'PCMU' if self.pt == 0 else 'PCMA'}/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _message(self, first_line: str, headers: list[str], body: bytes = b"") -> bytes:
        if body:
            headers = [*headers, "Content-Type: application/sdp"]
        headers = [*headers, f"Content-Length: {len(body)}"]
        return (first_line + "\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body

    @property
    def _caller_uri(self) -> str:
        return f"sip:{self.sub.number}@{SIP_DOMAIN}"

    @property
    def _callee_uri(self) -> str:
        return f"sip:{self.callee}@{SIP_DOMAIN}"

    def _sub_via(self, branch: str, *, received: bool) -> str:
        sub = self.sub
        params = f";rport={sub.sip_port};received={sub.ip}" if received else ";rport"
        return f"Via: SIP/2.0/UDP {sub.ip}:{sub.sip_port}{params};branch={branch}"

    def _invite(self) -> bytes:
        sub = self.sub
        return self._message(
            f"INVITE {self._callee_uri} SIP/2.0",
            [
                self._sub_via(self.invite_branch, received=False),
                "Max-Forwards: 70",
                f"From: <{self._caller_uri}>;tag={self.from_tag}",
                f"To: <{self._callee_uri}>",
                f"Call-ID: {self.call_id}",
                f"CSeq: {self.cseq} INVITE",
                f"Contact: <sip:{sub.number}@{sub.ip}:{sub.sip_port}>",
                "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, UPDATE",
                "Supported: replaces, timer",
                f"User-Agent: {sub.user_agent}",
            ],
            self._sdp_offer(),
        )

    def _invite_response(self, status: int, *, to_tag: bool = True, sdp: bool = False) -> bytes:
        to = f"To: <{self._callee_uri}>" + (f";tag={self.to_tag}" if to_tag else "")
        headers = [
            self._sub_via(self.invite_branch, received=True),
            f"From: <{self._caller_uri}>;tag={self.from_tag}",
            to,
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} INVITE",
        ]
        if status in (180, 200):
            headers.append(f"Contact: <sip:{self.callee}@{self.proxy}:{SIP_PORT};transport=udp>")
        headers.append(SERVER_HEADER)
        return self._message(
            f"SIP/2.0 {status} {REASON[status]}", headers, self._sdp_answer() if sdp else b""
        )

    def _ack(self, *, for_2xx: bool) -> bytes:
        branch = "z9hG4bK" + _hex(self.gen.rng, 64) if for_2xx else self.invite_branch
        uri = (
            f"sip:{self.callee}@{self.proxy}:{SIP_PORT};transport=udp"
            if for_2xx
            else self._callee_uri
        )
        return self._message(
            f"ACK {uri} SIP/2.0",
            [
                self._sub_via(branch, received=False),
                "Max-Forwards: 70",
                f"From: <{self._caller_uri}>;tag={self.from_tag}",
                f"To: <{self._callee_uri}>;tag={self.to_tag}",
                f"Call-ID: {self.call_id}",
                f"CSeq: {self.cseq} ACK",
            ],
        )

    def _cancel(self) -> bytes:
        return self._message(
            f"CANCEL {self._callee_uri} SIP/2.0",
            [
                self._sub_via(self.invite_branch, received=False),
                "Max-Forwards: 70",
                f"From: <{self._caller_uri}>;tag={self.from_tag}",
                f"To: <{self._callee_uri}>",
                f"Call-ID: {self.call_id}",
                f"CSeq: {self.cseq} CANCEL",
            ],
        )

    def _cancel_ok(self) -> bytes:
        return self._message(
            "SIP/2.0 200 OK",
            [
                self._sub_via(self.invite_branch, received=True),
                f"From: <{self._caller_uri}>;tag={self.from_tag}",
                f"To: <{self._callee_uri}>;tag={self.to_tag}",
                f"Call-ID: {self.call_id}",
                f"CSeq: {self.cseq} CANCEL",
                SERVER_HEADER,
            ],
        )

    def _bye_from_caller(self) -> tuple[bytes, bytes]:
        branch = "z9hG4bK" + _hex(self.gen.rng, 64)
        common = [
            f"From: <{self._caller_uri}>;tag={self.from_tag}",
            f"To: <{self._callee_uri}>;tag={self.to_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq + 1} BYE",
        ]
        bye = self._message(
            f"BYE sip:{self.callee}@{self.proxy}:{SIP_PORT};transport=udp SIP/2.0",
            [
                self._sub_via(branch, received=False),
                "Max-Forwards: 70",
                *common,
                f"User-Agent: {self.sub.user_agent}",
            ],
        )
        ok = self._message(
            "SIP/2.0 200 OK", [self._sub_via(branch, received=True), *common, SERVER_HEADER]
        )
        return bye, ok

    def _bye_from_callee(self) -> tuple[bytes, bytes]:
        sub = self.sub
        via = f"Via: SIP/2.0/UDP {self.proxy}:{SIP_PORT};branch=z9hG4bK{_hex(self.gen.rng, 64)}"
        common = [
            f"From: <{self._callee_uri}>;tag={self.to_tag}",
            f"To: <{self._caller_uri}>;tag={self.from_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.gen.rng.randrange(1, 1000)} BYE",
        ]
        bye = self._message(
            f"BYE sip:{sub.number}@{sub.ip}:{sub.sip_port} SIP/2.0",
            [via, "Max-Forwards: 69", *common, SERVER_HEADER],
        )
        ok = self._message("SIP/2.0 200 OK", [via, *common, f"User-Agent: {sub.user_agent}"])
        return bye, ok

    # -- planning --------------------------------------------------------------------

    def _up(self, due_us: int, payload: bytes) -> None:
        """Subscriber to proxy."""
        self.sip.append((due_us, payload, True))

    def _down(self, due_us: int, payload: bytes) -> None:
        """Proxy to subscriber."""
        self.sip.append((due_us, payload, False))

    def _plan(self, t0: int) -> None:
        gen, rng, rtt = self.gen, self.gen.rng, self.rtt_us
        invite = self._invite()
        self._up(t0, invite)
        last_invite = t0
        if rng.random() < gen.invite_retransmit_fraction:
            # No provisional answer within T1 (500 ms): the UA sends the INVITE again,
            # and once more after 2*T1 now and then.
            retransmits = 2 if rng.random() < 0.25 else 1
            for k in range(retransmits):
                last_invite = t0 + 500_000 * (2 ** (k + 1) - 1)
                self._up(last_invite, invite)
            self.flags.append("invite_retransmitted")
        trying = last_invite + rtt + rng.randrange(0, 20_000)
        self._down(trying, self._invite_response(100, to_tag=False))

        answered_us = ringing_us = None
        duration_us = 0
        ended_by = None
        disposition = self.disposition
        if disposition == "answered":
            ringing_us = trying + rng.randrange(200_000, 2_500_000)
            self._down(ringing_us, self._invite_response(180))
            answered_us = ringing_us + rng.randrange(1_000_000, 10_000_000)
            self._down(answered_us, self._invite_response(200, sdp=True))
            ack_us = answered_us + rtt // 2 + rng.randrange(1_000, 10_000)
            self._up(ack_us, self._ack(for_2xx=True))
            duration_us = self._hold_us(rng, answered_us)
            if duration_us is None:
                return
            bye_us = answered_us + duration_us
            if rng.random() < 0.55:
                bye, ok = self._bye_from_caller()
                self._up(bye_us, bye)
                self._down(bye_us + rtt, ok)
                ended_by = "caller"
            else:
                bye, ok = self._bye_from_callee()
                self._down(bye_us, bye)
                self._up(bye_us + rng.randrange(2_000, 20_000), ok)
                ended_by = "callee"
            ended_us = bye_us
            self._plan_media(ack_us + rng.randrange(1_000, 15_000), answered_us, bye_us)
        elif disposition == "busy":
            final_us = trying + rng.randrange(100_000, 1_000_000)
            if rng.random() < 0.5:
                ringing_us = final_us
                self._down(ringing_us, self._invite_response(180))
                final_us = ringing_us + rng.randrange(500_000, 4_000_000)
            self._down(final_us, self._invite_response(486))
            self._up(final_us + rtt // 2 + rng.randrange(1_000, 10_000), self._ack(for_2xx=False))
            ended_us, ended_by = final_us, "callee"
        elif disposition == "cancelled":
            ringing_us = trying + rng.randrange(200_000, 2_500_000)
            self._down(ringing_us, self._invite_response(180))
            cancel_us = ringing_us + rng.randrange(2_000_000, 25_000_000)
            self._up(cancel_us, self._cancel())
            self._down(cancel_us + rtt, self._cancel_ok())
            final_us = cancel_us + rtt + rng.randrange(500, 5_000)
            self._down(final_us, self._invite_response(487))
            self._up(final_us + rtt // 2 + rng.randrange(1_000, 10_000), self._ack(for_2xx=False))
            ended_us, ended_by = cancel_us, "caller"
        else:  # rejected: the number does not exist
            final_us = trying + rng.randrange(50_000, 400_000)
            self._down(final_us, self._invite_response(404))
            self._up(final_us + rtt // 2 + rng.randrange(1_000, 10_000), self._ack(for_2xx=False))
            ended_us, ended_by = final_us, "callee"

        end_us = max(due for due, _, _ in self.sip)
        if end_us > gen.end_us:
            return
        self._commit(t0, end_us, ringing_us, answered_us, ended_us, duration_us, ended_by)

    def _hold_us(self, rng: random.Random, answered_us: int) -> int | None:
        """Answered-call duration: log-normal around the mean hold, cut to end in time."""
        gen = self.gen
        sigma = 0.8
        hold = gen.mean_hold_us * math.exp(rng.gauss(0.0, sigma) - sigma * sigma / 2)
        hold = int(min(max(hold, 1_000_000), 6 * gen.mean_hold_us))
        hold = min(hold, gen.end_us - answered_us - 200_000)
        if hold < 1_000_000:
            return None
        return hold

    def _plan_media(self, caller_start: int, answered_us: int, bye_us: int) -> None:
        gen, rng, sub = self.gen, self.gen.rng, self.sub
        gw_ip = _ipv4(self.gw_ip)
        gw_mac = ROUTER_MAC
        lossy = rng.random() < gen.loss_call_fraction
        reordered = rng.random() < gen.reorder_call_fraction
        lossy_dirs = {rng.randrange(2)} if rng.random() < 0.7 else {0, 1}
        reorder_dir = rng.randrange(2)
        callee_start = answered_us + rng.randrange(5_000, 40_000)
        stop = bye_us - rng.randrange(1_000, 15_000)
        for direction, start in ((0, caller_start), (1, callee_start)):
            slots = max(1, (stop - start) // RTP_PTIME_US)
            loss_rate = rng.uniform(0.005, 0.03) if lossy and direction in lossy_dirs else 0.0
            pairs = rng.randrange(1, 4) if reordered and direction == reorder_dir else 0
            jitter = 6_000 if (lossy or reordered) else 1_000
            if direction == 0:
                ends = (sub.ip_bytes, self.sub_media_port, gw_ip, self.gw_port)
                macs, ttl = (sub.mac, ROUTER_MAC), TTL_FROM_SUBSCRIBER
            else:
                ends = (gw_ip, self.gw_port, sub.ip_bytes, self.sub_media_port)
                macs, ttl = (gw_mac, sub.mac), TTL_FROM_CORE
            self.streams.append(
                _RtpStream(
                    rng,
                    *ends,
                    *macs,
                    ttl,
                    self.pt,
                    start,
                    slots,
                    loss_rate,
                    pairs,
                    jitter,
                )
            )
        if any(s.lost for s in self.streams):
            self.flags.append("rtp_loss")
        if any(s.reordered_pairs for s in self.streams):
            self.flags.append("rtp_reordering")

    def _commit(
        self,
        t0: int,
        end_us: int,
        ringing_us: int | None,
        answered_us: int | None,
        ended_us: int,
        duration_us: int,
        ended_by: str | None,
    ) -> None:
        gen, sub = self.gen, self.sub
        self.planned = True
        self.t0 = t0
        self.end_us = end_us
        if self.streams:
            gen.used_subscriber_media.add((sub.ip, self.sub_media_port))
        self.record = {
            "serial": 0,
            "call_id": self.call_id,
            "caller": sub.number,
            "callee": self.callee,
            "caller_ip": sub.ip,
            "caller_port": sub.sip_port,
            "callee_ip": self.proxy,
            "callee_port": SIP_PORT,
            "disposition": self.disposition,
            "final_status": FINAL_STATUS[self.disposition],
            "ended_by": ended_by,
            "started_at": iso_utc(t0),
            "ringing_at": iso_utc(ringing_us) if ringing_us is not None else None,
            "answered_at": iso_utc(answered_us) if answered_us is not None else None,
            "ended_at": iso_utc(ended_us),
            "duration_s": round(duration_us / 1e6, 6),
            "duration_us": duration_us,
            "sip_messages": len(self.sip),
            "media": [
                {
                    "src_ip": ".".join(str(b) for b in s.addrs[:4]),
                    "src_port": int.from_bytes(s.udp_head[0:2], "big"),
                    "dst_ip": ".".join(str(b) for b in s.addrs[4:]),
                    "dst_port": int.from_bytes(s.udp_head[2:4], "big"),
                    "ssrc": s.ssrc,
                    "payload_type": s.pt,
                    "packets": s.packets,
                    "lost": s.lost,
                }
                for s in self.streams
            ],
            "flags": self.flags,
        }

    def frames(self, rng: random.Random) -> list[tuple[int, bytes]]:
        """The call's SIP messages as Ethernet frames, with their due times."""
        sub, proxy_ip, frames = self.sub, self.proxy_bytes, []
        for due, payload, upward in self.sip:
            if upward:
                ends = (sub.mac, ROUTER_MAC, sub.ip_bytes, proxy_ip, sub.sip_port, SIP_PORT)
                ttl = TTL_FROM_SUBSCRIBER
            else:
                ends = (ROUTER_MAC, sub.mac, proxy_ip, sub.ip_bytes, SIP_PORT, sub.sip_port)
                ttl = TTL_FROM_CORE
            frame = udp_frame(*ends, payload, ip_id=rng.getrandbits(16), tos=DSCP_CS3, ttl=ttl)
            frames.append((due, frame))
        return frames


# A lane carries media about half of its time (ringing, failed attempts, gaps between
# calls), and an answered call sends about 100 RTP packets/s: 50 in each direction.
_PACKETS_PER_LANE_SECOND = 100 * 0.5


def default_mean_hold_s(horizon_s: float) -> float:
    """Mean answered-call hold time that lets each lane run a few calls in the capture.

    Real holds average a minute or two, but a capture of a few hundred thousand packets
    at hundreds of concurrent calls spans only seconds, and calls must start and end in
    it for the ground truth to be complete. So the hold shrinks with the capture,
    which also weighs SIP more heavily than real traffic does (the harder case).
    """
    return min(max(horizon_s / 4, 2.0), 120.0)


def generate(
    path: str | Path,
    *,
    calls_concurrent: int = 300,
    packets: int | None = 600_000,
    duration_s: float | None = None,
    seed: int = 1,
    mean_hold_s: float | None = None,
    loss_call_fraction: float = 0.04,
    reorder_call_fraction: float = 0.04,
    invite_retransmit_fraction: float = 0.03,
    write_sidecar: bool = True,
) -> Expected:
    """Write a capture to ``path`` (and its sidecar beside it); return the ground truth.

    With ``packets``, the capture spans whatever time makes about that many packets
    (within a fraction of a percent); with ``duration_s`` instead, every call starts and
    ends within that many seconds. Either way each lane keeps a call open until near
    the end, and every call in the capture is complete.
    """
    if duration_s is not None:
        packets = None
    if packets is None and duration_s is None:
        raise ValueError("give packets or duration_s")
    if calls_concurrent < 1:
        raise ValueError("calls_concurrent must be at least 1")
    if packets is not None and packets < 1:
        raise ValueError("packets must be at least 1")

    def plan(horizon_s: float, hold_s: float) -> _Planner:
        return _Planner(
            seed=seed,
            calls_concurrent=calls_concurrent,
            horizon_s=horizon_s,
            mean_hold_s=hold_s,
            loss_call_fraction=loss_call_fraction,
            reorder_call_fraction=reorder_call_fraction,
            invite_retransmit_fraction=invite_retransmit_fraction,
        ).plan()

    if duration_s is not None:
        horizon_s = duration_s
        hold_s = mean_hold_s if mean_hold_s is not None else default_mean_hold_s(duration_s)
        planned = plan(horizon_s, hold_s)
    else:
        # Planning writes nothing and is cheap: search the horizon that gives the count.
        horizon_s = max(packets / (calls_concurrent * _PACKETS_PER_LANE_SECOND), 5.0)
        hold_s = mean_hold_s if mean_hold_s is not None else default_mean_hold_s(horizon_s)
        planned = plan(horizon_s, hold_s)
        below: tuple[float, int] | None = None  # (horizon, packets) bracketing the target
        above: tuple[float, int] | None = None
        trial = planned
        for _ in range(16):
            if abs(planned.packets - packets) <= packets * 0.002:
                break
            if trial.packets < packets:
                below = (horizon_s, trial.packets)
            else:
                above = (horizon_s, trial.packets)
            if below and above and above[1] > below[1]:
                share = (packets - below[1]) / (above[1] - below[1])
                horizon_s = below[0] + share * (above[0] - below[0])
            else:
                horizon_s *= min(max(packets / max(trial.packets, 1), 0.5), 2.0)
            trial = plan(horizon_s, hold_s)
            if abs(trial.packets - packets) < abs(planned.packets - packets):
                planned = trial
        horizon_s = (planned.end_us - CAPTURE_START_US) / 1e6

    path = Path(path)
    written, first_us, last_us = _write(path, planned, seed + 0x9E3779B9)
    if written != planned.packets:
        raise AssertionError(f"wrote {written} packets but planned {planned.packets}")
    expected = planned.expected(written, first_us, last_us)
    expected.generator.update(
        {
            "calls_concurrent": calls_concurrent,
            "packets_target": packets,
            "duration_target_s": duration_s,
            "horizon_s": round(horizon_s, 3),
            "seed": seed,
            "mean_hold_s": hold_s,
            "loss_call_fraction": loss_call_fraction,
            "reorder_call_fraction": reorder_call_fraction,
            "invite_retransmit_fraction": invite_retransmit_fraction,
        }
    )
    if write_sidecar:
        sidecar_path(path).write_text(expected.to_json())
    return expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic SIP+RTP pcap and its .expected.json ground truth."
    )
    parser.add_argument("--out", required=True, type=Path, help="pcap file to write")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--packets", type=int, default=600_000, help="target packet count")
    size.add_argument("--duration", type=float, help="capture length in seconds instead")
    parser.add_argument("--calls-concurrent", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mean-hold", type=float, help="mean answered-call hold in seconds (default: scaled)"
    )
    parser.add_argument(
        "--loss-calls", type=float, default=0.04, help="share of answered calls with RTP loss"
    )
    parser.add_argument(
        "--reorder-calls", type=float, default=0.04, help="share of answered calls with reordering"
    )
    parser.add_argument(
        "--retransmit-calls",
        type=float,
        default=0.03,
        help="share of calls whose INVITE is retransmitted",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    expected = generate(
        args.out,
        calls_concurrent=args.calls_concurrent,
        packets=None if args.duration is not None else args.packets,
        duration_s=args.duration,
        seed=args.seed,
        mean_hold_s=args.mean_hold,
        loss_call_fraction=args.loss_calls,
        reorder_call_fraction=args.reorder_calls,
        invite_retransmit_fraction=args.retransmit_calls,
    )
    elapsed = time.perf_counter() - started
    print(
        f"{args.out}: {expected.packets} packets in {elapsed:.1f} s, "
        f"{expected.capture_duration_s:.1f} s of traffic, {expected.calls} calls "
        f"{expected.calls_by_disposition}, peak {expected.calls_peak_concurrent} concurrent, "
        f"{expected.rtp_streams} RTP streams, {expected.rtp_packets} RTP packets "
        f"({expected.rtp_lost} lost), {expected.sip_messages} SIP messages",
        file=sys.stderr,
    )
    print(f"ground truth: {sidecar_path(args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
