"""Invariant: any sequence of TCP segments yields SIP messages or counted errors (their parsers' own), never raises; connections and buffers stay within their bounds."""

from __future__ import annotations

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.errors import ParseError
    from voiplog.packet.tcp import TcpSettings
    from voiplog.sip import SipStreamTable

SETTINGS = TcpSettings(
    max_connections=4, max_held_bytes=4096, max_held_segments=16, gap_timeout_us=50
)
MAX_BUFFER = 8192
HOSTS = (b"\x0a\0\0\x01", b"\x0a\0\0\x02")
PORTS = (5060, 8080, 40000, 40001)


def seeds():
    """A call's SIP as TCP segments, and as WebSocket: 6 header bytes per segment."""
    from tests.sip.samples import SAMPLES
    from tests.streamcraft import WS_SWITCHED, WS_UPGRADE, websocket_frame

    def seg(way: int, seq: int, flags: int, payload: bytes) -> bytes:
        return (
            bytes([way, flags, seq >> 8 & 0xFF, seq & 0xFF, len(payload) >> 8, len(payload) & 0xFF])
            + payload
        )

    stream = b""
    seq = 0
    for sample in SAMPLES:
        stream += seg(0, seq, 0x18, sample)
        seq += len(sample)
    yield stream
    yield seg(0, 0, 0x18, SAMPLES[0][100:]) + seg(0, 2000, 0x18, SAMPLES[1])
    ws = seg(1, 0, 0x18, WS_UPGRADE) + seg(3, 0, 0x18, WS_SWITCHED)
    frame = websocket_frame(SAMPLES[0], mask=b"abcd")
    yield ws + seg(1, len(WS_UPGRADE), 0x18, frame)


def test_one(data: bytes) -> None:
    errors: list[ParseError] = []
    weirds: list[str] = []
    table = SipStreamTable(
        (5060,), SETTINGS, max_buffer=MAX_BUFFER, on_weird=weirds.append, on_error=errors.append
    )
    pos = 0
    ts = 0
    while pos + 6 <= len(data):
        way, flags, seq_hi, seq_lo, len_hi, len_lo = data[pos : pos + 6]
        size = (len_hi << 8 | len_lo) % 4096
        payload = data[pos + 6 : pos + 6 + size]
        pos += 6 + size
        ts += 7
        client, server = HOSTS[way & 1], HOSTS[1 - (way & 1)]
        port_a, port_b = PORTS[way >> 1 & 3], PORTS[way >> 3 & 3]
        key = (
            (client, port_a, server, port_b)
            if way & 0x40 == 0
            else (server, port_b, client, port_a)
        )
        seq = (seq_hi << 8 | seq_lo) * (1 + (way >> 5 & 1) * 65535)
        ack = seq + size if flags & 0x10 else None
        for message in table.segment(key, seq, flags & 0x1F, payload, ts, ack):
            if not isinstance(message[2], bytes):
                raise AssertionError(f"message of type {type(message[2])}")
        if way & 0x80:
            table.expire(ts)
        if table.tcp.connections > SETTINGS.max_connections:
            raise AssertionError(f"{table.tcp.connections} connections")
        for direction in list(table.tcp._directions.values()):
            if direction.held_bytes > SETTINGS.max_held_bytes + 4096:
                raise AssertionError(f"{direction.held_bytes} bytes held")
            reader = direction.app
            if (
                reader is not None
                and reader.sip is not None
                and reader.sip.buffered > MAX_BUFFER + 4096
            ):
                raise AssertionError(f"{reader.sip.buffered} bytes buffered")
            if reader is not None and len(reader.buffer) > 8192 + 4096:
                raise AssertionError(f"{len(reader.buffer)} bytes of handshake buffered")
    table.flush()


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
