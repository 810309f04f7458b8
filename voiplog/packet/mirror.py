"""Mirror deduplication: the same packet seen twice within a short window counts once.

A sensor fed by two taps (or two SPAN sessions, or ERSPAN from two switches) sees
many packets twice: the copies differ in their outer headers, VLAN tags and the
inner TTL and IP checksum, but carry the same datagram. The caller builds a key
from what stays the same (addresses, ports, transport payload) after decoding;
`MirrorDedup.seen` answers whether that key was seen within the window.

The window is short (milliseconds): a SIP retransmission repeats the payload but
only after 500 ms (T1), and an RTP packet never repeats its sequence number and
timestamp, so the window tells mirror copies from genuine repeats. Only a 64-bit
hash of each key is kept, at most `max_entries` of them (the oldest go first).
"""

from __future__ import annotations

from collections import deque

__all__ = ["MirrorDedup"]


class MirrorDedup:
    """Remembers recent packets by key, for `window_us` of packet time."""

    def __init__(self, window_us: int, max_entries: int = 65536) -> None:
        if window_us <= 0 or max_entries <= 0:
            raise ValueError("mirror dedup needs a positive window and table size")
        self.window_us = window_us
        self.max_entries = max_entries
        self._last: dict[int, int] = {}  # key hash -> packet time last seen
        self._order: deque[tuple[int, int]] = deque()  # (time, key hash), oldest first

    def __len__(self) -> int:
        return len(self._last)

    def seen(self, key: object, ts_us: int) -> bool:
        """True if `key` was seen less than the window before `ts_us` (a mirror copy)."""
        digest = hash(key)
        last = self._last
        order = self._order
        horizon = ts_us - self.window_us
        while order and (order[0][0] < horizon or len(order) > self.max_entries):
            old_ts, old = order.popleft()
            if last.get(old) == old_ts:
                del last[old]
        previous = last.get(digest)
        if previous is not None and previous >= horizon:
            return True
        last[digest] = ts_us
        order.append((ts_us, digest))
        return False
