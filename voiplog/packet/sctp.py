"""SCTP (RFC 9260) for SIP over SCTP (RFC 4168): DATA chunks in, whole user messages out.

Strategy: RFC 4168 puts one SIP message in one SCTP user message. A packet holds any
number of chunks (`data_chunks` walks them); a user message larger than the path MTU
is cut into DATA chunks with consecutive TSNs, the first flagged B and the last E,
and no other message's chunk comes between them (I-DATA, RFC 8260, which interleaves,
is counted and skipped). So `SctpReassembler` keeps, per direction of an association,
the fragments not yet whole by TSN, and hands a message on when the run from a B to
an E is complete, whatever the order the chunks came in. A retransmitted DATA chunk
(a TSN delivered already) is dropped, so a SIP message is never seen twice.

Bounded like TCP reassembly (`voiplog.packet.tcp.TcpSettings` gives the limits):
directions followed at once (least recently active dropped first), bytes held per
direction, how long fragments wait for the rest, how long a quiet direction is kept.
Whatever is given up is counted as a named weird. Pure: time is an argument.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Callable

from voiplog.errors import ParseError
from voiplog.packet.tcp import TcpSettings

__all__ = ["SctpError", "SctpReassembler", "data_chunks"]

_CHUNK = struct.Struct(">BBH")
_DATA = struct.Struct(">IHHI")
_TYPE_DATA = 0
_TYPE_IDATA = 64
_FLAG_END = 0x01
_FLAG_BEGIN = 0x02
_RECENT_TSNS = 1024  # delivered TSNs remembered per direction, to drop retransmissions


class SctpError(ParseError):
    """An SCTP packet whose chunks cannot be read; ``kind`` starts with ``sctp.``."""

    kind = "sctp.malformed"


def data_chunks(chunks: bytes) -> tuple[list[tuple[int, int, int, int, bytes]], int]:
    """The DATA chunks of an SCTP packet (the bytes after its 12-byte common header),
    each ``(tsn, stream_id, flags, ppid, user_data)``, and the number of I-DATA
    chunks skipped. Control chunks (INIT, SACK, HEARTBEAT...) are passed over."""
    out = []
    idata = 0
    off = 0
    end = len(chunks)
    while end - off >= 4:
        ctype, flags, length = _CHUNK.unpack_from(chunks, off)
        if length < 4 or off + length > end:
            raise SctpError(
                f"SCTP chunk type {ctype} length {length} runs past the packet", "sctp.bad_chunk"
            )
        if ctype == _TYPE_DATA:
            if length < 16:
                raise SctpError(f"SCTP DATA chunk of {length} bytes", "sctp.bad_chunk")
            tsn, sid, _ssn, ppid = _DATA.unpack_from(chunks, off + 4)
            out.append((tsn, sid, flags, ppid, chunks[off + 16 : off + length]))
        elif ctype == _TYPE_IDATA:
            idata += 1
        off += (length + 3) & ~3  # chunks are padded to 4 bytes
    if off < end and any(chunks[off:end]):
        raise SctpError(f"SCTP packet ends in {end - off} stray bytes", "sctp.truncated")
    return out, idata


class _Direction:
    __slots__ = ("held", "held_bytes", "last_us", "oldest_us", "recent", "recent_order")

    def __init__(self) -> None:
        self.held: dict[int, tuple[int, int, bytes]] = {}  # tsn -> (flags, ppid, data)
        self.held_bytes = 0
        self.last_us = 0
        self.oldest_us = 0  # when the oldest held fragment came
        self.recent: set[int] = set()
        self.recent_order: deque[int] = deque()

    def delivered(self, tsn: int) -> None:
        self.recent.add(tsn)
        self.recent_order.append(tsn)
        if len(self.recent_order) > _RECENT_TSNS:
            self.recent.discard(self.recent_order.popleft())

    def give_up(self) -> None:
        self.held.clear()
        self.held_bytes = 0


class SctpReassembler:
    """User messages of SCTP associations, by direction ``(src, sport, dst, dport)``."""

    def __init__(
        self, settings: TcpSettings | None = None, on_weird: Callable[[str], None] = lambda _: None
    ) -> None:
        self.settings = settings or TcpSettings()
        self._weird = on_weird
        self._ways: OrderedDict[tuple, _Direction] = OrderedDict()

    def packet(self, key: tuple, chunks: bytes, now_us: int) -> list[tuple[int, bytes]]:
        """The user messages, ``(ppid, data)``, that this packet's chunks complete.
        Raises `SctpError` for chunks that cannot be read."""
        found, idata = data_chunks(chunks)
        if idata:
            self._weird("sctp.idata_skipped")
        if not found:
            return []
        ways = self._ways
        way = ways.get(key)
        if way is None:
            if len(ways) >= self.settings.max_connections:
                _, old = ways.popitem(last=False)
                if old.held:
                    self._weird("sctp.association_evicted")
            way = ways[key] = _Direction()
        else:
            ways.move_to_end(key)
        way.last_us = now_us
        out = []
        for tsn, _sid, flags, ppid, data in found:
            if tsn in way.recent or tsn in way.held:
                self._weird("sctp.retransmission")
                continue
            if flags & 3 == 3:  # B and E: a whole message in one chunk
                way.delivered(tsn)
                out.append((ppid, data))
                continue
            if not way.held:
                way.oldest_us = now_us
            way.held[tsn] = (flags, ppid, data)
            way.held_bytes += len(data)
            message = self._complete(way, tsn)
            if message is not None:
                out.append(message)
            elif way.held_bytes > self.settings.max_held_bytes:
                way.give_up()
                self._weird("sctp.reassembly_overflow")
        return out

    @staticmethod
    def _complete(way: _Direction, tsn: int) -> tuple[int, bytes] | None:
        """The message that `tsn` completes, if the run from its B to its E is held."""
        held = way.held
        first = tsn
        while not held[first][0] & _FLAG_BEGIN:
            first = (first - 1) & 0xFFFFFFFF
            if first not in held:
                return None
        last = tsn
        while not held[last][0] & _FLAG_END:
            last = (last + 1) & 0xFFFFFFFF
            if last not in held:
                return None
        parts = []
        current = first
        while True:
            _flags, ppid, data = held.pop(current)
            way.held_bytes -= len(data)
            way.delivered(current)
            parts.append(data)
            if current == first:
                first_ppid = ppid
            if current == last:
                break
            current = (current + 1) & 0xFFFFFFFF
        return first_ppid, b"".join(parts)

    def expire(self, now_us: int) -> None:
        """Give up fragments that waited too long; forget directions quiet too long."""
        gap = self.settings.gap_timeout_us
        idle = self.settings.idle_timeout_us
        for key, way in list(self._ways.items()):
            if way.held and now_us - way.oldest_us > gap:
                way.give_up()
                self._weird("sctp.fragments_expired")
            if now_us - way.last_us > idle:
                del self._ways[key]

    def __len__(self) -> int:
        return len(self._ways)
