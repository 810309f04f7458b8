"""The spool's files: its directory and segment files opened so that no one else can
reach the records, and the entries (length, CRC-32, record bytes) segments hold."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
import struct
import zlib
from collections.abc import Iterator

ENTRY = struct.Struct(">II")  # length, CRC-32 of the record bytes
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class SegmentFile:
    """The open segment: entries gathered in a buffer, written with os.write.

    A write the file system refuses is undone to the last whole entry on disk,
    and the buffer kept, so that the caller decides where its entries go.
    """

    __slots__ = ("buffer", "fd", "written")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.buffer += data

    def flush(self) -> None:
        if not self.buffer:
            return
        done = 0
        with memoryview(self.buffer) as view:
            try:
                while done < len(view):
                    done += os.write(self.fd, view[done:])
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.written)
                raise
        self.written += done
        self.buffer.clear()

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        os.close(self.fd)


def whole_entries(data) -> list[bytes]:
    """The whole entries of `data` (a buffer of entries), each as its bytes."""
    out, offset = [], 0
    while offset + ENTRY.size <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + ENTRY.size + length
        out.append(bytes(data[offset:end]))
        offset = end
    return out


class SpoolDirError(Exception):
    """The spool directory cannot be trusted or used (the message says why, in one line)."""


_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def open_directory(path: str | os.PathLike) -> int:
    """A spool directory opened for use: made 0700 when missing, never through a
    symbolic link, owned by this user and writable by no one else.

    Returns its file descriptor; raises `SpoolDirError` naming the directory and
    what is wrong with it. A directory that others may read is made 0700.
    """
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise SpoolDirError(f"spool {path}: cannot make the directory: {exc.strerror}") from None
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a symbolic link" if os.path.islink(path) else "not a directory"
            raise SpoolDirError(
                f"spool {path} is {what}; give store.spool_dir a real directory"
            ) from None
        raise SpoolDirError(f"spool {path}: cannot open the directory: {exc.strerror}") from None
    info = os.fstat(fd)
    me = os.geteuid()
    problem = None
    if info.st_uid != me:
        problem = (
            f"belongs to {_owner(info.st_uid)}, not to {_owner(me)} who runs voiplog; "
            "the records must be where no one else can reach them: chown it or give "
            "store.spool_dir a directory of this user"
        )
    elif info.st_mode & 0o022:
        problem = (
            f"is writable by {'others' if info.st_mode & 0o002 else 'its group'} "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 700 it"
        )
    if problem is not None:
        os.close(fd)
        raise SpoolDirError(f"spool {path} {problem}")
    try:
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o700)  # ours: only its reading by others is taken away
        # Refused only when nothing can be written at all (read-only, no right);
        # a full file system is lived with (see the module's docstring).
        probe = os.open(
            ".probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _FILE_FLAGS, 0o600, dir_fd=fd
        )
        os.close(probe)
        os.unlink(".probe", dir_fd=fd)
    except OSError as exc:
        if exc.errno not in FULL_ERRNOS:
            os.close(fd)
            raise SpoolDirError(f"spool {path}: cannot write in it: {exc.strerror}") from None
    return fd


def open_file(directory_fd: int, name: str, flags: int, mode: int = 0o600) -> int:
    """A regular file in a spool directory, opened without following a symbolic link.

    Raises OSError (ELOOP for a symbolic link, EINVAL for anything else that is
    not a regular file) naming the file.
    """
    try:
        fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=directory_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, not a file", name) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        os.set_blocking(fd, True)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # written by an older voiplog: only its owner reads it
    except BaseException:
        os.close(fd)
        raise
    return fd


def frame(record: bytes) -> bytes:
    """A record as a spool entry: length, CRC-32, bytes."""
    return ENTRY.pack(len(record), zlib.crc32(record)) + record


def iter_entries(data: bytes) -> Iterator[bytes]:
    """The records of a segment's bytes, up to the first entry cut short or damaged."""
    offset, end = 0, len(data)
    while offset + ENTRY.size <= end:
        length, crc = ENTRY.unpack_from(data, offset)
        start = offset + ENTRY.size
        record = data[start : start + length]
        if len(record) < length or zlib.crc32(record) != crc:
            return
        yield record
        offset = start + length


def intact_length(data: bytes) -> int:
    offset = 0
    for record in iter_entries(data):
        offset += ENTRY.size + len(record)
    return offset
