"""SIP over stream transports: TCP connections and WebSocket (RFC 7118), sans-IO.

Strategy: `SipStreamTable` follows the TCP connections that carry SIP, ordering
their segments with `voiplog.packet.tcp.TcpReassembler`, and gives each direction
a reader chosen by its first bytes:

* a SIP start line (or a SIP port): `SipStreamReader`, which frames messages by
  Content-Length with `split_stream`, skips keep-alive CRLFs, and after lost bytes
  or a capture that starts mid-stream skips to the next line that starts a SIP
  message;
* an HTTP GET asking to upgrade to WebSocket with the ``sip`` subprotocol: the
  handshake heads are checked, then both directions are read as WebSocket
  frames, each data message holding one SIP message (or several, framed by
  Content-Length);
* TLS records on a SIP port, and WebSocket for another subprotocol: left alone
  (the connection is still followed, for its end, but none of its bytes are kept).

Which connections are followed: one whose first segment seen is on a SIP port, or
whose payload starts like a SIP message or a WebSocket upgrade, on any port. That
is the same rule as for UDP, and keeps the table free of unrelated TCP traffic.

Only this module's readers hold bytes; each is bounded (`max_buffer`,
`max_message`), and a reader that overflows drops its buffer and resynchronises,
counted as a weird.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from voiplog.errors import ParseError
from voiplog.packet.tcp import TCP_SYN, TcpReassembler, TcpSettings
from voiplog.packet.websocket import (
    WebSocketError,
    WebSocketReader,
    looks_like_upgrade_request,
    read_upgrade_request,
    read_upgrade_response,
)
from voiplog.sip._framing import split_stream
from voiplog.sip._message import looks_like_sip

__all__ = ["SipStreamReader", "SipStreamTable"]

# A line that starts a SIP request or response; where a reader resynchronises.
_START_LINE_RE = re.compile(
    rb"^(?:[A-Z][A-Z_-]{1,31} [!-~]{1,2048} SIP/2\.0\r?\n|SIP/2\.0 [1-6][0-9][0-9] [^\r\n]*\r?\n)",
    re.MULTILINE,
)
_MAX_LINE = 4096  # bytes kept, while resynchronising, of a line not yet ended

# What a connection direction is read as.
_NEW = 0  # no data yet
_SIP = 1
_HTTP_REQUEST = 2  # WebSocket client, before the end of its upgrade request
_HTTP_RESPONSE = 3  # WebSocket server, before the end of its 101 response
_WEBSOCKET = 4
_IGNORED = 5


def _nothing(_: object) -> None:
    return None


class SipStreamReader:
    """Frames the SIP messages of one direction of a stream, resynchronising after loss."""

    def __init__(
        self,
        *,
        synced: bool = True,
        max_buffer: int = 256 * 1024,
        on_weird: Callable[[str], None] = _nothing,
        on_error: Callable[[ParseError], None] = _nothing,
    ) -> None:
        self.synced = synced
        self.max_buffer = max_buffer
        self._buffer = b""
        self._weird = on_weird
        self._error = on_error

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes | None) -> list[bytes]:
        """Next bytes of the stream (None: bytes were lost here); the complete messages."""
        if data is None:
            if self._buffer.strip(b"\r\n"):
                self._weird("sip.tcp_partial_message")
            self._buffer = b""
            self.synced = False
            return []
        buffer = self._buffer + data if self._buffer else data
        messages: list[bytes] = []
        while buffer:
            if not self.synced:
                buffer = self._resync(buffer)
                if not self.synced:
                    break
            try:
                framed, consumed = split_stream(buffer)
            except ParseError as exc:
                self._error(exc)
                buffer = self._drop_first_line(buffer)
                continue
            for index, message in enumerate(framed):
                if not looks_like_sip(message):
                    # Framed by a Content-Length that lied, or not SIP at all.
                    self._weird("sip.tcp_resync")
                    consumed = sum(len(m) for m in framed[:index])
                    consumed = buffer.find(message, consumed) + 1
                    self.synced = False
                    break
                messages.append(message)
            buffer = buffer[consumed:]
            if self.synced:
                if len(buffer) > self.max_buffer:
                    self._weird("sip.tcp_buffer_overflow")
                    buffer = b""
                    self.synced = False
                break
        self._buffer = buffer
        return messages

    def _resync(self, buffer: bytes) -> bytes:
        match = _START_LINE_RE.search(buffer)
        if match is None:
            # Keep only the unfinished last line: it may become a start line.
            cut = buffer.rfind(b"\n") + 1
            if len(buffer) - cut > _MAX_LINE:
                cut = len(buffer)
            if buffer[:cut].strip(b"\r\n\0 "):
                self._weird("sip.tcp_resync")
            return buffer[cut:]
        if match.start() and buffer[: match.start()].strip(b"\r\n\0 "):
            self._weird("sip.tcp_resync")
        self.synced = True
        return buffer[match.start() :]

    def _drop_first_line(self, buffer: bytes) -> bytes:
        self.synced = False
        cut = buffer.find(b"\n") + 1
        return buffer[cut:] if cut else b""


def split_websocket_message(payload: bytes) -> list[bytes]:
    """The SIP messages in one WebSocket message.

    RFC 7118 puts one SIP message in each WebSocket message, where Content-Length
    may be left out; some clients still pack several, each with its Content-Length.
    """
    try:
        messages, consumed = split_stream(payload)
    except ParseError:
        return [payload]
    if len(messages) > 1 and consumed == len(payload) and all(map(looks_like_sip, messages)):
        return messages
    return [payload]


class _Reader:
    """What one direction of a followed connection is read as, and its state."""

    __slots__ = ("buffer", "mid_stream", "mode", "sip", "ws")

    def __init__(self) -> None:
        self.mode = _NEW
        self.sip: SipStreamReader | None = None
        self.ws: WebSocketReader | None = None
        self.buffer = b""
        self.mid_stream = False


class SipStreamTable:
    """Follows the TCP connections that carry SIP and reads their messages."""

    def __init__(
        self,
        sip_ports: Iterable[int],
        tcp_settings: TcpSettings | None = None,
        *,
        max_buffer: int = 256 * 1024,
        on_weird: Callable[[str], None] = _nothing,
        on_error: Callable[[ParseError], None] = _nothing,
    ) -> None:
        self.sip_ports = frozenset(sip_ports)
        self.max_buffer = max_buffer
        self._weird = on_weird
        self._error = on_error
        self.tcp = TcpReassembler(tcp_settings, on_weird)

    def wants(self, key: tuple, flags: int, payload: bytes) -> bool:
        """Whether a segment belongs to SIP traffic: followed already, or it starts so."""
        if self.tcp.get(key) is not None:
            return True
        if key[1] in self.sip_ports or key[3] in self.sip_ports:
            return bool(payload) or bool(flags & TCP_SYN)
        return bool(payload) and (looks_like_sip(payload) or looks_like_upgrade_request(payload))

    def segment(
        self,
        key: tuple,
        seq: int,
        flags: int,
        payload: bytes,
        now_us: int,
        ack: int | None = None,
    ) -> list[tuple[tuple, int, bytes, str]]:
        """Feed one TCP segment of `key` = (src_ip, src_port, dst_ip, dst_port).

        `ack` is the acknowledgement number when the ACK flag is set. Returns the SIP
        messages completed as ``(key, ts_us, message, transport)``: the direction
        the message travels (the segment's, or the other one when the segment
        acknowledged bytes the capture missed there), the capture time of the last
        segment the message needed, the message, and ``tcp`` or ``ws``.
        """
        tcp = self.tcp
        direction = tcp.get(key)
        if direction is None:
            if not self.wants(key, flags, payload):
                return []
            direction = tcp.follow(key, now_us)
            direction.app = _Reader()
            direction.peer.app = _Reader()
        if direction.app.mode == _IGNORED and direction.peer.app.mode == _IGNORED:
            payload = b""  # only follow its flags, until it closes: nothing to hold
        chunks = tcp.segment(direction, seq, flags, payload, now_us, ack)
        released = tcp.take_released()
        own = [(key, *message) for message in self._read_chunks(direction, chunks)]
        return self._released(released) + own if released else own

    def expire(self, now_us: int) -> list[tuple[tuple, int, bytes, str]]:
        """Time out connections and holes; messages released by giving up a hole."""
        return self._released(self.tcp.expire(now_us))

    def flush(self) -> list[tuple[tuple, int, bytes, str]]:
        """End of input: messages in data held behind holes that will never fill."""
        return self._released(self.tcp.flush())

    def _released(self, released) -> list[tuple[tuple, int, bytes, str]]:
        out = []
        for direction, chunks in released:
            key = direction.key
            out.extend((key, *message) for message in self._read_chunks(direction, chunks))
        return out

    def _read_chunks(self, direction, chunks) -> list[tuple[int, bytes, str]]:
        reader = direction.app
        out: list[tuple[int, bytes, str]] = []
        ts = 0
        for chunk_ts, chunk in chunks:
            # A message is dated by the latest segment it needed; chunks released
            # together after a reordering come in sequence order, not time order.
            if chunk_ts > ts:
                ts = chunk_ts
            messages: list[tuple[bytes, str]] = []
            self._read(direction, reader, chunk, messages)
            out.extend((ts, message, transport) for message, transport in messages)
        return out

    # -- readers ---------------------------------------------------------------

    def _read(self, direction, reader: _Reader, chunk: bytes | None, out: list) -> None:
        mode = reader.mode
        if mode == _IGNORED:
            return
        if mode == _NEW:
            if chunk is None:
                reader.mid_stream = True
                return
            if not chunk:
                return
            mode = self._choose(direction, reader, chunk)
            if mode == _IGNORED:
                return
        if mode == _SIP:
            out.extend((m, "tcp") for m in reader.sip.feed(chunk))
            return
        if chunk is None:
            if mode == _HTTP_RESPONSE and not reader.buffer:
                return  # joined before the server's first byte: nothing lost
            # Lost bytes in a handshake or in WebSocket framing cannot be recovered.
            self._weird("ws.gap")
            self._ignore_connection(direction)
            return
        try:
            if mode == _WEBSOCKET:
                for message in reader.ws.feed(chunk):
                    out.extend((m, "ws") for m in split_websocket_message(message))
                return
            reader.buffer += chunk
            if mode == _HTTP_REQUEST:
                length = read_upgrade_request(reader.buffer)
            else:
                length = read_upgrade_response(reader.buffer)
            if length is None:
                return
            rest = reader.buffer[length:]
            reader.buffer = b""
            reader.mode = _WEBSOCKET
            reader.ws = WebSocketReader(self.max_buffer)
            if rest:
                self._read(direction, reader, rest, out)
        except WebSocketError as exc:
            if exc.kind != "ws.not_sip":  # a WebSocket for something else: not ours
                self._error(exc)
            self._ignore_connection(direction)

    def _choose(self, direction, reader: _Reader, chunk: bytes) -> int:
        peer = direction.peer.app
        if looks_like_upgrade_request(chunk):
            reader.mode = _HTTP_REQUEST
            if peer.mode == _NEW:
                peer.mode = _HTTP_RESPONSE
        elif len(chunk) >= 3 and 0x14 <= chunk[0] <= 0x17 and chunk[1] == 3 and chunk[2] <= 4:
            reader.mode = _IGNORED  # a TLS record: SIP over TLS, not readable
            peer.mode = _IGNORED
        else:
            reader.mode = _SIP
            reader.sip = SipStreamReader(
                synced=not reader.mid_stream,
                max_buffer=self.max_buffer,
                on_weird=self._weird,
                on_error=self._error,
            )
        return reader.mode

    def _ignore_connection(self, direction) -> None:
        for side in (direction.app, direction.peer.app):
            side.mode = _IGNORED
            side.buffer = b""
            side.ws = None
            side.sip = None
