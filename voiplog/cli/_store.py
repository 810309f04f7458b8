"""Opening the retention store for a subcommand: its config, then `voiplog.wiring.store`,
whose errors are said on standard error and end the command with their status."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from voiplog.wiring import WiringError

if TYPE_CHECKING:
    from pathlib import Path

    from voiplog.wiring.store import StoreHandle


def load_pop_config(config_path: str | None):
    from voiplog.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None


@contextlib.contextmanager
def exit_on_wiring_error() -> Iterator[None]:
    """A `WiringError` said on standard error, and the command ended with its status."""
    try:
        yield
    except WiringError as exc:
        if str(exc):
            click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(exc.status) from None


@contextlib.contextmanager
def open_store(config_path: str | None, **options) -> Iterator[StoreHandle]:
    """The store the POP config names (or the embedded one), checked and ready (see
    `voiplog.wiring.store.open_store` for `options`); exit 2 for an invalid config."""
    from voiplog.wiring import store

    cfg = load_pop_config(config_path)
    with exit_on_wiring_error(), store.open_store(cfg, **options) as handle:
        yield handle


@contextlib.contextmanager
def locked_spool_dir(cfg) -> Iterator[Path]:
    """The POP's spool directory, held by this process alone; exit 2 when it cannot be
    trusted, used or locked."""
    from voiplog.wiring import store

    with exit_on_wiring_error(), store.locked_spool_dir(cfg) as directory:
        yield directory


def os_user() -> str:
    import getpass

    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{user} (sudo by {sudo})" if sudo and sudo != user else user
