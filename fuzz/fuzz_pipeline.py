"""Invariant: any sequence of frames runs through the whole pipeline (decode, reassembly, SIP, RTP, calls) and never raises: unreadable packets are counted by name; memory bounded by the tables' caps."""

from __future__ import annotations

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.calls import CallSettings
    from voiplog.packet import SUPPORTED_LINKTYPES
    from voiplog.packet.ipfrag import FragmentSettings
    from voiplog.packet.tcp import TcpSettings
    from voiplog.pipeline import Pipeline, ReassemblySettings

LINKTYPES = sorted(SUPPORTED_LINKTYPES)
REASSEMBLY = ReassemblySettings(
    fragments=FragmentSettings(max_datagrams=4, max_bytes=8192),
    tcp=TcpSettings(max_connections=4, max_held_bytes=4096),
    max_stream_buffer=8192,
)


def seeds():
    """A call over UDP, TCP, WebSocket and fragments: 4 header bytes per frame."""
    from tests.sipcraft import T0, make_dialog, sorted_frames
    from tests.streamcraft import (
        WS_SWITCHED,
        WS_UPGRADE,
        ip_fragments,
        tcp_stream,
        websocket_wrap,
    )

    d = make_dialog(1)
    d.basic_answered(T0, talk_s=0.06)
    frames = sorted_frames(d)

    def encode(frames) -> bytes:
        out = b""
        last = frames[0][0]
        for ts, frame in frames:
            gap = min((ts - last) // 1000, 255)
            last = ts
            out += bytes([LINKTYPES.index(1), gap, len(frame) >> 8, len(frame) & 0xFF]) + frame
        return out

    yield encode(frames)
    yield encode(tcp_stream(frames, split={0: [100]}, order={0: [1, 0]}))
    ws = tcp_stream(
        frames,
        server_port=8080,
        wrap=websocket_wrap,
        client_first=WS_UPGRADE,
        server_first=WS_SWITCHED,
    )
    yield encode(ws)
    yield encode(ip_fragments(frames, 128))


def test_one(data: bytes) -> None:
    pipeline = Pipeline(
        lambda record: record.to_dict(),
        call_settings=CallSettings(max_open_calls=8, max_media_flows=16),
        reassembly=REASSEMBLY if data[:1] != b"\xff" else ReassemblySettings(mirror_window_us=500),
    )
    frames = []
    pos = 0
    ts = 1_700_000_000_000_000
    while pos + 4 <= len(data):
        link, gap, hi, lo = data[pos : pos + 4]
        size = hi << 8 | lo
        frames.append((ts, LINKTYPES[link % len(LINKTYPES)], data[pos + 4 : pos + 4 + size]))
        pos += 4 + size
        ts += gap * 1000 if gap < 200 else gap * 1_000_000
    pipeline.feed(frames)
    pipeline.finish()


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
