"""JSON lines: one record per line (a CDR or a registration), keys in contract order,
byte-for-byte repeatable."""

from __future__ import annotations

import sys
from typing import BinaryIO

import orjson

from voiplog.cdr import CallRecord, RegistrationRecord


class JsonlSink:
    """Writes records to a file, or to standard output for ``-``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._owned = path != "-"
        self._out: BinaryIO = open(path, "wb") if self._owned else sys.stdout.buffer  # noqa: SIM115
        self.count = 0

    def write(self, record: CallRecord | RegistrationRecord) -> None:
        self._out.write(orjson.dumps(record.to_dict()) + b"\n")
        self.count += 1
        if not self._owned:
            # Records on a pipe are read as they come (tail, jq).
            self._out.flush()

    def flush(self) -> None:
        """Push buffered records to the file (the daemon does this once a second)."""
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
        if self._owned:
            self._out.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
