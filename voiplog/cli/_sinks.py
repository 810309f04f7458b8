"""Where `replay` and `run` send their records, as chosen on the command line."""

from __future__ import annotations

from contextlib import ExitStack

from voiplog.cli._store import exit_on_wiring_error, load_pop_config
from voiplog.sinks import RecordSinks


def open_record_sinks(
    stack: ExitStack,
    store: str,
    jsonl_path: str | None,
    config_path: str | None = None,
    **options,
) -> RecordSinks:
    """`voiplog.wiring.sinks.open_record_sinks` for a command: the config loaded when
    the store is chosen (exit 2 when invalid), a sink that cannot be opened said
    and the command ended with its status, and so are records not all kept when
    `stack` closes."""
    from voiplog.wiring import sinks

    cfg = load_pop_config(config_path) if store == "db" else None
    stack.enter_context(exit_on_wiring_error())
    with exit_on_wiring_error():
        return sinks.open_record_sinks(stack, store, jsonl_path, cfg, **options)
