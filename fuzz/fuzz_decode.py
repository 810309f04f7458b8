"""Invariant: any frame of any link type decodes or raises DecodeError, never anything else; outer_tunnel never raises; memory stays bounded."""

from __future__ import annotations

import contextlib

import atheris

from fuzz._common import fuzz_main

with atheris.instrument_imports(include=["voiplog"]):
    from voiplog.packet import (
        SUPPORTED_LINKTYPES,
        DecodeError,
        decode,
        decode_fragment,
        decode_tcp,
        skip_reason,
    )
    from voiplog.packet.tunnel import outer_tunnel

LINKTYPES = sorted(SUPPORTED_LINKTYPES)


def seeds():
    """Real frames: a call over UDP, TCP, fragments, and through every tunnel."""
    from tests.e2e.test_tunnels import TUNNELS
    from tests.sipcraft import T0, make_dialog, sorted_frames
    from tests.streamcraft import ip_fragments, tcp_stream, tunnelled

    d = make_dialog(1)
    d.basic_answered(T0, talk_s=0.1)
    frames = sorted_frames(d)
    samples = frames[:6] + tcp_stream(frames)[:8] + ip_fragments(frames[:1], 64)[:4]
    for _, wrap, _ in TUNNELS:
        samples += tunnelled(frames[:1], wrap)
    for _, frame in samples:
        yield bytes([LINKTYPES.index(1)]) + frame


def test_one(data: bytes) -> None:
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    frame = data[1:]
    for walk in (decode, skip_reason, decode_fragment, decode_tcp):
        with contextlib.suppress(DecodeError):
            walk(linktype, frame)
    outer_tunnel(linktype, frame)


if __name__ == "__main__":
    fuzz_main(test_one, seeds)
