"""The sinks a command writes to: JSON lines, the store writer, or both."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack

from voiplog.sinks.jsonl import JsonlSink, SinkError

log = logging.getLogger("voiplog.store")


class RecordSinks:
    """The sinks a command writes to. `write` is what the pipeline emits into;
    `flush` and `metrics` serve the daemon's once-a-second housekeeping; `close`
    runs what each sink registered with `on_close`, the last registered first."""

    def __init__(self) -> None:
        self.jsonl: JsonlSink | None = None
        self.jsonl_path: str | None = None
        self.writer = None  # voiplog.store.writer.StoreWriter
        self.jsonl_reported = False  # a failure of the JSON lines said already
        self.store_where: str | None = None
        self._closing = ExitStack()

    def on_close(self, close: Callable[[], None]) -> None:
        """Run `close` when the sinks close (each runs even if a later one raised)."""
        self._closing.callback(close)

    def close(self) -> None:
        self._closing.close()

    def destinations(self) -> list[str]:
        """Where the records went, in words, with the counts (once the sinks are closed)."""
        lines = []
        if self.writer is not None:
            writer = self.writer
            line = f"{writer.records_stored:,} records stored in {self.store_where}"
            left = writer.records_put - writer.records_stored
            if left > 0:
                line += f", {left:,} left in the spool"
            if writer.records_rejected:
                line += f", {writer.records_rejected:,} refused"
            if writer.records_conflicting:
                line += (
                    f", {writer.records_conflicting:,} arrived with other content than the "
                    "stored record of their key (kept in record_conflict)"
                )
            lines.append(line)
        if self.jsonl_path is not None:
            target = "standard output" if self.jsonl_path == "-" else self.jsonl_path
            lines.append(f"records as JSON lines on {target}")
        return lines

    def write(self, record) -> None:
        if self.writer is not None:
            self.writer.put(record)
        if self.jsonl is not None:
            try:
                self.jsonl.write(record)
            except SinkError as exc:
                if self.writer is None:
                    self.jsonl_reported = True  # the caller says it, and stops
                    raise
                # The records are evidence: the store goes on taking them.
                log.error("%s; the records go on into the store", exc)

    def flush(self) -> bool:
        """Hand every record written so far to the operating system (the spool's
        are fsynced too); True when all of them are there, so that they survive
        the process being killed. Raises OSError when a sink cannot."""
        done = True
        if self.writer is not None:
            done = self.writer.spool.sync()
        if self.jsonl is not None:
            self.jsonl.flush()
            if self.writer is None and self.jsonl.error is not None:
                done = False
        return done

    def metrics(self) -> dict[str, float]:
        if self.writer is None:
            return {"spool_depth": 0, "store_latency_s": 0.0, "record_conflicts": 0}
        spool = self.writer.spool
        return {
            "spool_depth": self.writer.records_put - self.writer.records_stored,
            "spool_in_memory": spool.records_in_memory,
            "spool_disk_full": 1 if spool.disk_full_since is not None else 0,
            "spool_records_lost": spool.records_lost,
            "store_latency_s": self.writer.last_batch_s,
            "record_conflicts": self.writer.records_conflicting,
        }
