"""`voiplog config check FILE`: validate a POP config and print the effective one."""

from __future__ import annotations

import json

import click

from voiplog.config import ConfigError, load_config


@click.group()
def config() -> None:
    """Work with POP configuration files."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def check(path: str) -> None:
    """Validate PATH (with VOIPLOG_* overrides applied) and print the effective config.

    Exit code 2 and one line per problem (file: key: reason) when it is invalid.
    """
    try:
        effective = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    click.echo(json.dumps(effective.model_dump(mode="json"), indent=2))
