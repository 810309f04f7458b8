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

The records are evidence, so no one else may read or change them: the
directory must belong to the user running voiplog and be writable by no one
else (`open_directory` refuses it otherwise), it is made 0700 and its files
0600, and every file is opened relative to the directory without following a
symbolic link; an entry that is not a regular file is left alone, with a warning.

A full file system (ENOSPC, EDQUOT) loses no record that was taken: the
write is undone to the last whole entry, and records wait in a bounded memory
reserve, in order, while an error is logged (and the free space is watched
ahead of it, with a warning); `tick` writes them out once there is room. A
record the reserve has no room for is counted (`records_lost`) and logged,
never dropped silently, and so are those still in memory at `abandon_reserve`.

A spool belongs to one database: its ``database`` file names the one its
records are for (see `binding`), which the writer checks before draining.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import threading
import time
import weakref
from pathlib import Path

from voiplog.store.spool_files import (
    DIR_FLAGS,
    FULL_ERRNOS,
    SegmentFile,
    frame,
    intact_length,
    iter_entries,
    open_directory,
    open_file,
    whole_entries,
)

log = logging.getLogger("voiplog.store.spool")

FSYNC_POLICIES = ("always", "batch", "never")
_OPEN = ".open"
_READY = ".ready"
_BINDING = "database"
_WARN_FRACTION = 0.8
_WARN_EVERY_S = 30.0
_BUFFER_BYTES = 1 << 16  # entries gathered before a write
_RETRY_EVERY_S = 0.5  # writing the reserve out, while the file system is full
_SPACE_EVERY_S = 5.0  # looking at the space left
_RETRY_CHUNK = 1 << 20


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
        reserve_bytes: int = 64 << 20,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy {fsync!r} is not one of {', '.join(FSYNC_POLICIES)}")
        self.directory = Path(directory)
        self._dir = open_directory(self.directory)
        weakref.finalize(self, os.close, self._dir)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy = fsync
        self.fsync_interval_s = fsync_interval_s
        self._lock = threading.Condition()
        self._file = None
        self._file_name = ""
        self._file_bytes = 0
        self._unsynced_since: float | None = None
        self._last_warning = 0.0
        self._seq = 0
        self._memo_factory = None
        self._memo_max_bytes = 0
        self._memo = None  # of the open segment
        self._memos: dict[Path, object] = {}  # of sealed segments
        self._memo_bytes = 0
        self._ignored: set[str] = set()  # entries named in a warning already
        # Records waiting in memory while the file system is full, oldest first.
        self.reserve_bytes = reserve_bytes
        self._reserve: collections.deque[bytes] = collections.deque()
        self._reserve_size = 0
        self.disk_full_since: float | None = None
        self.records_lost = 0
        self._last_retry = 0.0
        self._last_space = 0.0
        self._last_full_warning = 0.0
        self._recover()
        # Segments left by an earlier run: their records are for the database
        # the spool is bound to, whatever this run is configured with.
        self.inherited = frozenset(self._segments(_READY))
        self._bytes = sum(
            os.stat(p.name, dir_fd=self._dir, follow_symlinks=False).st_size
            for p in self._segments(_READY)
        )

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
            if self._reserve or not self._writable():
                self._keep_in_memory(line)
                return
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
            else:
                if self._unsynced_since is None:
                    self._unsynced_since = time.monotonic()
                if len(self._file.buffer) >= _BUFFER_BYTES:
                    self._write_out()
            if self._bytes > _WARN_FRACTION * self.max_bytes:
                self._warn_full()
            if self._file is not None and self._file_bytes >= self.segment_bytes:
                self._seal()

    def tick(self) -> None:
        """Fsync what the batch policy owes, write out records kept in memory while
        the file system was full, watch the space left; called periodically."""
        with self._lock:
            now = time.monotonic()
            since = self._unsynced_since
            if since is not None and now - since >= self.fsync_interval_s:
                self._sync()
            if self._reserve and now - self._last_retry >= _RETRY_EVERY_S:
                self._last_retry = now
                self._write_reserve()
            if now - self._last_space >= _SPACE_EVERY_S:
                self._last_space = now
                self._watch_space()

    def sync(self) -> bool:
        """Write out and fsync every record taken so far, now rather than on the
        batch schedule; True when all of them are on disk (none waiting in memory
        for room on the file system)."""
        with self._lock:
            if self._file is not None and self._unsynced_since is not None:
                self._sync()
            return not self._reserve

    @property
    def records_in_memory(self) -> int:
        """Records waiting in memory for room on the file system."""
        return len(self._reserve)

    def abandon_reserve(self) -> int:
        """Give up the records still waiting in memory (at exit); counted, logged, returned."""
        with self._lock:
            self._write_reserve()
            left = len(self._reserve)
            if left:
                self.records_lost += left
                log.error(
                    "SPOOL DISK FULL: %d records could not be written to the spool %s before "
                    "the exit and are lost (%d lost in all)",
                    left,
                    self.directory,
                    self.records_lost,
                )
                self._reserve.clear()
                self._reserve_size = 0
            return left

    def seal(self) -> None:
        """Close the open segment so that the drainer can take it."""
        with self._lock:
            if self._file is not None and self._file_bytes:
                self._seal()

    def close(self) -> None:
        """Seal the open segment (records kept in memory stay there: see `tick`)."""
        with self._lock:
            if self._file is not None:
                if self._file_bytes:
                    self._seal()
                else:
                    self._file.close()
                    self._file = None
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._file_name, dir_fd=self._dir)
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

    def read(self, segment: Path) -> bytes:
        """The bytes of a segment, read without following a symbolic link."""
        with open(open_file(self._dir, segment.name, os.O_RDONLY), "rb") as f:
            return f.read()

    def keep_aside(self, name: str, data: bytes) -> Path:
        """Append `data` to ``rejected/<name>`` (0600, in a 0700 directory); its path."""
        with self._lock:
            with contextlib.suppress(FileExistsError):
                os.mkdir("rejected", 0o700, dir_fd=self._dir)
            aside = os.open("rejected", DIR_FLAGS, dir_fd=self._dir)
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                with open(open_file(aside, name, flags), "ab") as f:
                    f.write(data)
            finally:
                os.close(aside)
        return self.directory / "rejected" / name

    def remove(self, segment: Path) -> None:
        """Forget a segment whose records are safely stored."""
        with self._lock:
            memo = self._memos.pop(segment, None)
            if memo is not None:
                self._memo_bytes -= memo.size
            size = os.stat(segment.name, dir_fd=self._dir, follow_symlinks=False).st_size
            os.unlink(segment.name, dir_fd=self._dir)
            os.fsync(self._dir)
            self._bytes -= size
            self._lock.notify_all()

    def binding(self) -> dict | None:
        """The database the records are for: {"dsn": where it was reached, without
        password; "database": its name and "system_identifier": its cluster's,
        once it was reached}; None for a spool never bound."""
        try:
            with open(open_file(self._dir, _BINDING, os.O_RDONLY), "rb") as f:
                found = json.loads(f.read())
        except FileNotFoundError:
            return None
        except ValueError:
            return {}  # damaged: bound to nothing that can be matched
        return found if isinstance(found, dict) else {}

    def bind(self, identity: dict) -> None:
        """Name the database the records are for (atomically: all or the old one)."""
        data = json.dumps(identity, sort_keys=True).encode() + b"\n"
        with self._lock:
            temporary = _BINDING + ".new"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=self._dir)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            fd = open_file(self._dir, temporary, flags)
            try:
                os.write(fd, data)
                os.fsync(fd)
            except OSError as exc:
                if exc.errno not in FULL_ERRNOS:
                    raise
                os.unlink(temporary, dir_fd=self._dir)
                log.warning(
                    "spool %s: no room to record which database it is for (%s); tried again "
                    "at the next connection",
                    self.directory,
                    exc.strerror,
                )
                return
            finally:
                os.close(fd)
            os.rename(temporary, _BINDING, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            os.fsync(self._dir)

    @property
    def depth_bytes(self) -> int:
        return self._bytes

    def pending_records(self) -> int:
        """Records spooled and not yet stored (for reports, not the hot path)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
            total = len(self._reserve)
            if self._file is not None:
                total += len(whole_entries(self._file.buffer))
            for path in self._segments(_READY) + self._segments(_OPEN):
                total += sum(1 for _ in iter_entries(self.read(path)))
            return total

    # -- internals -----------------------------------------------------------

    def _segments(self, suffix: str) -> list[Path]:
        """The segment files with `suffix`, by name; entries that are not regular
        files (a planted symbolic link) are named in a warning and left alone."""
        found = []
        with os.scandir(self._dir) as entries:
            for entry in entries:
                if not (entry.name.startswith("seg-") and entry.name.endswith(suffix)):
                    continue
                if entry.is_file(follow_symlinks=False):
                    found.append(self.directory / entry.name)
                elif entry.name not in self._ignored:
                    self._ignored.add(entry.name)
                    log.warning(
                        "spool %s: %s is not a regular file (a symbolic link?); left alone",
                        self.directory,
                        entry.name,
                    )
        return sorted(found)

    def _open_segment(self) -> None:
        self._seq += 1
        name = f"seg-{time.time_ns():020d}-{self._seq:06d}{_OPEN}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        self._file = SegmentFile(open_file(self._dir, name, flags))
        self._file_name = name
        self._file_bytes = 0
        self._memo = None
        if (
            self._memo_factory is not None
            and self._memo_bytes < self._memo_max_bytes
            and not self._reserve
        ):
            self._memo = self._memo_factory()

    def _writable(self) -> bool:
        """An open segment to append to; False when the file system has no room for one."""
        if self._file is not None:
            return True
        try:
            self._open_segment()
        except OSError as exc:
            if exc.errno not in FULL_ERRNOS:
                raise
            self._disk_full(exc)
            return False
        return True

    def _write_out(self, front: bool = False) -> bool:
        """Write the open segment's buffer; when the file system is full its entries
        go to the memory reserve (at its `front` when they came from there)."""
        try:
            self._file.flush()
        except OSError as exc:
            if exc.errno not in FULL_ERRNOS:
                raise
            buffered = self._file.buffer
            frames = whole_entries(buffered)
            self._file_bytes -= len(buffered)
            self._bytes -= len(buffered)
            buffered.clear()
            if self._memo is not None:  # it holds records now in memory: read the file
                self._memo_bytes -= self._memo.size
                self._memo = None
            if front:
                self._reserve.extendleft(reversed(frames))
                self._reserve_size += sum(map(len, frames))
            else:
                for line in frames:
                    self._keep_in_memory(line, quiet=True)
            self._disk_full(exc)
            return False
        return True

    def _keep_in_memory(self, line: bytes, quiet: bool = False) -> None:
        if self._reserve_size + len(line) > self.reserve_bytes:
            self.records_lost += 1
            now = time.monotonic()
            if now - self._last_full_warning >= _WARN_EVERY_S or self.records_lost == 1:
                self._last_full_warning = now
                log.error(
                    "SPOOL DISK FULL: %s and the memory reserve (%d bytes) are full: records "
                    "are lost (%d so far)",
                    self.directory,
                    self.reserve_bytes,
                    self.records_lost,
                )
            return
        self._reserve.append(line)
        self._reserve_size += len(line)
        if not quiet and self.disk_full_since is None:
            self.disk_full_since = time.monotonic()

    def _disk_full(self, exc: OSError) -> None:
        now = time.monotonic()
        if self.disk_full_since is None:
            self.disk_full_since = now
        if now - self._last_full_warning >= _WARN_EVERY_S:
            self._last_full_warning = now
            log.error(
                "SPOOL DISK FULL: %s: %s; records wait in memory (%d now, up to %d bytes) "
                "until there is room",
                self.directory,
                exc.strerror,
                len(self._reserve),
                self.reserve_bytes,
            )

    def _write_reserve(self) -> None:
        """Move records from memory to the spool, oldest first, while there is room."""
        while self._reserve:
            if not self._writable():
                return
            size = 0
            while self._reserve and size < _RETRY_CHUNK:
                line = self._reserve.popleft()
                self._reserve_size -= len(line)
                self._file.write(line)
                size += len(line)
            self._file_bytes += size
            self._bytes += size
            if not self._write_out(front=True):
                return
            if self._unsynced_since is None:
                self._unsynced_since = time.monotonic()
            if self._file_bytes >= self.segment_bytes:
                self._seal()
        if self.disk_full_since is not None:
            log.warning(
                "spool %s: room again after %.1f s; the records kept in memory are written "
                "(%d lost in all)",
                self.directory,
                time.monotonic() - self.disk_full_since,
                self.records_lost,
            )
            self.disk_full_since = None
            self._lock.notify_all()

    def _watch_space(self) -> None:
        try:
            info = os.fstatvfs(self._dir)
        except OSError:
            return
        free = info.f_bavail * info.f_frsize
        if free < 2 * self.segment_bytes and self.disk_full_since is None:
            log.warning(
                "spool %s: %d bytes left on its file system; when it is full, records wait "
                "in memory (up to %d bytes)",
                self.directory,
                free,
                self.reserve_bytes,
            )

    def _sync(self) -> None:
        # Written out in any case; fsynced unless the policy leaves that to the kernel.
        if self._file is not None and self._write_out() and self.policy != "never":
            os.fsync(self._file.fileno())
        self._unsynced_since = None

    def _seal(self) -> None:
        self._write_out()
        self._unsynced_since = None
        if not self._file.written:  # all of it went to memory: nothing to seal
            self._file.close()
            self._file = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._file_name, dir_fd=self._dir)
            self._file_bytes = 0
            if self._memo is not None:
                self._memo_bytes -= self._memo.size
                self._memo = None
            return
        if self.policy != "never":
            os.fsync(self._file.fileno())
        self._file.close()
        ready = self._file_name[: -len(_OPEN)] + _READY
        os.rename(self._file_name, ready, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        if self.policy != "never":
            os.fsync(self._dir)
        if self._memo is not None:
            self._memos[self.directory / ready] = self._memo
            self._memo = None
        self._file = None
        self._file_bytes = 0
        self._lock.notify_all()

    def _recover(self) -> None:
        for path in self._segments(_READY):
            os.close(open_file(self._dir, path.name, os.O_RDONLY))  # made 0600 if it was not
        for path in self._segments(_OPEN):
            with open(open_file(self._dir, path.name, os.O_RDWR), "r+b") as f:
                data = f.read()
                cut = intact_length(data)
                if cut < len(data):
                    log.warning(
                        "spool %s: dropping %d bytes from byte %d on, an entry cut short or "
                        "damaged (never acknowledged)",
                        path,
                        len(data) - cut,
                        cut,
                    )
                    f.truncate(cut)
                    os.fsync(f.fileno())
            if cut:
                ready = path.name[: -len(_OPEN)] + _READY
                os.rename(path.name, ready, src_dir_fd=self._dir, dst_dir_fd=self._dir)
            else:
                os.unlink(path.name, dir_fd=self._dir)
        os.fsync(self._dir)

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
