"""Where `replay` and `run` send their records: JSON lines, the store, or both."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import click

from voiplog.sinks import JsonlSink
from voiplog.sinks.jsonl import SinkError

Emit = Callable[[Any], None]
log = logging.getLogger("voiplog.store")


class RecordSinks:
    """The sinks a command writes to. `write` is what the pipeline emits into;
    `flush` and `metrics` serve the daemon's once-a-second housekeeping."""

    def __init__(self) -> None:
        self.jsonl: JsonlSink | None = None
        self.jsonl_path: str | None = None
        self.writer = None  # voiplog.store.writer.StoreWriter
        self.jsonl_reported = False  # a failure of the JSON lines said already
        self.store_where: str | None = None

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


def open_record_sinks(
    stack: ExitStack,
    store: str,
    jsonl_path: str | None,
    config_path: str | None = None,
    *,
    drain_timeout_s: float | None = None,
    spooled_is_failure: bool = True,
) -> RecordSinks:
    """Open the sinks chosen on the command line inside `stack`.

    `store` is "db" (the retention store, through the durable spool) or "none".
    With "none" and no --jsonl, records go to standard output as JSON lines.
    `drain_timeout_s` bounds the time spent storing the spool at exit (default:
    store.drain_timeout_s); what is left is stored at the next start, and makes
    the command exit 1 when `spooled_is_failure` (a replay), a warning only
    otherwise (a daemon stopping while the database is away).
    Exits 2 when a sink cannot be opened. The pipeline emits into `RecordSinks.write`.
    """
    sinks = RecordSinks()
    if store == "db":
        sinks.writer, sinks.store_where = _open_store_writer(
            stack, config_path, drain_timeout_s, spooled_is_failure
        )
    elif jsonl_path is None:
        jsonl_path = "-"
    if jsonl_path is not None:
        try:
            sinks.jsonl = JsonlSink(jsonl_path)
            sinks.jsonl_path = jsonl_path
        except SinkError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None
        except OSError as exc:
            click.echo(f"voiplog: {jsonl_path}: cannot write: {exc.strerror}", err=True)
            raise SystemExit(2) from None
        stack.callback(_close_jsonl, sinks)
    return sinks


def _close_jsonl(sinks: RecordSinks) -> None:
    """Close the JSON lines; records that could not be written there are a one-line
    error and exit 1 (the other sinks close all the same: the records stay in the store)."""
    with contextlib.suppress(SinkError):
        sinks.jsonl.close()
    if sinks.jsonl.error is not None:
        if not sinks.jsonl_reported:
            click.echo(f"voiplog: {sinks.jsonl.error}", err=True)
        raise SystemExit(1)


def _seal_signer(access):
    """The POP's signing key for day seals, when configured: the export's, from
    VOIPLOG_SIGNING_KEY and VOIPLOG_SIGNING_CERT, else the config's [access]
    signing_key and signing_cert."""
    import os
    from pathlib import Path

    key, cert = os.environ.get("VOIPLOG_SIGNING_KEY"), os.environ.get("VOIPLOG_SIGNING_CERT")
    where = "VOIPLOG_SIGNING_KEY, VOIPLOG_SIGNING_CERT"
    if not key or not cert:
        key, cert = access.signing_key, access.signing_cert
        where = "[access] signing_key, signing_cert"
    if not key or not cert:
        return None
    from voiplog.export import signing

    try:
        return signing.load_signer(Path(key), Path(cert))
    except signing.SigningError as exc:
        click.echo(f"voiplog: {exc} ({where})", err=True)
        raise SystemExit(2) from None


def _open_store_writer(
    stack: ExitStack,
    config_path: str | None,
    drain_timeout_s: float | None,
    spooled_is_failure: bool,
):
    from voiplog.cli._store import locked_spool_dir, open_store
    from voiplog.store.spool import Spool
    from voiplog.store.writer import StoreWriter

    handle = stack.enter_context(open_store(config_path, spool_if_down=True))
    cfg = handle.config.store
    directory = stack.enter_context(locked_spool_dir(handle.config))
    spool = Spool(
        directory,
        max_bytes=cfg.spool_max_bytes,
        segment_bytes=cfg.spool_segment_bytes,
        fsync=cfg.fsync,
        fsync_interval_s=cfg.fsync_interval_ms / 1000,
        reserve_bytes=cfg.spool_reserve_bytes,
    )
    writer = StoreWriter(
        handle.dsn,
        spool,
        pop=handle.config.pop,
        sensor=handle.config.sensor,
        partitions_ahead_days=cfg.partitions_ahead_days,
        accept_past_days=cfg.accept_past_days,
        signer=_seal_signer(handle.config.access),
        drainers=cfg.drainers,
        memo_bytes=cfg.spool_memo_bytes,
    ).start()
    timeout = cfg.drain_timeout_s if drain_timeout_s is None else drain_timeout_s

    def close() -> None:
        left = writer.close(drain_timeout_s=timeout)
        if left and not spooled_is_failure:
            log.warning(
                "%d records stored, %d stay in the spool %s for the next start",
                writer.records_stored,
                left,
                directory,
            )
        elif left:
            click.echo(
                f"voiplog: {writer.records_stored} records stored, {left} kept in the spool "
                f"{directory}: the database did not take them within {timeout:g} s; they are "
                "stored at the next start or with `voiplog db drain`",
                err=True,
            )
            raise SystemExit(1)
        if writer.spool.records_lost:
            click.echo(
                f"voiplog: {writer.spool.records_lost} records were lost: the file system of the "
                f"spool {directory} was full (see the log)",
                err=True,
            )
            raise SystemExit(1)
        if writer.records_rejected:
            click.echo(
                f"voiplog: {writer.records_rejected} records could not be stored and were kept "
                f"in {directory / 'rejected'} (see the log for the reasons)",
                err=True,
            )
            raise SystemExit(1)

    stack.callback(close)
    return writer, handle.where
