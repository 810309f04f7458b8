"""Generated UDP traffic for the precision and recall tests: VoIP media and everything else.

Every generator takes a `random.Random` and a start time and returns
``[(ts_us, frame)]``. The non-VoIP kinds are built to resemble RTP where real
protocols can: QUIC short headers and random video payloads start with 0x80-0xBF
a quarter of the time, and the game traffic has a version byte, a sequence
number, a tick counter and a fixed player id exactly where RTP keeps its own.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from tests.flows._craft import rtp, udp_frame

MS = 1000


def _ip(rng: random.Random, net: str) -> str:
    return f"{net}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def dns(rng: random.Random, t0: int, queries: int = 50) -> list:
    frames = []
    client, server = _ip(rng, "10.2"), "192.0.2.53"
    for i in range(queries):
        t = t0 + i * rng.randint(1, 400) * MS
        txid = rng.getrandbits(16)
        sport = rng.randint(1024, 65535)
        query = (
            struct.pack(">HHHHHH", txid, 0x0100, 1, 0, 0, 0)
            + b"\x07example\x03com\x00\x00\x01\x00\x01"
        )
        answer = struct.pack(">HHHHHH", txid, 0x8180, 1, 1, 0, 0) + query[12:] + rng.randbytes(16)
        frames.append((t, udp_frame(client, sport, server, 53, query)))
        frames.append((t + 15 * MS, udp_frame(server, 53, client, sport, answer)))
    return frames


def quic(rng: random.Random, t0: int, packets: int = 400) -> list:
    client, server = _ip(rng, "10.3"), "198.51.100.80"
    cport = rng.randint(1024, 65535)
    frames = [
        (t0, udp_frame(client, cport, server, 443, b"\xc3\x00\x00\x00\x01" + rng.randbytes(1195)))
    ]
    t = t0
    for i in range(packets):
        t += rng.choice((50, 100, 200, 1000, 5000))
        down = i % 5 != 0
        body = bytes([0x40 | rng.getrandbits(6)]) + rng.randbytes(1199 if down else 40)
        src, sp, dst, dp = (server, 443, client, cport) if down else (client, cport, server, 443)
        frames.append((t, udp_frame(src, sp, dst, dp, body)))
    return frames


def ntp(rng: random.Random, t0: int, polls: int = 20) -> list:
    client, server = _ip(rng, "10.4"), "192.0.2.123"
    frames = []
    for i in range(polls):
        t = t0 + i * 64_000 * MS
        frames.append(
            (t, udp_frame(client, 123, server, 123, b"\x23" + bytes(39) + rng.randbytes(8)))
        )
        frames.append(
            (t + 20 * MS, udp_frame(server, 123, client, 123, b"\x24\x02" + rng.randbytes(46)))
        )
    return frames


def video_bursts(rng: random.Random, t0: int, frames_count: int = 60) -> list:
    """A video stream's look without RTP: a burst of full-size datagrams every frame time."""
    server, client = "203.0.113.90", _ip(rng, "10.5")
    cport = rng.randint(1024, 65535)
    out = []
    for f in range(frames_count):
        t = t0 + f * 33_333
        for k in range(rng.randint(5, 30)):
            out.append((t + k * 80, udp_frame(server, 8080, client, cport, rng.randbytes(1316))))
    return out


def game(rng: random.Random, t0: int, packets: int = 600) -> list:
    """Small datagrams at a 60 Hz tick: flags, type, sequence, tick counter, player id."""
    client, server = _ip(rng, "10.6"), "198.51.100.27"
    cport, player = rng.randint(1024, 65535), rng.getrandbits(32)
    tick_ms = rng.random() < 0.5  # a tick counter, or a millisecond clock
    out = []
    for i in range(packets):
        t = t0 + i * 16_667 + rng.randint(0, 2_000)
        clock = (t - t0) // 1000 if tick_ms else i
        header = struct.pack(">BBHII", 0x80, rng.randint(1, 9), i & 0xFFFF, clock, player)
        out.append(
            (
                t,
                udp_frame(
                    client, cport, server, 27015, header + rng.randbytes(rng.randint(20, 90))
                ),
            )
        )
        if i % 2:
            reply = struct.pack(">BBHII", 0x80, 3, i & 0xFFFF, clock, player ^ 1)
            out.append(
                (t + 9_000, udp_frame(server, 27015, client, cport, reply + rng.randbytes(60)))
            )
    return out


def random_udp(rng: random.Random, t0: int, packets: int = 500) -> list:
    out = []
    for i in range(packets):
        src, dst = _ip(rng, "10.7"), _ip(rng, "192.168")
        body = rng.randbytes(rng.randint(1, 400))
        out.append(
            (
                t0 + i * 1_000,
                udp_frame(src, rng.randint(1, 65535), dst, rng.randint(1, 65535), body),
            )
        )
    return out


NON_VOIP = {"dns": dns, "quic": quic, "ntp": ntp, "video_bursts": video_bursts, "game": game,
            "random": random_udp}  # fmt: skip


# (payload type, clock ticks per ms, payload bytes for 20 ms or None for variable)
CODECS = [(0, 8, 160), (8, 8, 160), (18, 8, 20), (9, 8, 160), (111, 48, None), (97, 16, 33),
          (4, 8, 24)]  # fmt: skip


@dataclass(frozen=True)
class SentStream:
    src: str
    sport: int
    ssrc: int
    packets: int


def rtp_session(rng: random.Random, t0: int, index: int) -> tuple[list, list[SentStream]]:
    """A two-way (sometimes one-way) voice call's RTP, with loss, jitter and reordering."""
    a = (f"10.8.{index // 250}.{index % 250 + 1}", rng.randrange(10000, 60000, 2))
    b = (f"198.51.{100 + index % 20}.{rng.randint(1, 254)}", rng.randrange(10000, 60000, 2))
    pt, ticks_per_ms, size = rng.choice(CODECS)
    ptime = rng.choice((20, 20, 20, 30, 40, 60)) if size else 20
    count = rng.randint(30, 400)
    frames, sent = [], []
    directions = [(a, b), (b, a)] if rng.random() < 0.85 else [(a, b)]
    for (src, sport), (dst, dport) in directions:
        ssrc, seq0, ts0 = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
        start = t0 + rng.randint(0, 300) * MS
        lossy = rng.random() < 0.3
        packets = []
        for i in range(count):
            if lossy and 0 < i < count - 1 and rng.random() < 0.03:
                continue
            body = rng.randbytes(size * ptime // 20 if size else rng.randint(40, 160))
            arrival = start + i * ptime * MS + rng.randint(0, 8 * MS)
            packet = rtp(seq0 + i, ts0 + i * ptime * ticks_per_ms, pt, ssrc=ssrc, payload=body)
            packets.append([arrival, udp_frame(src, sport, dst, dport, packet)])
        if rng.random() < 0.1:  # a few neighbours swapped in flight
            for _ in range(3):
                k = rng.randrange(1, len(packets) - 2)
                packets[k][0], packets[k + 1][0] = packets[k + 1][0], packets[k][0]
        frames += [tuple(p) for p in packets]
        sent.append(SentStream(src, sport, ssrc, len(packets)))
    return frames, sent
