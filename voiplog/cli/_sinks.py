"""Where `replay` and `run` send their records: JSON lines, the store, or both."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import click

from voiplog.sinks import JsonlSink

Emit = Callable[[Any], None]
log = logging.getLogger("voiplog.store")


def open_record_sinks(
    stack: ExitStack, store: str, jsonl_path: str | None, config_path: str | None = None
) -> Emit:
    """Open the sinks chosen on the command line inside `stack`; return `emit(record)`.

    `store` is "db" (the retention store, through the durable spool) or "none".
    With "none" and no --jsonl, records go to standard output as JSON lines.
    Exits 2 when a sink cannot be opened.
    """
    emitters: list[Emit] = []
    if store == "db":
        emitters.append(_open_store_writer(stack, config_path))
    elif jsonl_path is None:
        jsonl_path = "-"
    if jsonl_path is not None:
        try:
            sink = stack.enter_context(JsonlSink(jsonl_path))
        except OSError as exc:
            click.echo(f"voiplog: {jsonl_path}: cannot write: {exc.strerror}", err=True)
            raise SystemExit(2) from None
        emitters.append(sink.write)
    if len(emitters) == 1:
        return emitters[0]

    def emit(record) -> None:
        for write in emitters:
            write(record)

    return emit


def _open_store_writer(stack: ExitStack, config_path: str | None) -> Emit:
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
    )
    writer = StoreWriter(
        handle.dsn,
        spool,
        pop=handle.config.pop,
        sensor=handle.config.sensor,
        partitions_ahead_days=cfg.partitions_ahead_days,
        accept_past_days=cfg.accept_past_days,
        drainers=cfg.drainers,
    ).start()

    def close() -> None:
        left = writer.close(drain_timeout_s=cfg.drain_timeout_s)
        if left:
            click.echo(
                f"voiplog: {left} records are kept in the spool {directory}: the database did not "
                "take them in time; they are stored at the next start or with `voiplog db drain`",
                err=True,
            )
            raise SystemExit(1)
        if writer.records_rejected:
            click.echo(
                f"voiplog: {writer.records_rejected} records were refused by the database and "
                f"kept in {directory / 'rejected'} (see the log for the reasons)",
                err=True,
            )
            raise SystemExit(1)

    stack.callback(close)
    return writer.put
