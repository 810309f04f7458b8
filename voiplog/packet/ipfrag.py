"""IPv4 and IPv6 fragment reassembly (sans-IO, bounded, packet time as the clock).

Strategy: fragments of one datagram share ``(version, src, dst, ident, proto)``.
Each pending datagram keeps its pieces as non-overlapping ``(start, data)`` runs;
when the last fragment has told the total length and the pieces cover it, the
datagram's payload comes back and the caller decodes it with `decode_transport`.

Overlap policy (RFC 5722 for IPv6, and what Linux does for IPv4 since 2018): a
fragment repeating exactly the bytes of an earlier one (a retransmission, or the
same packet mirrored twice) is ignored and counted ``ip.fragment_duplicate``; any
other overlap discards the whole datagram, counted ``ip.fragment_overlap``, because
overlapping fragments are how evasion tricks make two readers see two different
packets. The discarded datagram's key is remembered until its timeout so that its
remaining fragments cannot start a new one.

Bounds: a datagram may not exceed 65535 bytes of payload nor be cut in more than
`FragmentSettings.max_fragments` pieces; at most `max_datagrams` datagrams and
`max_bytes` bytes wait at once (the oldest is evicted first, counted
``ip.fragment_evicted``); a datagram not complete `timeout_us` after its first
fragment is dropped, counted ``ip.fragment_timeout``. Every drop is a named weird,
never an exception.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from voiplog.packet.decode import IPFragment
from voiplog.settings import FragmentSettings

__all__ = ["FragmentReassembler", "FragmentSettings"]

_MAX_PAYLOAD = 65535  # IPv4 total length or IPv6 payload length cannot say more


class _Pending:
    __slots__ = ("discarded", "first_us", "pieces", "size", "total")

    def __init__(self, first_us: int) -> None:
        self.first_us = first_us
        self.pieces: list[tuple[int, bytes]] = []  # non-overlapping (start, data)
        self.size = 0  # bytes held
        self.total: int | None = None  # payload length, once the last fragment is seen
        self.discarded = False


class FragmentReassembler:
    """Collects IP fragments and returns each datagram's payload once complete."""

    def __init__(
        self,
        settings: FragmentSettings | None = None,
        on_weird: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings or FragmentSettings()
        self._weird = on_weird if on_weird is not None else _ignore
        self._pending: OrderedDict[tuple, _Pending] = OrderedDict()  # oldest first
        self._bytes = 0

    @property
    def pending(self) -> int:
        """Datagrams waiting for more fragments (including discarded ones remembered)."""
        return len(self._pending)

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def add(self, fragment: IPFragment, ts_us: int) -> bytes | None:
        """Take one fragment seen at `ts_us`; the whole payload when it completes one."""
        start = fragment.offset
        data = fragment.data
        end = start + len(data)
        if fragment.more and (not data or len(data) & 7):
            # Every fragment but the last carries a multiple of 8 bytes (RFC 791, 8200).
            self._weird("ip.fragment_bad_length")
            return None
        if end > _MAX_PAYLOAD:
            self._weird("ip.fragment_too_big")
            return None
        key = (
            fragment.version,
            fragment.src_ip,
            fragment.dst_ip,
            fragment.ident,
            fragment.proto,
        )
        pending = self._pending.get(key)
        if pending is None:
            self._make_room(len(data))
            pending = self._pending[key] = _Pending(ts_us)
        elif pending.discarded:
            return None
        if not fragment.more:
            if pending.total is not None and pending.total != end:
                return self._discard(key, pending, "ip.fragment_inconsistent")
            pending.total = end
        if pending.total is not None and end > pending.total:
            return self._discard(key, pending, "ip.fragment_inconsistent")
        pieces = pending.pieces
        for other_start, other in pieces:
            other_end = other_start + len(other)
            if other_start < end and start < other_end:
                if other_start == start and other == data:
                    self._weird("ip.fragment_duplicate")
                    return None
                return self._discard(key, pending, "ip.fragment_overlap")
        # Pieces past a newly learnt end would never be covered.
        if (
            pieces
            and pending.total is not None
            and max(s + len(d) for s, d in pieces) > pending.total
        ):
            return self._discard(key, pending, "ip.fragment_inconsistent")
        if len(pieces) >= self.settings.max_fragments:
            return self._discard(key, pending, "ip.fragment_too_many")
        pieces.append((start, data))
        pending.size += len(data)
        self._bytes += len(data)
        if pending.total is None or pending.size != pending.total:
            return None
        # Non-overlapping pieces inside [0, total) whose sizes add up to total cover it.
        del self._pending[key]
        self._bytes -= pending.size
        pieces.sort(key=_start)
        return b"".join(piece for _, piece in pieces)

    def expire(self, now_us: int) -> None:
        """Drop datagrams whose timeout has passed at packet time `now_us`."""
        deadline = now_us - self.settings.timeout_us
        pending = self._pending
        while pending:
            key, oldest = next(iter(pending.items()))
            if oldest.first_us > deadline:
                break
            del pending[key]
            self._bytes -= oldest.size
            if not oldest.discarded:
                self._weird("ip.fragment_timeout")

    def _make_room(self, incoming: int) -> None:
        settings = self.settings
        pending = self._pending
        while pending and (
            len(pending) >= settings.max_datagrams or self._bytes + incoming > settings.max_bytes
        ):
            _, oldest = pending.popitem(last=False)
            self._bytes -= oldest.size
            if not oldest.discarded:
                self._weird("ip.fragment_evicted")

    def _discard(self, key: tuple, pending: _Pending, kind: str) -> None:
        self._weird(kind)
        self._bytes -= pending.size
        pending.pieces = []
        pending.size = 0
        pending.discarded = True
        return None


def _start(piece: tuple[int, bytes]) -> int:
    return piece[0]


def _ignore(kind: str) -> None:
    return None
