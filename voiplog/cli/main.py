"""The `voiplog` command: one subcommand per module of this package.

Subcommands are imported only when invoked, so that a short replay does not
pay for loading what other subcommands need.

Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure.
"""

from __future__ import annotations

import importlib
import logging

import click

from voiplog import __version__
from voiplog._allocator import pin_mmap_threshold

# command name -> (module, attribute)
SUBCOMMANDS = {
    "replay": ("voiplog.cli.replay", "replay"),
    "config": ("voiplog.cli.config_cmd", "config"),
    "db": ("voiplog.cli.db", "db"),
    "purge": ("voiplog.cli.purge", "purge"),
    "hold": ("voiplog.cli.hold", "hold"),
    "run": ("voiplog.cli.run", "run"),
    "leases": ("voiplog.cli.leases", "leases"),
    "lookup": ("voiplog.cli.lookup", "lookup"),
    "request": ("voiplog.cli.request", "request"),
    "audit": ("voiplog.cli.audit", "audit"),
    "export": ("voiplog.cli.export", "export"),
    "keys": ("voiplog.cli.keys", "keys"),
    "store": ("voiplog.cli.store_cmd", "store"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute = target
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voiplog")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Verbosity of messages on standard error.",
)
def cli(log_level: str) -> None:
    """voiplog: call-detail records of the VoIP calls crossing a POP."""
    logging.basicConfig(level=log_level.upper(), format="voiplog: %(levelname)s: %(message)s")
    pin_mmap_threshold()


def main() -> None:
    cli(prog_name="voiplog")
