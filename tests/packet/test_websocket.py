"""WebSocket reading for SIP over WebSocket (RFC 6455 framing, RFC 7118 handshake)."""

from __future__ import annotations

import os
import struct

import pytest

from voiplog.packet.websocket import (
    WebSocketError,
    WebSocketReader,
    looks_like_upgrade_request,
    read_upgrade_request,
    read_upgrade_response,
)

UPGRADE = (
    b"GET /ws HTTP/1.1\r\n"
    b"Host: sip.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: sip\r\n\r\n"
)


def frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One WebSocket frame, as a client (masked) or server (unmasked) writes it."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack(">BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack(">BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack(">BBQ", first, mask_bit | 127, n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_handshake_heads():
    assert looks_like_upgrade_request(UPGRADE)
    assert not looks_like_upgrade_request(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_upgrade_request(UPGRADE[:50]) is None
    assert read_upgrade_request(UPGRADE + b"rest") == len(UPGRADE)
    assert read_upgrade_response(SWITCHED + b"\x81\x00") == len(SWITCHED)


def test_upgrade_to_another_subprotocol_is_not_sip():
    other = UPGRADE.replace(b"Protocol: sip", b"Protocol: chat, superchat")
    with pytest.raises(WebSocketError) as exc:
        read_upgrade_request(other)
    assert exc.value.kind == "ws.not_sip"


def test_sip_among_several_offered_subprotocols():
    both = UPGRADE.replace(b"Protocol: sip", b"Protocol: chat, SIP")
    assert read_upgrade_request(both) == len(both)


def test_refused_upgrade():
    with pytest.raises(WebSocketError) as exc:
        read_upgrade_response(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert exc.value.kind == "ws.upgrade_refused"


def test_endless_head_is_refused():
    with pytest.raises(WebSocketError) as exc:
        read_upgrade_request(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3000)
    assert exc.value.kind == "ws.bad_handshake"


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
@pytest.mark.parametrize("masked", [False, True])
def test_frames_of_every_length_encoding(size, masked):
    payload = os.urandom(size)
    reader = WebSocketReader()
    assert reader.feed(frame(payload, mask=b"\x01\x02\x03\xff" if masked else None)) == [payload]


def test_byte_by_byte_feeding():
    payload = b"REGISTER sip:example.com SIP/2.0\r\n\r\n"
    data = frame(payload, mask=b"abcd") + frame(payload, opcode=2)
    reader = WebSocketReader()
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    assert out == [payload, payload]


def test_continuation_frames_with_a_ping_between_them():
    reader = WebSocketReader()
    data = (
        frame(b"INVITE sip:a ", fin=False, mask=b"wxyz")
        + frame(b"", opcode=9, mask=b"1234")  # ping
        + frame(b"SIP/2.0\r\n", opcode=0, fin=False, mask=b"qrst")
        + frame(b"\r\n", opcode=0, mask=b"mnop")
    )
    assert reader.feed(data) == [b"INVITE sip:a SIP/2.0\r\n\r\n"]


def test_close_frame_ends_the_direction():
    reader = WebSocketReader()
    assert reader.feed(frame(b"a") + frame(b"\x03\xe8", opcode=8) + frame(b"b")) == [b"a"]
    assert reader.closed
    assert reader.feed(frame(b"c")) == []


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xc1\x01x", "ws.extension"),  # RSV1: permessage-deflate
        (b"\x83\x00", "ws.bad_frame"),  # reserved opcode
        (b"\x80\x01x", "ws.bad_frame"),  # continuation outside a message
        (b"\x09\x00", "ws.bad_frame"),  # fragmented ping
        (b"\x89\x7e\x00\x80" + b"x" * 128, "ws.bad_frame"),  # ping over 125 bytes
        (b"\x01\x01a\x01\x01b", "ws.bad_frame"),  # new message inside another
        (b"\x82\x7f" + struct.pack(">Q", 2**40), "ws.message_too_big"),
    ],
)
def test_framing_errors(data, kind):
    with pytest.raises(WebSocketError) as exc:
        WebSocketReader().feed(data)
    assert exc.value.kind == kind


def test_message_bound_counts_every_fragment():
    reader = WebSocketReader(max_message=100)
    reader.feed(frame(b"x" * 60, fin=False))
    with pytest.raises(WebSocketError) as exc:
        reader.feed(frame(b"y" * 60, opcode=0))
    assert exc.value.kind == "ws.message_too_big"
