"""Copies: the same packet seen twice within a short window counts once (`MirrorDedup`),
and the same signalling message from several sources counts once (`SourceCopies`).

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

`SourceCopies` is for a POP that gets the same signalling by two ways: it
captures SIP and also receives it as HEP from a proxy, or receives HEP from
both proxies of a hop. Each message then arrives once per source, at times up
to the sender's HEP delay apart, and a second copy would read as a
retransmission. Per message (addresses, ports and bytes) it counts how often
each source gave it and how often it was passed on: a source's n-th copy is
passed on only when no source's n-th copy was before it. A genuine
retransmission, which every source sees again, is passed on again; which
source is first does not matter. Remembered for between one and two
`window_us` of packet time (seconds: a HEP sender may lag), bounded the same
way as `MirrorDedup`; a copy later than that is passed on. One source giving
the same bytes again less than `echo_us` (10 ms) after they were passed on,
whatever their addresses, gives a mirror's copy (a port mirrored twice, a
packet seen on both sides of a NAT), not a retransmission: over UDP those come
T1 (500 ms) or more apart, and a proxy's or an SBC's relayed copy differs in
its Via.
"""

from __future__ import annotations

from voiplog._extensions import compiled

__all__ = ["MirrorDedup", "SourceCopies", "SourceCopiesInUse"]


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


class SourceCopies:
    """Passes on each message once per repetition, whichever sources gave it."""

    __slots__ = ("_current", "_previous", "_rotate_at", "echo_us", "max_entries", "window_us")

    def __init__(self, window_us: int, max_entries: int = 100_000, echo_us: int = 10_000) -> None:
        if window_us <= 0 or max_entries <= 0 or echo_us < 0:
            raise ValueError("source copies need a positive window and table size")
        self.window_us = window_us
        self.max_entries = max_entries
        self.echo_us = echo_us
        # Keyed by 64-bit hashes, ints that the collector never walks: the message's
        # -> times passed on; that of (message hash, source) -> times that source
        # gave it; that of ("body", bytes hash) -> when those bytes were last passed
        # on. Two keys of different kinds are equal as rarely as two messages' hashes.
        self._current: dict[int, int] = {}
        self._previous: dict[int, int] = {}
        self._rotate_at: int | None = None

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)

    def copy(self, key: object, body: bytes, source: object, ts_us: int) -> str | None:
        """Whether this message (`key`: where it went and its bytes, `body`) from
        `source` is a copy of one already passed on: "source" when another source's
        copy was, "echo" when the same bytes were passed on less than `echo_us`
        before, whatever their addresses (a mirror's copy, or the packet seen on both
        sides of a NAT, not a retransmission); None when it is to be passed on."""
        current = self._current
        rotate_at = self._rotate_at
        if rotate_at is None or ts_us >= rotate_at or len(current) >= self.max_entries:
            if rotate_at is not None and ts_us >= rotate_at + self.window_us:
                current = {}  # a pause longer than the window: forget everything
            self._previous = current
            current = self._current = {}
            self._rotate_at = ts_us + self.window_us
        previous = self._previous
        message = hash(key)
        given = hash((message, source))
        times = current.get(given) or previous.get(given, 0)
        passed = current.get(message) or previous.get(message, 0)
        if times < passed:
            current[given] = times + 1
            return "source"
        seen = hash(("body", hash(body)))
        last_body_us = current.get(seen)
        if last_body_us is None:
            last_body_us = previous.get(seen)
        if last_body_us is not None and ts_us - last_body_us < self.echo_us:
            return "echo"
        current[given] = times + 1
        current[message] = passed + 1
        current[seen] = ts_us
        return None


# `SourceCopies` compiled (`_cmirror.pyx`) when built, else the class above, its reference.
_cmirror = compiled("voiplog.packet._cmirror")
SourceCopiesInUse: type[SourceCopies] = (
    _cmirror.SourceCopies if _cmirror is not None else SourceCopies  # type: ignore[assignment]
)
