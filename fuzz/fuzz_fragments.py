"""Invariant: any sequence of IP fragments is reassembled or dropped as a named weird, never raises; held bytes and datagrams stay within their bounds."""

from __future__ import annotations

import contextlib

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.packet import IPFragment, decode_transport
    from voiplog.packet.decode import DecodeError
    from voiplog.packet.ipfrag import FragmentReassembler, FragmentSettings

SETTINGS = FragmentSettings(timeout_us=1000, max_datagrams=8, max_bytes=20000, max_fragments=16)
SRC, DST = b"\x0a\0\0\x01", b"\x0a\0\0\x02"


def seeds():
    """Fragments of real datagrams: one byte of header per fragment, then its data."""
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import Ether

    from tests.sip.samples import SAMPLES
    from voiplog.packet import decode_fragment

    for sample in SAMPLES:
        packet = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5060, dport=5060) / sample
        out = b""
        for piece in fragment(packet, 256):
            f = decode_fragment(1, bytes(Ether() / piece))
            out += bytes(
                [f.offset >> 3 & 0x7F, int(f.more) << 7 | 3, len(f.data) >> 8, len(f.data) & 0xFF]
            )
            out += f.data
        yield out


def test_one(data: bytes) -> None:
    weirds: list[str] = []
    reassembler = FragmentReassembler(SETTINGS, weirds.append)
    pos = 0
    ts = 0
    while pos + 4 <= len(data):
        offset_units, flags, hi, lo = data[pos : pos + 4]
        size = (hi << 8 | lo) % 2048
        piece = data[pos + 4 : pos + 4 + size]
        pos += 4 + size
        ts += flags & 0x3F
        offset = (offset_units | (flags & 0x40) << 1) << 3
        if flags & 0x20:
            offset <<= 5  # reach the 65535 limit now and then
        fragment = IPFragment(4, SRC, DST, flags & 3, 17, offset, bool(flags & 0x80), piece)
        payload = reassembler.add(fragment, ts)
        if payload is not None:
            if len(payload) > 65535:
                raise AssertionError(f"reassembled {len(payload)} bytes")
            with contextlib.suppress(DecodeError):
                decode_transport(17, SRC, DST, payload, detail=True)
        if reassembler.held_bytes > SETTINGS.max_bytes + 2048:
            raise AssertionError(f"{reassembler.held_bytes} bytes held")
        if reassembler.pending > SETTINGS.max_datagrams:
            raise AssertionError(f"{reassembler.pending} datagrams pending")
        if flags & 0x10:
            reassembler.expire(ts)
    if reassembler.held_bytes < 0:
        raise AssertionError("negative held bytes")


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
