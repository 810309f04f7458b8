"""HEP (the Homer Encapsulation Protocol, v2 and v3): one mirrored message in, its fields out.

Strategy: SIP proxies and SBCs (Kamailio's siptrace, OpenSIPS, FreeSWITCH, Asterisk,
rtpengine, heplify) send a copy of every message they handle, wrapped with the
original addresses, ports and capture time. `decode_hep` reads one such wrapper and
returns a `HepMessage` whose fields are what `voiplog.packet.decode` gives for a
captured datagram, so the pipeline treats both alike. Pure: bytes in, a frozen
record out, no socket and no clock.

* HEP v3 ("HEP3", total length, then type-length-value chunks of vendor 0): chunks
  of other vendors and unknown types are skipped and counted in ``unknown_chunks``;
  a chunk that runs past the message, a wrong total length, or a message without
  addresses, ports or payload is a `HepError`. A compressed payload (chunk 16) is
  inflated, bounded by `MAX_PAYLOAD`.
* HEP v2 (and v1, its untimed ancestor): a fixed C struct. Ports are in network
  order; the time header (seconds, microseconds, a 16-bit capture id, padded to
  12 bytes) is written in the sender's host order by every known sender, which in
  practice is little-endian, and is read so.

`HepStreamSplitter` cuts a TCP byte stream of HEP v3 messages at their length
fields, bounded like every other buffer; `HepTcpStreams` puts captured segments of
such streams in order first (a capture of a HEP-over-TCP feed). `HepSettings` says which packets to accept
(capture password, node ids, a rate per sender); `HepGate` applies it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from voiplog._extensions import compiled
from voiplog._frozen import fast_frozen_init
from voiplog.errors import ParseError
from voiplog.packet.tcp import TcpReassembler, TcpSettings
from voiplog.settings import DEFAULT_HEP_PORT, HepSettings

__all__ = [
    "DEFAULT_HEP_PORT",
    "HEP_PAYLOAD_NAMES",
    "HEP_SIP",
    "MAX_PAYLOAD",
    "HepError",
    "HepGate",
    "HepMessage",
    "HepSettings",
    "HepStreamSplitter",
    "HepTcpStreams",
    "decode_hep",
    "encode_hep3",
]

HEP_SIP = 1
# Payload types as HOMER numbers them; only SIP makes records, the rest is counted.
HEP_PAYLOAD_NAMES = {
    1: "sip",
    5: "rtcp_report",  # RTCP as JSON (heplify, rtpengine)
    34: "qos_report",  # RTP agent QoS report, JSON (rtpengine, heplify)
    35: "qos_report",  # RTCP-XR / vendor QoS report, JSON
    100: "log",
}
MAX_PAYLOAD = 65535
"""Largest payload accepted, also after inflating a compressed one."""

_AF_INET = 2
_AF_INET6 = 10
_V3_HEADER = struct.Struct(">4sH")
_CHUNK = struct.Struct(">HHH")
_V12_HEADER = struct.Struct(">BBBBHH")
_V2_TIME = struct.Struct("<IIH2x")


class HepError(ParseError):
    """A HEP packet that cannot be read; ``kind`` starts with ``hep.``."""

    kind = "hep.malformed"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class HepMessage:
    """One decoded HEP packet. Addresses are packed bytes, as `decode` gives them."""

    version: int
    proto: int  # IP protocol of the original message: 17 UDP, 6 TCP, 132 SCTP
    src_ip: bytes
    src_port: int
    dst_ip: bytes
    dst_port: int
    ts_us: int  # capture time at the sender, microseconds since the epoch
    payload_type: int  # HEP_SIP for SIP; see HEP_PAYLOAD_NAMES
    payload: bytes
    node_id: int | None = None  # capture agent id (chunk 12; v2: captid)
    auth_key: bytes | None = None  # capture password (chunk 14; v3 only)
    correlation_id: str | None = None  # chunk 17
    unknown_chunks: int = 0  # chunks skipped: other vendors, unknown types


def decode_hep(data: bytes) -> HepMessage:
    """Decode one HEP v3, v2 or v1 packet; raises `HepError` when it cannot be read."""
    if data[:4] == b"HEP3":
        return _decode_v3_in_use(data)
    if data[:1] in (b"\x01", b"\x02"):
        return _decode_v12(data)
    if data[:4] == b"EEP3" or data[:4] == b"HEP2":
        raise HepError("EEP/HEP variant not supported", "hep.bad_version")
    raise HepError("not a HEP packet (no HEP3 magic, version not 1 or 2)", "hep.bad_version")


def _decode_v3(data: bytes) -> HepMessage:
    size = len(data)
    if size < 6:
        raise HepError(f"HEP3 header cut short ({size} bytes)", "hep.truncated")
    total = _V3_HEADER.unpack_from(data)[1]
    if total < 6 or total > size:
        raise HepError(f"HEP3 total length {total} outside 6..{size}", "hep.bad_length")
    family = proto = payload_type = None
    src = dst = payload = auth = correlation = None
    sport = dport = node = None
    seconds = micros = 0
    unknown = 0
    off = 6
    unpack = _CHUNK.unpack_from
    while off < total:
        if total - off < 6:
            raise HepError("HEP3 chunk header cut short", "hep.truncated")
        vendor, ctype, length = unpack(data, off)
        end = off + length
        if length < 6 or end > total:
            raise HepError(
                f"HEP3 chunk {vendor}/{ctype} length {length} runs past the message",
                "hep.bad_chunk",
            )
        body = off + 6
        n = length - 6
        off = end
        if vendor != 0:
            unknown += 1
            continue
        if ctype == 15:
            payload = data[body:end]
        elif ctype == 3 or ctype == 5:
            src = _address(data, body, n, ctype == 5)
        elif ctype == 4 or ctype == 6:
            dst = _address(data, body, n, ctype == 6)
        elif ctype == 7:
            if n != 2:
                raise _size(ctype, n, 2)
            sport = data[body] << 8 | data[body + 1]
        elif ctype == 8:
            if n != 2:
                raise _size(ctype, n, 2)
            dport = data[body] << 8 | data[body + 1]
        elif ctype == 9:
            if n != 4:
                raise _size(ctype, n, 4)
            seconds = int.from_bytes(data[body:end], "big")
        elif ctype == 10:
            if n != 4:
                raise _size(ctype, n, 4)
            micros = int.from_bytes(data[body:end], "big")
        elif ctype == 1 or ctype == 2 or ctype == 11:
            if n != 1:
                raise _size(ctype, n, 1)
            if ctype == 1:
                family = data[body]
            elif ctype == 2:
                proto = data[body]
            else:
                payload_type = data[body]
        elif ctype == 12:
            # A 32-bit id in the specification; some old senders wrote 16 bits.
            if n != 4 and n != 2:
                raise _size(ctype, n, 4)
            node = int.from_bytes(data[body:end], "big")
        elif ctype == 14:
            auth = data[body:end]
        elif ctype == 16:
            payload = _inflate(data[body:end])
        elif ctype == 17:
            correlation = data[body:end].decode("utf-8", "replace")
        elif 13 <= ctype <= 26:
            pass  # keep-alive timer, VLAN, group, MACs, TCP flags, ...: not needed
        else:
            unknown += 1
    if payload is None:
        raise HepError("HEP3 message without payload", "hep.missing_chunk")
    if src is None or dst is None or sport is None or dport is None:
        raise HepError("HEP3 message without addresses or ports", "hep.missing_chunk")
    if len(src) != len(dst):
        raise HepError("HEP3 source and destination of different families", "hep.bad_chunk")
    if family is not None and family not in (_AF_INET, _AF_INET6):
        raise HepError(f"HEP3 IP family {family} unknown", "hep.bad_chunk")
    if micros >= 1_000_000:
        raise HepError(f"HEP3 microseconds {micros} not below one second", "hep.bad_chunk")
    return HepMessage(
        3,
        17 if proto is None else proto,
        src,
        sport,
        dst,
        dport,
        seconds * 1_000_000 + micros,
        HEP_SIP if payload_type is None else payload_type,
        payload,
        node,
        auth,
        correlation,
        unknown,
    )


def _address(data: bytes, off: int, n: int, v6: bool) -> bytes:
    if n != (16 if v6 else 4):
        raise HepError(f"HEP3 IPv{'6' if v6 else '4'} address chunk of {n} bytes", "hep.bad_chunk")
    return data[off : off + n]


def _size(ctype: int, n: int, size: int) -> HepError:
    return HepError(f"HEP3 chunk type {ctype} of {n} bytes, not {size}", "hep.bad_chunk")


def _inflate(data: bytes) -> bytes:
    # zlib or gzip framing, detected from the header; bounded output.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
    try:
        out = inflater.decompress(data, MAX_PAYLOAD + 1)
    except zlib.error as exc:
        raise HepError(f"HEP3 compressed payload unreadable: {exc}", "hep.bad_chunk") from None
    if len(out) > MAX_PAYLOAD:
        raise HepError(f"HEP3 compressed payload beyond {MAX_PAYLOAD} bytes", "hep.bad_length")
    return out


def _decode_v12(data: bytes) -> HepMessage:
    size = len(data)
    if size < 8:
        raise HepError(f"HEP v1/v2 header cut short ({size} bytes)", "hep.truncated")
    version, header_len, family, proto, sport, dport = _V12_HEADER.unpack_from(data)
    if family == _AF_INET:
        width = 4
    elif family == _AF_INET6:
        width = 16
    else:
        raise HepError(f"HEP v{version} IP family {family} unknown", "hep.bad_chunk")
    if header_len != 8 + 2 * width:
        raise HepError(
            f"HEP v{version} header length {header_len}, not {8 + 2 * width}", "hep.bad_length"
        )
    off = header_len
    timed = version == 2
    if size < off + (_V2_TIME.size if timed else 0):
        raise HepError(f"HEP v{version} header cut short ({size} bytes)", "hep.truncated")
    src = data[8 : 8 + width]
    dst = data[8 + width : off]
    ts_us = 0
    node = None
    if timed:
        seconds, micros, node = _V2_TIME.unpack_from(data, off)
        if micros >= 1_000_000:
            raise HepError(f"HEP v2 microseconds {micros} not below one second", "hep.bad_chunk")
        ts_us = seconds * 1_000_000 + micros
        off += _V2_TIME.size
    if size - off > MAX_PAYLOAD:
        raise HepError(f"HEP v{version} payload beyond {MAX_PAYLOAD} bytes", "hep.bad_length")
    return HepMessage(version, proto, src, sport, dst, dport, ts_us, HEP_SIP, data[off:], node)


# HEP v3 decoding compiled (`_chep.pyx`) when built, else `_decode_v3`, its reference.
_chep = compiled("voiplog.packet._chep")
_decode_v3_in_use = _chep.decode_v3 if _chep is not None else _decode_v3


def encode_hep3(message: HepMessage, *, chunks: tuple[tuple[int, int, bytes], ...] = ()) -> bytes:
    """A HEP v3 packet for `message` (for tests, benchmarks and the HEP replay tools):
    the chunks a Kamailio or heplify sender writes, plus any extra `chunks` given as
    (vendor, type, body)."""
    v6 = len(message.src_ip) == 16
    parts = [
        (0, 1, bytes([_AF_INET6 if v6 else _AF_INET])),
        (0, 2, bytes([message.proto])),
        (0, 5 if v6 else 3, message.src_ip),
        (0, 6 if v6 else 4, message.dst_ip),
        (0, 7, message.src_port.to_bytes(2, "big")),
        (0, 8, message.dst_port.to_bytes(2, "big")),
        (0, 9, (message.ts_us // 1_000_000).to_bytes(4, "big")),
        (0, 10, (message.ts_us % 1_000_000).to_bytes(4, "big")),
        (0, 11, bytes([message.payload_type])),
    ]
    if message.node_id is not None:
        parts.append((0, 12, message.node_id.to_bytes(4, "big")))
    if message.auth_key is not None:
        parts.append((0, 14, message.auth_key))
    if message.correlation_id is not None:
        parts.append((0, 17, message.correlation_id.encode()))
    parts.extend(chunks)
    parts.append((0, 15, message.payload))
    body = b"".join(_CHUNK.pack(v, t, 6 + len(b)) + b for v, t, b in parts)
    return _V3_HEADER.pack(b"HEP3", 6 + len(body)) + body


# Senders whose rate is tracked at once; the table is emptied when full.
_MAX_RATE_SOURCES = 4096


class HepGate:
    """Applies `HepSettings` to decoded packets: `reject` names why one is refused."""

    __slots__ = ("_key", "_nodes", "_rate", "_same", "_seconds")

    def __init__(self, settings: HepSettings) -> None:
        self._key = settings.auth_key
        if self._key is not None:
            import hmac  # loads OpenSSL's libcrypto: only for a capture password

            self._same = hmac.compare_digest
        self._nodes = settings.node_ids
        self._rate = settings.max_rate_per_source
        self._seconds: dict[object, list[int]] = {}

    def reject(self, message: HepMessage, sender: object, now_us: int) -> str | None:
        """None to accept `message` from `sender` at `now_us`, else the weird's name."""
        key = self._key
        if key is not None:
            if message.auth_key is None:
                return "hep.no_auth_key"
            if not self._same(message.auth_key, key):
                return "hep.bad_auth_key"
        if self._nodes and message.node_id not in self._nodes:
            return "hep.node_not_accepted"
        if self._rate:
            second = now_us // 1_000_000
            seen = self._seconds.get(sender)
            if seen is None or seen[0] != second:
                if len(self._seconds) >= _MAX_RATE_SOURCES:
                    self._seconds.clear()
                self._seconds[sender] = [second, 1]
            elif seen[1] >= self._rate:
                return "hep.flood"
            else:
                seen[1] += 1
        return None


class HepStreamSplitter:
    """HEP v3 messages out of one TCP connection's bytes, cut at their length fields.

    `feed` returns the complete messages; bytes that cannot start a HEP v3 message,
    or a message longer than the buffer allows, raise `HepError` (the connection is
    then to be dropped: its framing is lost).
    """

    __slots__ = ("_buffer", "_limit", "_lost")

    def __init__(self, max_buffer: int = 256 * 1024) -> None:
        self._buffer = b""
        self._limit = max_buffer
        self._lost = False

    def resync(self) -> None:
        """Bytes were lost (a capture's hole): skip to the next "HEP3" before reading on."""
        self._buffer = b""
        self._lost = True

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if self._lost:
            start = buffer.find(b"HEP3")
            if start < 0:
                self._buffer = buffer[-3:]
                return []
            buffer = buffer[start:]
            self._lost = False
        out = []
        off = 0
        while len(buffer) - off >= 6:
            if buffer[off : off + 4] != b"HEP3":
                self._buffer = b""
                raise HepError("HEP over TCP: stream does not start with HEP3", "hep.bad_stream")
            total = buffer[off + 4] << 8 | buffer[off + 5]
            if total < 6:
                self._buffer = b""
                raise HepError(f"HEP over TCP: total length {total} below 6", "hep.bad_length")
            if len(buffer) - off < total:
                break
            out.append(buffer[off : off + total])
            off += total
        rest = buffer[off:]
        if len(rest) > self._limit:
            self._buffer = b""
            raise HepError(
                f"HEP over TCP: {len(rest)} bytes buffered beyond {self._limit}", "hep.bad_stream"
            )
        self._buffer = rest
        return out


class HepTcpStreams:
    """HEP v3 messages out of captured TCP connections (a capture of a HEP-over-TCP
    feed): segments put in order by `TcpReassembler`, with its limits, then cut by a
    `HepStreamSplitter` per direction. A hole, or bytes that are not HEP, make the
    splitter skip to the next "HEP3" (counted as a weird); nothing is fatal."""

    def __init__(
        self,
        settings: TcpSettings | None = None,
        max_buffer: int = 256 * 1024,
        on_weird: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.tcp = TcpReassembler(settings, on_weird)
        self._weird = on_weird
        self._max_buffer = max_buffer
        self._splitters: dict[tuple, HepStreamSplitter] = {}

    def segment(
        self, key: tuple, seq: int, flags: int, payload: bytes, now_us: int, ack: int | None
    ) -> list[tuple[int, bytes, tuple]]:
        """The HEP packets, ``(ts_us, packet, direction key)``, that this segment completes."""
        tcp = self.tcp
        direction = tcp.get(key) or tcp.follow(key, now_us)
        out = self._split(key, tcp.segment(direction, seq, flags, payload, now_us, ack))
        for other, chunks in tcp.take_released():
            out += self._split(other.key, chunks)
        if tcp.get(key) is None:  # closed (RST, or FIN both ways)
            src, sport, dst, dport = key
            self._splitters.pop(key, None)
            self._splitters.pop((dst, dport, src, sport), None)
        return out

    def _split(self, key: tuple, chunks: list) -> list[tuple[int, bytes, tuple]]:
        out = []
        splitter = self._splitters.get(key)
        if splitter is None:
            splitter = self._splitters[key] = HepStreamSplitter(self._max_buffer)
        for ts, data in chunks:
            if data is None:
                splitter.resync()
                continue
            try:
                packets = splitter.feed(data)
            except HepError as exc:
                self._weird(exc.kind)
                splitter.resync()
                continue
            out.extend((ts, packet, key) for packet in packets)
        return out

    def expire(self, now_us: int) -> list[tuple[int, bytes, tuple]]:
        """Forget idle connections; what giving up a hole releases comes out."""
        out = []
        for direction, chunks in self.tcp.expire(now_us):
            out += self._split(direction.key, chunks)
        tcp = self.tcp
        for key in [k for k in self._splitters if tcp.get(k) is None]:
            del self._splitters[key]
        return out
