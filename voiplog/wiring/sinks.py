"""Where `replay` and `run` send their records: JSON lines, the store, or both.

Opened from the command's choices and the POP configuration; what cannot be
opened raises `WiringError`, and records that were not all kept when the sinks
close raise `RecordsNotKept`: the commands say them and exit with their status.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import ExitStack
from typing import TYPE_CHECKING

from voiplog.sinks import JsonlSink, RecordSinks
from voiplog.sinks.jsonl import SinkError
from voiplog.wiring import WiringError

if TYPE_CHECKING:
    from voiplog.config import PopConfig

log = logging.getLogger("voiplog.store")


class RecordsNotKept(WiringError):
    """Records the sinks took but could not keep where asked (said by the message;
    an empty one when it was said already): the command ends with status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=1)


def open_record_sinks(
    stack: ExitStack,
    store: str,
    jsonl_path: str | None,
    cfg: PopConfig | None = None,
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
    `cfg` is the POP configuration, needed with "db". `WiringError` when a sink
    cannot be opened (status 1 for JSON lines that cannot be written, 2 for a
    file that cannot be made). The sinks close with `stack` (or before, with
    `RecordSinks.close`), which raises `RecordsNotKept` when records were not
    all kept. The pipeline emits into `RecordSinks.write`.
    """
    sinks = RecordSinks()
    if store == "db":
        sinks.writer, sinks.store_where, close_writer = _open_store_writer(
            stack, cfg, drain_timeout_s, spooled_is_failure
        )
        sinks.on_close(close_writer)
    # Closed before what the store writer needs (its database handle, the lock of
    # its spool), which `stack` entered first.
    stack.callback(sinks.close)
    if store != "db" and jsonl_path is None:
        jsonl_path = "-"
    if jsonl_path is not None:
        try:
            sinks.jsonl = JsonlSink(jsonl_path)
            sinks.jsonl_path = jsonl_path
        except SinkError as exc:
            raise WiringError(str(exc), status=1) from None
        except OSError as exc:
            raise WiringError(f"{jsonl_path}: cannot write: {exc.strerror}") from None
        sinks.on_close(lambda: _close_jsonl(sinks))
    return sinks


def _close_jsonl(sinks: RecordSinks) -> None:
    """Close the JSON lines; records that could not be written there raise
    `RecordsNotKept` (the other sinks close all the same: the records stay in the
    store), with no message when the failure was said already."""
    with contextlib.suppress(SinkError):
        sinks.jsonl.close()
    if sinks.jsonl.error is not None:
        raise RecordsNotKept("" if sinks.jsonl_reported else str(sinks.jsonl.error))


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
        raise WiringError(f"{exc} ({where})") from None


def _open_store_writer(
    stack: ExitStack,
    cfg: PopConfig,
    drain_timeout_s: float | None,
    spooled_is_failure: bool,
):
    from voiplog.store.spool import Spool
    from voiplog.store.writer import StoreWriter
    from voiplog.wiring.store import locked_spool_dir, open_store

    handle = stack.enter_context(open_store(cfg, spool_if_down=True))
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
            raise RecordsNotKept(
                f"{writer.records_stored} records stored, {left} kept in the spool "
                f"{directory}: the database did not take them within {timeout:g} s; they are "
                "stored at the next start or with `voiplog db drain`"
            )
        if writer.spool.records_lost:
            raise RecordsNotKept(
                f"{writer.spool.records_lost} records were lost: the file system of the "
                f"spool {directory} was full (see the log)"
            )
        if writer.records_rejected:
            raise RecordsNotKept(
                f"{writer.records_rejected} records could not be stored and were kept "
                f"in {directory / 'rejected'} (see the log for the reasons)"
            )

    return writer, handle.where, close
