"""Invariant: any bytes read as SCTP chunks return user messages or raise SctpError, never anything else; the bytes held per direction stay within the limit."""

from __future__ import annotations

import atheris

from fuzz._common import chunks, fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.packet.sctp import SctpError, SctpReassembler
    from voiplog.packet.tcp import TcpSettings

MAX_HELD = 4096


def _data(tsn: int, flags: int, payload: bytes) -> bytes:
    import struct

    chunk = struct.pack(">BBHIHHI", 0, flags, 16 + len(payload), tsn, 0, 0, 0) + payload
    return chunk + bytes(-len(chunk) % 4)


def seeds():
    from tests.sip.samples import SAMPLES

    whole = _data(1, 3, SAMPLES[0]) + _data(2, 3, SAMPLES[1])
    yield b"\x00" + whole
    sip = SAMPLES[2]
    yield b"\x02" + _data(9, 2, sip[:40]) + _data(11, 1, sip[80:]) + _data(10, 0, sip[40:80])
    yield (
        b"\x01" + b"\x03\x00\x00\x10" + bytes(12) + _data(0xFFFFFFFF, 2, b"ab") + _data(0, 1, b"c")
    )


def test_one(data: bytes) -> None:
    if not data:
        return
    reassembler = SctpReassembler(TcpSettings(max_held_bytes=MAX_HELD))
    cut = data[0] % 8
    for i, piece in enumerate(chunks(data[1 + cut :], data[1 : 1 + cut])):
        try:
            reassembler.packet((b"a", 1, b"b", 2), piece, i)
        except SctpError:
            continue
        for way in reassembler._ways.values():
            if way.held_bytes > MAX_HELD:
                raise AssertionError(f"{way.held_bytes} bytes held")
    reassembler.expire(10**12)


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
