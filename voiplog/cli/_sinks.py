"""Where `replay` and `run` send their records: JSON lines, the store, or both."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import click

from voiplog.sinks import JsonlSink

Emit = Callable[[Any], None]


def open_record_sinks(stack: ExitStack, store: str, jsonl_path: str | None) -> Emit:
    """Open the sinks chosen on the command line inside `stack`; return `emit(record)`.

    Exits 2 when a sink cannot be opened. `store` is "none" or "db".
    """
    if store == "db":
        click.echo(
            "voiplog: --store db: the database store is not part of this version yet; "
            "use --store none with --jsonl",
            err=True,
        )
        raise SystemExit(2)
    if jsonl_path is None:
        jsonl_path = "-"
    try:
        sink = stack.enter_context(JsonlSink(jsonl_path))
    except OSError as exc:
        click.echo(f"voiplog: {jsonl_path}: cannot write: {exc.strerror}", err=True)
        raise SystemExit(2) from None
    return sink.write
