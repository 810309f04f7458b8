"""Where call-detail records go."""

from __future__ import annotations

from typing import Protocol

from voiplog.sinks.jsonl import JsonlSink
from voiplog.sinks.records import RecordSinks


class RecordSink(Protocol):
    """What the pipeline's records are written into, and what the daemon asks of it
    once a second: `RecordSinks` (JSON lines, the store, or both), opened by
    `voiplog.wiring.sinks`."""

    def write(self, record) -> None:
        """Take one record (a `CallRecord` or a `RegistrationRecord`)."""
        ...

    def flush(self) -> bool:
        """Hand every record taken so far to the operating system; True when all
        of them are there (they survive the process being killed). Raises OSError."""
        ...

    def metrics(self) -> dict[str, float]:
        """The sink's gauges and counters for the daemon's metrics and status line."""
        ...

    def close(self) -> None:
        """Keep what was taken (the store drains its spool, within its timeout) and
        let go; raises when records were not all kept where asked. Once only."""
        ...


__all__ = ["JsonlSink", "RecordSink", "RecordSinks"]
