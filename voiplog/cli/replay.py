"""`voiplog replay`: the live pipeline run over capture files, packet time as the clock."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import ExitStack

import click

from voiplog.apps import open_app_classifier
from voiplog.capture import CaptureFileError, open_capture
from voiplog.cli._common import load_pipeline_options
from voiplog.cli._sinks import open_record_sinks
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
    """
    options = load_pipeline_options(config_path)
    on_tty = sys.stderr.isatty()
    show_progress = on_tty if progress is None else progress
    show_summary = on_tty if summary is None else summary

    with ExitStack() as stack:
        readers = []
        for path in captures:
            try:
                readers.append(stack.enter_context(open_capture(path, on_warning=log.warning)))
            except CaptureFileError as exc:
                click.echo(f"voiplog: {exc}", err=True)
                raise SystemExit(2) from None
        sinks = open_record_sinks(stack, store, jsonl_path, config_path)
        where = _Position()
        apps = open_app_classifier(options.flow_settings)
        if apps.warning:
            log.warning("%s", apps.warning)
        if apps.classifier is not None:
            stack.callback(apps.classifier.close)
        pipeline = Pipeline(
            sinks.write,
            sip_ports=options.sip_ports,
            call_settings=options.call_settings,
            classify=options.classify,
            on_parse_error=where.report,
            flow_settings=options.flow_settings,
            reassembly=options.reassembly,
            enricher=options.enricher,
            radius_ports=options.radius_ports,
            apps=apps.classifier,
        )
        try:
            _run(pipeline, readers, show_progress, where)
        except OSError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None
        corrupt = sum(r.corrupt_records for r in readers)
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


def _run(pipeline: Pipeline, readers: list, show_progress: bool, where: _Position) -> None:
    if not show_progress:
        for reader in readers:
            where.start(reader.path, pipeline.stats.packets)
            pipeline.feed(reader)
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

            pipeline.feed(reader, on_progress=tick)
            done_before += os.path.getsize(reader.path)
            bar.update(task, completed=done_before)
        pipeline.finish()


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
