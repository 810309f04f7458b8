"""JSON lines: one record per line (a CDR or a registration), keys in contract order,
byte-for-byte repeatable."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from typing import BinaryIO

import orjson

from voiplog.cdr import CallRecord, RegistrationRecord

_FIFO_WAIT_S = 10.0  # for a reader to open a FIFO given as the output
_BUFFER_BYTES = 1 << 16


class SinkError(OSError):
    """Records cannot be written where asked (one line naming the place and the reason)."""


class JsonlSink:
    """Writes records to a file, or to standard output for ``-``.

    A write that fails (a full device, a reader gone) raises `SinkError` once;
    the sink then drops what it could not write, writes nothing more and closes
    quietly, so that the records already made still reach the other sinks.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = "standard output" if path == "-" else path
        self._owned = path != "-"
        # A file is written through a buffer of the sink's own, which it can
        # drop after a failure; standard output through Python's stream.
        self._fd = _open(path) if self._owned else -1
        self._buffer = bytearray()
        self._out: BinaryIO = sys.stdout.buffer
        self.count = 0
        self.error: SinkError | None = None

    def write(self, record: CallRecord | RegistrationRecord) -> None:
        if self.error is not None:
            return
        line = orjson.dumps(record.to_dict()) + b"\n"
        try:
            if self._owned:
                self._buffer += line
                if len(self._buffer) >= _BUFFER_BYTES:
                    self._write_out()
            else:
                self._out.write(line)
                # Records on a pipe are read as they come (tail, jq).
                self._out.flush()
        except OSError as exc:
            self._fail(exc)
        self.count += 1

    def flush(self) -> None:
        """Push buffered records to the file (the daemon does this once a second)."""
        if self.error is not None:
            return
        try:
            if self._owned:
                self._write_out()
            else:
                self._out.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Flush and close; raises `SinkError` when the last records cannot be written."""
        try:
            self.flush()
        finally:
            if self._owned and self._fd >= 0:
                with contextlib.suppress(OSError):  # what it held was reported by the flush
                    os.close(self._fd)
                self._fd = -1

    def _write_out(self) -> None:
        view = memoryview(self._buffer)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        finally:
            view.release()
            del self._buffer[:done]

    def _fail(self, exc: OSError) -> None:
        self.error = SinkError(
            f"{self.where}: cannot write records: {exc.strerror or exc}; "
            f"{self.count:,} records made before"
        )
        self._buffer.clear()
        if not self._owned:
            # What the stream still holds would fail again at exit: it goes nowhere.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self._out.fileno())
                os.close(devnull)
        raise self.error

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(path: str) -> int:
    """The output file's descriptor; a FIFO is given `_FIFO_WAIT_S` for a reader to come."""
    try:
        is_fifo = stat.S_ISFIFO(os.stat(path).st_mode)
    except FileNotFoundError:
        is_fifo = False
    if not is_fifo:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    deadline = time.monotonic() + _FIFO_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() >= deadline:  # ENXIO: no reader
                if exc.errno == errno.ENXIO:
                    raise SinkError(
                        f"{path}: no process opened this FIFO for reading within "
                        f"{_FIFO_WAIT_S:g} s; start the reader first"
                    ) from None
                raise
            time.sleep(0.1)
            continue
        os.set_blocking(fd, True)
        return fd
