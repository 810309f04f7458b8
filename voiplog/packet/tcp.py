"""TCP stream reassembly: segments in, each direction's bytes in order out (sans-IO).

Strategy: one `TcpDirection` per (src, sport, dst, dport), created in pairs (a
connection) so that the reader of one side can see the other. Each direction
knows the next sequence number it expects. A segment at that number is delivered
at once, followed by any held segments it makes contiguous; a segment behind it
is a retransmission (only its new bytes, if any, are delivered); a segment ahead
of it is held until the hole fills (at most `max_held_bytes` and `max_held_segments`). Sequence numbers compare modulo 2**32.

A capture may start in the middle of a connection: the first segment seen in a
direction (or its SYN) fixes where that direction starts, and the stream's reader
is told the bytes may begin mid-message. When the hole before held data does not
fill (the capture lost a segment), the reassembler gives up on it after
`TcpSettings.gap_timeout_us`, when held bytes pass `max_held_bytes`, or as soon as
the other side acknowledges bytes beyond the hole (the receiver got them: only the
capture missed them), skips to the held data and reports the gap, so the reader
can resynchronise.

Bounds: at most `max_connections` connections (least recently used evicted,
counted ``tcp.stream_evicted``), idle ones dropped after `idle_timeout_us`
(``tcp.stream_timeout``), held bytes per direction capped. RST drops the
connection; FIN ends its direction, and the connection goes when both have.

`TcpReassembler.segment` returns a direction's new in-order chunks, each with the
capture time of its segment (a message completed by held data is dated by the
segment that completed it, not by the one that filled the hole), and None where
bytes were lost; ``direction.app`` is free for the caller's per-direction
reader state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from voiplog.settings import TcpSettings

__all__ = [
    "TCP_FIN",
    "TCP_RST",
    "TCP_SYN",
    "Chunk",
    "TcpDirection",
    "TcpReassembler",
    "TcpSettings",
]

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04

# (capture time of the segment, its in-order bytes or None for lost bytes)
Chunk = tuple[int, bytes | None]

_MOD = 1 << 32
_HALF = 1 << 31


class TcpDirection:
    """One direction of a followed connection."""

    __slots__ = (
        "app",
        "fin",
        "held",
        "held_bytes",
        "held_since",
        "key",
        "last_us",
        "next_seq",
        "peer",
    )

    def __init__(self, key: tuple) -> None:
        self.key = key  # (src_ip, src_port, dst_ip, dst_port)
        self.peer: TcpDirection | None = None
        self.next_seq: int | None = None  # None until the first segment is seen
        self.held: dict[int, Chunk] = {}  # out-of-order (ts, data) by sequence number
        self.held_bytes = 0
        self.held_since = 0
        self.fin = False
        self.app: object = None  # the caller's reader for this direction
        self.last_us = 0


class TcpReassembler:
    """Orders the segments of followed TCP connections."""

    def __init__(
        self,
        settings: TcpSettings | None = None,
        on_weird: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or TcpSettings()
        self._weird = on_weird if on_weird is not None else _ignore
        # Both directions of every connection, by key; connection order (LRU) is
        # kept on the direction that created it.
        self._directions: dict[tuple, TcpDirection] = {}
        self._connections: OrderedDict[tuple, TcpDirection] = OrderedDict()
        self._holding: dict[tuple, TcpDirection] = {}  # directions with held data
        self._released: list[tuple[TcpDirection, list[Chunk]]] = []

    @property
    def connections(self) -> int:
        return len(self._connections)

    def get(self, key: tuple) -> TcpDirection | None:
        """The followed direction `key` = (src_ip, src_port, dst_ip, dst_port), if any."""
        return self._directions.get(key)

    def follow(self, key: tuple, now_us: int) -> TcpDirection:
        """Start following the connection whose direction is `key`; returns that direction."""
        direction = self._directions.get(key)
        if direction is not None:
            return direction
        while len(self._connections) >= self.settings.max_connections:
            _, oldest = self._connections.popitem(last=False)
            self._forget(oldest)
            self._weird("tcp.stream_evicted")
        direction = TcpDirection(key)
        src, sport, dst, dport = key
        reverse = TcpDirection((dst, dport, src, sport))
        direction.peer, reverse.peer = reverse, direction
        direction.last_us = reverse.last_us = now_us
        self._directions[key] = direction
        self._directions[reverse.key] = reverse
        self._connections[key] = direction
        return direction

    def segment(
        self,
        direction: TcpDirection,
        seq: int,
        flags: int,
        payload: bytes,
        now_us: int,
        ack: int | None = None,
    ) -> list[Chunk]:
        """Feed one segment of a followed direction; its new in-order bytes, in chunks.

        Each chunk is ``(ts_us, data)``: when its segment was captured, and its bytes,
        or None where bytes were lost (the capture joined the stream mid-way, or a
        hole was given up). After the call the connection may have been dropped (RST,
        or FIN both ways): check with `get`.

        `ack`, the segment's acknowledgement number when its ACK flag is set, tells
        what the other side has received: a hole in the other direction that it
        acknowledges was lost by the capture, not the network, and is given up at
        once; the other direction's chunks this releases wait in `take_released`.
        """
        direction.last_us = now_us
        self._touch(direction)
        if flags & TCP_RST:
            self._drop(direction)
            return []
        out: list[Chunk] = []
        if flags & TCP_SYN:
            seq = (seq + 1) % _MOD  # the SYN takes one sequence number
            if direction.next_seq is None:
                direction.next_seq = seq
        expected = direction.next_seq
        if expected is None:
            expected = direction.next_seq = seq
            out.append((now_us, None))  # joined mid-stream
        if payload:
            ahead = (seq - expected) % _MOD
            if ahead >= _HALF:
                # Starts before what was delivered: a retransmission, maybe with new bytes.
                behind = _MOD - ahead
                if behind >= len(payload):
                    self._weird("tcp.retransmission")
                else:
                    out.append((now_us, payload[behind:]))
                    direction.next_seq = (expected + len(payload) - behind) % _MOD
            elif ahead == 0:
                out.append((now_us, payload))
                direction.next_seq = (expected + len(payload)) % _MOD
            else:
                self._hold(direction, seq, payload, now_us)
            if direction.held:
                self._release(direction, out)
                settings = self.settings
                if direction.held and (
                    direction.held_bytes > settings.max_held_bytes
                    or len(direction.held) > settings.max_held_segments
                ):
                    self._skip_gap(direction, out)
        if ack is not None and direction.peer is not None and direction.peer.held:
            self._acknowledged(direction.peer, ack)
        if flags & TCP_FIN:
            direction.fin = True
            peer = direction.peer
            if peer is not None and peer.fin and not direction.held and not peer.held:
                self._drop(direction)
        return out

    def expire(self, now_us: int) -> list[tuple[TcpDirection, list[Chunk]]]:
        """Forget idle connections; give up holes older than the gap timeout.

        Returns the directions whose held data was released by giving up a hole,
        with their chunks (starting with None, the gap).
        """
        settings = self.settings
        idle_before = now_us - settings.idle_timeout_us
        connections = self._connections
        while connections:
            key, oldest = next(iter(connections.items()))
            peer = oldest.peer
            last = max(oldest.last_us, peer.last_us if peer is not None else 0)
            if last > idle_before:
                break
            del connections[key]
            self._forget(oldest)
            self._weird("tcp.stream_timeout")
        released = []
        gap_before = now_us - settings.gap_timeout_us
        for direction in list(self._holding.values()):
            if direction.held_since <= gap_before:
                out: list[Chunk] = []
                self._skip_gap(direction, out)
                released.append((direction, out))
        return released

    def take_released(self) -> list[tuple[TcpDirection, list[Chunk]]]:
        """Chunks of other directions released by acknowledgements, since the last call."""
        released, self._released = self._released, []
        return released

    def flush(self) -> list[tuple[TcpDirection, list[Chunk]]]:
        """End of input: give up every hole and release all held data."""
        released = []
        for direction in list(self._holding.values()):
            out: list[Chunk] = []
            while direction.held:
                self._skip_gap(direction, out)
            released.append((direction, out))
        return released

    # -- internals -------------------------------------------------------------

    def _hold(self, direction: TcpDirection, seq: int, payload: bytes, now_us: int) -> None:
        held = direction.held
        previous = held.get(seq)
        if previous is not None:
            if len(previous[1]) >= len(payload):
                self._weird("tcp.retransmission")
                return
            direction.held_bytes -= len(previous[1])
        if not held:
            direction.held_since = now_us
            self._holding[direction.key] = direction
        held[seq] = (now_us, payload)
        direction.held_bytes += len(payload)

    def _release(self, direction: TcpDirection, out: list[Chunk]) -> None:
        """Deliver held segments made contiguous (or stale) by the bytes delivered."""
        held = direction.held
        start = direction.next_seq
        before = len(held)
        for seq in sorted(held, key=lambda s: _signed(s - start)):
            expected = direction.next_seq
            ahead = _signed(seq - expected)
            if ahead > 0:
                break  # a hole remains before this one
            ts, data = held.pop(seq)
            direction.held_bytes -= len(data)
            if -ahead < len(data):
                out.append((ts, data[-ahead:]))
                direction.next_seq = (seq + len(data)) % _MOD
            else:
                self._weird("tcp.retransmission")
        if held:
            if len(held) < before:
                direction.held_since = direction.last_us  # progress: the wait starts again
        else:
            self._holding.pop(direction.key, None)

    def _acknowledged(self, direction: TcpDirection, ack: int) -> None:
        """The receiver of `direction` acknowledged up to `ack`: give up holes before it."""
        expected = direction.next_seq
        if expected is None or _signed(ack - expected) <= 0:
            return
        out: list[Chunk] = []
        while direction.held:
            expected = direction.next_seq
            first = min(direction.held, key=lambda s: _signed(s - expected))
            if _signed(first - ack) > 0:
                break  # what is missing after the acknowledged bytes may still come
            self._skip_gap(direction, out)
        if out:
            self._released.append((direction, out))

    def _skip_gap(self, direction: TcpDirection, out: list[Chunk]) -> None:
        """Give up the hole before the earliest held segment and deliver from there."""
        expected = direction.next_seq
        direction.next_seq = min(direction.held, key=lambda s: _signed(s - expected))
        self._weird("tcp.gap")
        out.append((direction.held[direction.next_seq][0], None))
        self._release(direction, out)

    def _touch(self, direction: TcpDirection) -> None:
        connections = self._connections
        key = direction.key
        if key not in connections and direction.peer is not None:
            key = direction.peer.key
        if key in connections:
            connections.move_to_end(key)

    def _drop(self, direction: TcpDirection) -> None:
        self._connections.pop(direction.key, None)
        if direction.peer is not None:
            self._connections.pop(direction.peer.key, None)
        self._forget(direction)

    def _forget(self, direction: TcpDirection) -> None:
        for side in (direction, direction.peer):
            if side is not None:
                self._directions.pop(side.key, None)
                self._holding.pop(side.key, None)


def _signed(difference: int) -> int:
    """A sequence-number difference as a signed 32-bit value."""
    difference %= _MOD
    return difference - _MOD if difference >= _HALF else difference


def _ignore(kind: str) -> None:
    return None
