"""Building RTP and RTCP packets for the tests, byte by byte as RFC 3550 lays them out."""

from __future__ import annotations

import struct

G711_FRAME = bytes(160)  # 20 ms of G.711 at 8000 Hz


def rtp(
    seq: int,
    ts: int,
    pt: int = 0,
    *,
    marker: bool = False,
    ssrc: int = 0x11223344,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    payload: bytes = G711_FRAME,
    padding: int = 0,
) -> bytes:
    """An RTP packet; ``extension`` is the header extension body (a multiple of 4 bytes)."""
    first = 0x80 | len(csrcs) | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    header = struct.pack(
        ">BBHII", first, pt | (0x80 if marker else 0), seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc
    )
    header += b"".join(struct.pack(">I", c) for c in csrcs)
    if extension is not None:
        header += struct.pack(">HH", 0xBEDE, len(extension) // 4) + extension
    tail = bytes(padding - 1) + bytes([padding]) if padding else b""
    return header + payload + tail


def rtcp(packet_type: int, body: bytes, count: int = 0) -> bytes:
    """One RTCP packet whose length field matches ``body`` (a multiple of 4 bytes)."""
    return struct.pack(">BBH", 0x80 | count, packet_type, len(body) // 4) + body


def sender_report(ssrc: int = 0x11223344) -> bytes:
    """An SR with one report block: 4 + 24 + 24 = 52 bytes."""
    sender_info = struct.pack(">IIIIII", ssrc, 0xE1234567, 0x89ABCDEF, 160, 10, 1600)
    block = struct.pack(">IIIIII", 0x55667788, 0, 42, 0, 0, 0)
    return rtcp(200, sender_info + block, count=1)


def sdes(ssrc: int = 0x11223344, cname: bytes = b"alice@example.com") -> bytes:
    """An SDES packet with one CNAME item, padded to a 32-bit boundary."""
    chunk = struct.pack(">I", ssrc) + bytes([1, len(cname)]) + cname + b"\x00"
    chunk += bytes(-len(chunk) % 4)
    return rtcp(202, chunk, count=1)
