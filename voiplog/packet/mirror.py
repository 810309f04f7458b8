"""Mirror deduplication: the same packet seen twice within a short window counts once.

A sensor fed by two taps (or two SPAN sessions, or ERSPAN from two switches) sees
many packets twice: the copies differ in their outer headers, VLAN tags and the
inner TTL and IP checksum, but carry the same datagram. The caller builds a key
from what stays the same (addresses, ports, transport payload) after decoding;
`MirrorDedup.seen` answers whether that key was seen within the window.

The window is short (milliseconds): a SIP retransmission repeats the payload but
only after 500 ms (T1), and an RTP packet never repeats its sequence number and
timestamp, so the window tells mirror copies from genuine repeats.

Strategy: two generations of 64-bit key hashes, the current one and the one
before; the current generation becomes the previous one every `window_us` of
packet time (or when it holds `max_entries`). A copy less than `window_us` after
its original is always caught, one up to twice that may be; nothing older is
remembered. Two set lookups per packet, and memory bounded by ``2 * max_entries``.
"""

from __future__ import annotations

__all__ = ["MirrorDedup"]


class MirrorDedup:
    """Remembers recent packets by key, for between one and two `window_us` of packet time."""

    __slots__ = ("_current", "_previous", "_rotate_at", "max_entries", "window_us")

    def __init__(self, window_us: int, max_entries: int = 65536) -> None:
        if window_us <= 0 or max_entries <= 0:
            raise ValueError("mirror dedup needs a positive window and table size")
        self.window_us = window_us
        self.max_entries = max_entries
        self._current: set[int] = set()
        self._previous: set[int] = set()
        self._rotate_at: int | None = None

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def seen(self, key: object, ts_us: int) -> bool:
        """True if `key` was seen recently (see the module docstring): a mirror copy."""
        current = self._current
        rotate_at = self._rotate_at
        if rotate_at is None or ts_us >= rotate_at or len(current) >= self.max_entries:
            if rotate_at is not None and ts_us >= rotate_at + self.window_us:
                current = set()  # a pause longer than the window: forget everything
            self._previous = current
            current = self._current = set()
            self._rotate_at = ts_us + self.window_us
        digest = hash(key)
        if digest in current or digest in self._previous:
            return True
        current.add(digest)
        return False
