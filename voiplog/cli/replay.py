"""`voiplog replay`: the live pipeline run over capture files, packet time as the clock."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import stat
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING

import click

from voiplog import _collector

if TYPE_CHECKING:
    from voiplog.pipeline import Pipeline

log = logging.getLogger("voiplog.replay")


@click.command()
@click.argument("captures", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="POP config file (TOML)."
)
@click.option(
    "--store",
    type=click.Choice(["none", "db"]),
    default="db",
    show_default=True,
    help="Where records are kept: 'db' is the Postgres retention store (database_url of the "
    "config, else VOIPLOG_DATABASE_URL, else an embedded Postgres); 'none' writes only JSON "
    "lines.",
)
@click.option(
    "--jsonl",
    "jsonl_path",
    metavar="PATH|-",
    help="Also write one JSON object per record to PATH, or '-' for standard output "
    "(the default with --store none).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on standard error (default: when it is a terminal).",
)
@click.option(
    "--summary/--no-summary",
    default=None,
    help="Closing summary table on standard error (default: when it is a terminal).",
)
def replay(
    captures: tuple[str, ...],
    config_path: str | None,
    store: str,
    jsonl_path: str | None,
    progress: bool | None,
    summary: bool | None,
) -> None:
    """Replay pcap/pcapng CAPTURE files (in the order given) and write their call and
    registration records.

    Replaying the same input always gives the same records, byte for byte.
    UDP and TCP to the HEP ports (hep.ports, default 9060) is read as HEP: the
    SIP it carries is recorded, not the datagram.
    SIGTERM (or SIGINT) stops reading; the records made so far are kept (stored,
    or left in the spool within store.drain_timeout_s) and the exit code is 1.
    """
    # Imported here, not at the top: `replay --help` loads none of the pipeline.
    from voiplog.apps import open_app_classifier
    from voiplog.capture import CaptureFileError, open_capture
    from voiplog.cli._common import load_pipeline_parts
    from voiplog.cli._sinks import open_record_sinks
    from voiplog.wiring import build_pipeline

    parts = load_pipeline_parts(config_path)
    on_tty = sys.stderr.isatty()
    show_progress = on_tty if progress is None else progress
    show_summary = on_tty if summary is None else summary

    stop = _Stop()
    with ExitStack() as stack:
        stack.callback(stop.restore)
        readers = []
        for path in captures:
            try:
                with stop.waiting_on(path):
                    reader = open_capture(path, on_warning=log.warning)
                readers.append(stack.enter_context(reader))
            except _Interrupted:
                click.echo(f"voiplog: {path}: stopped while no process wrote into it", err=True)
                raise SystemExit(1) from None
            except CaptureFileError as exc:
                click.echo(f"voiplog: {exc}", err=True)
                raise SystemExit(2) from None
        sinks = open_record_sinks(stack, store, jsonl_path, config_path)
        stop.armed = True
        where = _Position()
        apps = open_app_classifier(parts.flow_settings)
        if apps.warning:
            log.warning("%s", apps.warning)
        if apps.classifier is not None:
            stack.callback(apps.classifier.close)
        pipeline = build_pipeline(
            parts, sinks.write, apps=apps.classifier, on_parse_error=where.report
        )
        _collector.tune()  # what start-up made frozen, young collections rarer
        try:
            _run(pipeline, readers, show_progress, where, stop)
        except OSError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None
        corrupt = sum(r.corrupt_records for r in readers)
        if stop.signal is not None:
            # Calls still open are not written: cut short by the stop, they would
            # be stored as final and shadow the whole call of a later replay.
            click.echo(
                f"voiplog: replay stopped by {stop.signal} after {pipeline.stats.packets:,} "
                f"packets in {where.path}: {pipeline.stats.records:,} records made and kept, "
                f"{pipeline.tracker.open_calls:,} calls still open not written; replay the "
                "captures again to complete them (records stored already are skipped)",
                err=True,
            )
            stack.callback(_exit_stopped)
    errors = pipeline.stats.parse_errors
    if errors:
        kinds = ", ".join(f"{kind} {count}" for kind, count in errors.most_common())
        log.warning(
            "unreadable packets: %d (%s); --log-level debug names each one",
            errors.total(),
            kinds,
        )
    if show_summary:
        from voiplog.cli._summary import print_summary

        print_summary(pipeline.stats, corrupt, captures, sinks.destinations())


class _Position:
    """Which file is being replayed and where it starts, to name unreadable packets."""

    def __init__(self) -> None:
        self.path = ""
        self.first_number = 0

    def start(self, path: str, packets_before: int) -> None:
        self.path = path
        self.first_number = packets_before

    def report(self, number: int, error: Exception) -> None:
        log.debug("%s: packet %d: %s: %s", self.path, number - self.first_number, error.kind, error)


class _Stop:
    """SIGTERM and SIGINT end the reading between two packets, not the process.

    The sinks then close as at the end of the input: the store writer seals
    the spool and stores what it can within its time, and says how many
    records stay spooled. Before the sinks are open (`armed`) nothing is at
    stake, and a second signal is not waited on: both end the process at once,
    as by default (what the spool took stays in it).
    """

    def __init__(self) -> None:
        self.signal: str | None = None
        self.armed = False
        self._waiting = False
        self._reading = None  # the record loop being read, if it can be stopped
        self._previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._set)

    def _set(self, signum, _frame) -> None:
        if self._waiting:
            self.signal = signal.Signals(signum).name
            raise _Interrupted
        if self.signal is not None or not self.armed:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal = signal.Signals(signum).name
        if self._reading is not None:
            self._reading.stop()

    @contextlib.contextmanager
    def waiting_on(self, path: str):
        """Opening `path`, which waits for a writer when it is a FIFO: said on standard
        error, and a stop ends the wait."""
        try:
            fifo = stat.S_ISFIFO(os.stat(path).st_mode)
        except OSError:
            fifo = False  # open_capture names the problem
        if fifo:
            click.echo(
                f"voiplog: {path} is a FIFO: waiting for a process to write into it", err=True
            )
        self._waiting = fifo
        try:
            yield
        finally:
            self._waiting = False

    def frames(self, reader):
        """The reader's frames until a stop is asked. A compiled record loop (pcap
        or pcapng) is handed on as it is (the compiled fast path reads it in place,
        and looks at signals every 1,024 records): a stop ends it (`stop()`). Any
        other is looked at every 1,024 frames, taken in batches, which costs no
        Python frame per packet."""
        frames = iter(reader)
        if hasattr(frames, "stop"):
            self._reading = frames
            if self.signal is not None:
                frames.stop()
            return frames
        return itertools.chain.from_iterable(self._batches(frames))

    def _batches(self, frames):
        while self.signal is None:
            batch = list(itertools.islice(frames, 1024))
            if not batch:
                return
            yield batch

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class _Interrupted(Exception):
    """A stop asked while waiting for a FIFO's writer."""


def _exit_stopped() -> None:
    raise SystemExit(1)


def _run(
    pipeline: Pipeline, readers: list, show_progress: bool, where: _Position, stop: _Stop
) -> None:
    if not show_progress:
        for reader in readers:
            where.start(reader.path, pipeline.stats.packets)
            pipeline.feed(stop.frames(reader))
            if stop.signal is not None:
                return
        pipeline.finish()
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    total = sum(os.path.getsize(r.path) for r in readers)
    done_before = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=_stderr_console(),
        transient=False,
    ) as bar:
        task = bar.add_task("replay", total=total)
        for reader in readers:
            where.start(reader.path, pipeline.stats.packets)
            bar.update(task, description=os.path.basename(reader.path))

            def tick(reader=reader, base=done_before) -> None:
                bar.update(task, completed=base + reader.bytes_read)

            pipeline.feed(stop.frames(reader), on_progress=tick)
            if stop.signal is not None:
                return
            done_before += os.path.getsize(reader.path)
            bar.update(task, completed=done_before)
        pipeline.finish()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
