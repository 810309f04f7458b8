"""WebSocket (RFC 6455) reading for SIP over WebSocket (RFC 7118), sans-IO.

Strategy: `read_upgrade_request` and `read_upgrade_response` check the HTTP
handshake heads; afterwards each direction of the connection gets a
`WebSocketReader`, fed the direction's bytes in order, which returns the payload
of every complete data message: frames unmasked, continuation frames joined,
control frames (ping, pong) skipped. A close frame ends the direction.

Only what a passive reader can do: permessage-deflate (RSV1) and other extensions
are refused with `WebSocketError` (``ws.extension``), as are frames that break the
framing rules. After an error the direction cannot be resynchronised (a frame
boundary cannot be recognised in the middle of data), so the caller stops reading it.
Messages are bounded by `max_message` bytes, and the reader never holds more than
one message and one frame header beyond it.
"""

from __future__ import annotations

import re

from voiplog.errors import ParseError

__all__ = [
    "WebSocketError",
    "WebSocketReader",
    "looks_like_upgrade_request",
    "read_upgrade_request",
    "read_upgrade_response",
]

_MAX_HEAD = 8192

_OP_CONTINUATION = 0
_OP_TEXT = 1
_OP_BINARY = 2
_OP_CLOSE = 8

_HEADER_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.MULTILINE)


class WebSocketError(ParseError):
    """A WebSocket handshake or frame that cannot be read."""

    kind = "ws.parse_error"


def looks_like_upgrade_request(payload: bytes) -> bool:
    """Cheap test: an HTTP GET that asks for a WebSocket upgrade, in its first bytes."""
    return payload[:4] == b"GET " and b"websocket" in payload[:_MAX_HEAD].lower()


def _head(buffer: bytes) -> tuple[list[bytes], dict[bytes, bytes], int] | None:
    end = buffer.find(b"\r\n\r\n", 0, _MAX_HEAD + 4)
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise WebSocketError(
                f"no end of HTTP head within {_MAX_HEAD} bytes", "ws.bad_handshake"
            )
        return None
    head = buffer[:end]
    first, _, rest = head.partition(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for name, value in _HEADER_RE.findall(rest):
        name = name.lower()
        headers[name] = headers[name] + b"," + value if name in headers else value
    return first.split(b" ", 2), headers, end + 4


def _tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",")}


def read_upgrade_request(buffer: bytes) -> int | None:
    """Length of a complete HTTP upgrade request for SIP over WebSocket at `buffer`'s start.

    None while the head is incomplete; `WebSocketError` when it is not such a request
    (``ws.not_sip`` when it upgrades to another subprotocol).
    """
    parsed = _head(buffer)
    if parsed is None:
        return None
    start, headers, length = parsed
    if len(start) != 3 or start[0] != b"GET" or not start[2].startswith(b"HTTP/1."):
        raise WebSocketError(
            f"not an HTTP GET request: {b' '.join(start)[:60]!r}", "ws.bad_handshake"
        )
    if b"websocket" not in _tokens(headers.get(b"upgrade", b"")):
        raise WebSocketError("HTTP request without Upgrade: websocket", "ws.bad_handshake")
    if b"sip" not in _tokens(headers.get(b"sec-websocket-protocol", b"")):
        raise WebSocketError("WebSocket upgrade not offering the sip subprotocol", "ws.not_sip")
    return length


def read_upgrade_response(buffer: bytes) -> int | None:
    """Length of a complete ``101 Switching Protocols`` head at `buffer`'s start.

    None while incomplete; `WebSocketError` when the server refused the upgrade
    (``ws.upgrade_refused``) or answered something else.
    """
    parsed = _head(buffer)
    if parsed is None:
        return None
    start, headers, length = parsed
    if len(start) < 2 or not start[0].startswith(b"HTTP/1."):
        raise WebSocketError(f"not an HTTP response: {b' '.join(start)[:60]!r}", "ws.bad_handshake")
    if start[1] != b"101":
        raise WebSocketError(f"WebSocket upgrade answered {start[1][:10]!r}", "ws.upgrade_refused")
    protocol = _tokens(headers.get(b"sec-websocket-protocol", b""))
    if b"sip" not in protocol:
        raise WebSocketError("WebSocket upgrade accepted without the sip subprotocol", "ws.not_sip")
    return length


def _unmask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    key = int.from_bytes(mask * ((n + 3) >> 2), "big") >> (((-n) & 3) << 3)
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")


class WebSocketReader:
    """Reads the data messages of one direction of a WebSocket connection."""

    def __init__(self, max_message: int = 256 * 1024) -> None:
        self.max_message = max_message
        self.closed = False
        self._buffer = b""
        self._parts: list[bytes] = []  # fragments of the message being received
        self._size = 0
        self._in_message = False

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the direction; the payloads of the messages completed."""
        if self.closed:
            return []
        buffer = self._buffer + data if self._buffer else data
        messages: list[bytes] = []
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            fin = first & 0x80
            if first & 0x70:
                raise WebSocketError(
                    "frame with RSV bits set (a compression extension)", "ws.extension"
                )
            opcode = first & 0x0F
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = buffer[pos + 2] << 8 | buffer[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
                header = 10
            masked = second & 0x80
            if masked:
                header += 4
            if opcode >= 8:
                if not fin or length > 125:
                    raise WebSocketError(
                        f"control frame {opcode} fragmented or of {length} bytes", "ws.bad_frame"
                    )
            elif opcode not in (_OP_CONTINUATION, _OP_TEXT, _OP_BINARY):
                raise WebSocketError(f"reserved opcode {opcode}", "ws.bad_frame")
            elif (opcode == _OP_CONTINUATION) != self._in_message:
                raise WebSocketError(
                    "continuation frame outside a message"
                    if opcode == _OP_CONTINUATION
                    else "new message before the previous one ended",
                    "ws.bad_frame",
                )
            if opcode < 8 and self._size + length > self.max_message:
                raise WebSocketError(f"message over {self.max_message} bytes", "ws.message_too_big")
            if size - pos < header + length:
                break
            payload = buffer[pos + header : pos + header + length]
            if masked:
                payload = _unmask(payload, buffer[pos + header - 4 : pos + header])
            pos += header + length
            if opcode == _OP_CLOSE:
                self.closed = True
                break
            if opcode >= 8:
                continue  # ping, pong
            self._parts.append(payload)
            self._size += length
            self._in_message = not fin
            if fin:
                messages.append(b"".join(self._parts))
                self._parts = []
                self._size = 0
        self._buffer = b"" if self.closed else buffer[pos:]
        return messages
