"""The durable local spool between the pipeline and Postgres.

Each record is appended to the open segment file as one entry (its length, a
CRC-32 and the record's bytes) and counts as taken once that file is fsynced
(per the fsync policy). Full segments are
sealed (fsynced, renamed ``.ready``) and drained into Postgres oldest first; a
segment is deleted only after the transaction holding its records committed.
With Postgres down or slow, segments pile up on disk up to a configured size:
a loud warning near the bound, and at the bound `append` waits for room
rather than drop anything. After a crash, the open segment is sealed on the
next start; an entry cut short or damaged at its end (never fsynced, so never
taken) is dropped with a warning naming the file and byte offset.

A memo may ride along with each segment (`keep_memos`): an object the owner
fills from each record as it is appended (under the spool's lock, so that a
sealed segment's memo holds exactly its records) and reads when draining the
segment, sparing the drainer a pass over the file. Memos live in memory only,
up to a bound: a segment recovered after a restart, or written while the bound
was reached, has none and is read from its file.

Policies: ``always`` fsyncs every record before `append` returns; ``batch``
(default) fsyncs at the latest `fsync_interval_s` after a record was appended,
grouping records the way databases group commits; ``never`` leaves it to the
kernel (tests and benchmarks).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("voiplog.store.spool")

FSYNC_POLICIES = ("always", "batch", "never")
_OPEN = ".open"
_READY = ".ready"
_WARN_FRACTION = 0.8
_WARN_EVERY_S = 30.0
_ENTRY = struct.Struct(">II")  # length, CRC-32 of the record bytes


class SpoolFullError(Exception):
    """The spool stayed full for longer than the caller was willing to wait."""


class Spool:
    """Append-only segment files in one directory; safe for one writer and one drainer thread."""

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 8 << 20,
        fsync: str = "batch",
        fsync_interval_s: float = 0.2,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy {fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy = fsync
        self.fsync_interval_s = fsync_interval_s
        self._lock = threading.Condition()
        self._file = None
        self._file_bytes = 0
        self._unsynced_since: float | None = None
        self._last_warning = 0.0
        self._seq = 0
        self._memo_factory = None
        self._memo_max_bytes = 0
        self._memo = None  # of the open segment
        self._memos: dict[Path, object] = {}  # of sealed segments
        self._memo_bytes = 0
        self._recover()
        self._bytes = sum(p.stat().st_size for p in self._segments(_READY))

    # -- writer side ---------------------------------------------------------

    def keep_memos(self, factory, max_bytes: int) -> None:
        """Keep a memo per segment from now on: `factory()` makes one, `memo.add(record)`
        is called with each record appended and returns the bytes it kept."""
        with self._lock:
            self._memo_factory = factory
            self._memo_max_bytes = max_bytes

    def append(self, record: bytes, timeout_s: float | None = None) -> None:
        """Append one record; waits while the spool is full."""
        line = frame(record)
        with self._lock:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._bytes + len(line) > self.max_bytes:
                self._warn_full()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise SpoolFullError(
                        f"spool {self.directory} is full ({self._bytes} of {self.max_bytes} bytes)"
                    )
                self._lock.wait(timeout=5.0 if remaining is None else min(remaining, 5.0))
            if self._file is None:
                self._open_segment()
            self._file.write(line)
            if self._memo is not None:
                self._memo_bytes += self._memo.add(record)
                if self._memo_bytes > self._memo_max_bytes:
                    self._memo_bytes -= self._memo.size
                    self._memo = None  # this segment is read from its file
            self._file_bytes += len(line)
            self._bytes += len(line)
            if self.policy == "always":
                self._sync()
            elif self._unsynced_since is None:
                self._unsynced_since = time.monotonic()
            if self._bytes > _WARN_FRACTION * self.max_bytes:
                self._warn_full()
            if self._file_bytes >= self.segment_bytes:
                self._seal()

    def tick(self) -> None:
        """Fsync what the batch policy owes; called periodically by the drainer."""
        with self._lock:
            since = self._unsynced_since
            if since is not None and time.monotonic() - since >= self.fsync_interval_s:
                self._sync()

    def seal(self) -> None:
        """Close the open segment so that the drainer can take it."""
        with self._lock:
            if self._file is not None and self._file_bytes:
                self._seal()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                if self._file_bytes:
                    self._seal()
                else:
                    path = Path(self._file.name)
                    self._file.close()
                    self._file = None
                    path.unlink(missing_ok=True)
                    self._memo = None

    # -- drainer side --------------------------------------------------------

    def ready(self) -> list[Path]:
        """Sealed segments, oldest first."""
        with self._lock:
            return self._segments(_READY)

    def memo(self, segment: Path):
        """The memo of a sealed segment, or None (then read its file)."""
        with self._lock:
            return self._memos.get(segment)

    def remove(self, segment: Path) -> None:
        """Forget a segment whose records are safely stored."""
        with self._lock:
            memo = self._memos.pop(segment, None)
            if memo is not None:
                self._memo_bytes -= memo.size
            size = segment.stat().st_size
            segment.unlink()
            _fsync_dir(self.directory)
            self._bytes -= size
            self._lock.notify_all()

    @property
    def depth_bytes(self) -> int:
        return self._bytes

    def pending_records(self) -> int:
        """Records spooled and not yet stored (for reports, not the hot path)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
            total = 0
            for path in self._segments(_READY) + self._segments(_OPEN):
                total += sum(1 for _ in iter_entries(path.read_bytes()))
            return total

    # -- internals -----------------------------------------------------------

    def _segments(self, suffix: str) -> list[Path]:
        return sorted(self.directory.glob(f"seg-*{suffix}"))

    def _open_segment(self) -> None:
        self._seq += 1
        path = self.directory / f"seg-{time.time_ns():020d}-{self._seq:06d}{_OPEN}"
        self._file = open(path, "ab", buffering=1 << 16)  # noqa: SIM115
        self._file_bytes = 0
        self._memo = None
        if self._memo_factory is not None and self._memo_bytes < self._memo_max_bytes:
            self._memo = self._memo_factory()

    def _sync(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._unsynced_since = None

    def _seal(self) -> None:
        self._file.flush()
        if self.policy != "never":
            os.fsync(self._file.fileno())
        self._unsynced_since = None
        self._file.close()
        path = Path(self._file.name)
        path.rename(path.with_suffix(_READY))
        if self.policy != "never":
            _fsync_dir(self.directory)
        if self._memo is not None:
            self._memos[path.with_suffix(_READY)] = self._memo
            self._memo = None
        self._file = None
        self._file_bytes = 0
        self._lock.notify_all()

    def _recover(self) -> None:
        for path in self._segments(_OPEN):
            data = path.read_bytes()
            cut = _intact_length(data)
            if cut < len(data):
                log.warning(
                    "spool %s: dropping %d bytes from byte %d on, an entry cut short or damaged "
                    "(never acknowledged)",
                    path,
                    len(data) - cut,
                    cut,
                )
                with open(path, "r+b") as f:
                    f.truncate(cut)
                    os.fsync(f.fileno())
            if cut:
                path.rename(path.with_suffix(_READY))
            else:
                path.unlink()
        _fsync_dir(self.directory)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            log.error(
                "SPOOL NEARLY FULL: %s holds %d of %d bytes (%.0f%%): records are not reaching "
                "the database; at 100%% capture waits for the store",
                self.directory,
                self._bytes,
                self.max_bytes,
                100.0 * self._bytes / self.max_bytes,
            )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def frame(record: bytes) -> bytes:
    """A record as a spool entry: length, CRC-32, bytes."""
    return _ENTRY.pack(len(record), zlib.crc32(record)) + record


def iter_entries(data: bytes) -> Iterator[bytes]:
    """The records of a segment's bytes, up to the first entry cut short or damaged."""
    offset, end = 0, len(data)
    while offset + _ENTRY.size <= end:
        length, crc = _ENTRY.unpack_from(data, offset)
        start = offset + _ENTRY.size
        record = data[start : start + length]
        if len(record) < length or zlib.crc32(record) != crc:
            return
        yield record
        offset = start + length


def _intact_length(data: bytes) -> int:
    offset = 0
    for record in iter_entries(data):
        offset += _ENTRY.size + len(record)
    return offset
