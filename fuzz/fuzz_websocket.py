"""Invariant: any bytes read as WebSocket handshake or frames return messages or raise WebSocketError, never anything else; the reader holds at most one message; memory stays bounded."""

from __future__ import annotations

import contextlib

import atheris

from fuzz._common import chunks, fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.packet.websocket import (
        WebSocketError,
        WebSocketReader,
        read_upgrade_request,
        read_upgrade_response,
    )

MAX_MESSAGE = 4096


def seeds():
    from tests.sip.samples import SAMPLES
    from tests.streamcraft import WS_SWITCHED, WS_UPGRADE, websocket_frame, websocket_wrap

    yield b"\x05\x10\x40" + websocket_wrap(SAMPLES[0], True) + websocket_wrap(SAMPLES[1], False)
    yield b"\x00" + websocket_frame(SAMPLES[2] * 2, mask=None, opcode=2)
    yield b"\x00" + WS_UPGRADE
    yield b"\x00" + WS_SWITCHED


def test_one(data: bytes) -> None:
    if not data:
        return
    for read in (read_upgrade_request, read_upgrade_response):
        with contextlib.suppress(WebSocketError):
            read(data)
    cut = data[0] % 8
    reader = WebSocketReader(MAX_MESSAGE)
    for piece in chunks(data[1 + cut :], data[1 : 1 + cut]):
        try:
            messages = reader.feed(piece)
        except WebSocketError:
            return
        for message in messages:
            if len(message) > MAX_MESSAGE:
                raise AssertionError(f"message of {len(message)} bytes")
        if len(reader._buffer) > MAX_MESSAGE + 14 + len(piece):
            raise AssertionError(f"{len(reader._buffer)} bytes buffered")


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
