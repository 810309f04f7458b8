"""Invariant: any bytes read as HEP (one packet, or a TCP stream of them) return a message or raise HepError, never anything else; a payload is never larger than MAX_PAYLOAD; the stream buffer stays bounded."""

from __future__ import annotations

import contextlib

import atheris

from fuzz._common import chunks, fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.packet.hep import MAX_PAYLOAD, HepError, HepStreamSplitter, decode_hep

MAX_BUFFER = 4096


def seeds():
    import gzip
    import struct

    from tests.sip.samples import SAMPLES
    from voiplog.packet.hep import HepMessage, encode_hep3

    msg = HepMessage(3, 17, b"\1\2\3\4", 5060, b"\5\6\7\10", 5062, 1_700_000_000_000_001,
                     1, SAMPLES[0], 2001, b"key", "corr")  # fmt: skip
    v3 = encode_hep3(msg)
    yield b"\x00" + v3
    yield b"\x03" + v3[:20] + v3 + v3
    yield b"\x00" + encode_hep3(msg, chunks=((0, 16, gzip.compress(SAMPLES[1])), (9, 1, b"x")))
    v2 = struct.pack(">BBBBHH", 2, 16, 2, 17, 5060, 5060) + bytes(8)
    yield b"\x00" + v2 + struct.pack("<IIH2x", 1, 2, 3) + SAMPLES[2]


def test_one(data: bytes) -> None:
    if not data:
        return
    try:
        msg = decode_hep(data[1:])
    except HepError:
        pass
    else:
        if len(msg.payload) > MAX_PAYLOAD:
            raise AssertionError(f"payload of {len(msg.payload)} bytes")
    cut = data[0] % 8
    splitter = HepStreamSplitter(MAX_BUFFER)
    for piece in chunks(data[1 + cut :], data[1 : 1 + cut]):
        try:
            for message in splitter.feed(piece):
                with contextlib.suppress(HepError):
                    decode_hep(message)
        except HepError:
            return
        if len(splitter._buffer) > MAX_BUFFER:
            raise AssertionError(f"{len(splitter._buffer)} bytes buffered")


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
