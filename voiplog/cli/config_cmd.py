"""`voiplog config check FILE`: validate a POP config and print the effective one."""

from __future__ import annotations

import json
import re

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
    shown = effective.model_dump(mode="json")
    if shown.get("store", {}).get("database_url"):
        shown["store"]["database_url"] = _without_password(shown["store"]["database_url"])
    click.echo(json.dumps(shown, indent=2))
    from voiplog.apps import open_app_classifier

    apps = open_app_classifier(effective.media_sessions.settings())
    if apps.classifier is not None:
        apps.classifier.close()
    click.echo(f"{path}: media_sessions.app_classifier: {apps.description}", err=True)
    if apps.warning:
        click.echo(f"{path}: warning: {apps.warning}", err=True)


def _without_password(dsn: str) -> str:
    """A DSN fit to print: its password (URL or key=value form) as stars."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)
