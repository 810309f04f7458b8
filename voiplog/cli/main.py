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

# command name -> (module, attribute, short help). The short help is what
# `voiplog --help` lists, so that listing imports none of the subcommands
# (tests/cli check that each is the command's own).
SUBCOMMANDS = {
    "audit": (
        "voiplog.cli.audit",
        "audit",
        "The audit trail: every request step, run, hold, purge and...",
    ),
    "config": ("voiplog.cli.config_cmd", "config", "Work with POP configuration files."),
    "db": (
        "voiplog.cli.db",
        "db",
        "Manage the retention store's schema (Alembic migrations) and...",
    ),
    "export": (
        "voiplog.cli.export",
        "export",
        "Evidence bundles: `export REQUEST_ID --out DIR|FILE.zip`,...",
    ),
    "hold": (
        "voiplog.cli.hold",
        "hold",
        "Legal holds: records matching an active hold survive every purge.",
    ),
    "keys": ("voiplog.cli.keys", "keys", "Signing keys of evidence bundles."),
    "leases": (
        "voiplog.cli.leases",
        "leases",
        "Lease history: who held which address or port block when.",
    ),
    "lookup": (
        "voiplog.cli.lookup",
        "lookup",
        "Show which subscriber held IP (and PORT, behind CGNAT) at the...",
    ),
    "purge": (
        "voiplog.cli.purge",
        "purge",
        "Drop whole day partitions older than the cutoff, never a bulk...",
    ),
    "replay": (
        "voiplog.cli.replay",
        "replay",
        "Replay pcap/pcapng CAPTURE files (in the order given) and...",
    ),
    "request": (
        "voiplog.cli.request",
        "request",
        "Lawful-access requests: register, approve (a second person),...",
    ),
    "run": (
        "voiplog.cli.run",
        "run",
        "Capture live traffic and write a record for every call, until...",
    ),
    "store": (
        "voiplog.cli.store_cmd",
        "store",
        "Day seals: Merkle roots of each day's records, chained and...",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attribute, _short = target
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of subcommands, from the table: no subcommand is imported."""
        rows = [(name, SUBCOMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _version(ctx) if value else None,
    help="Show the version, and whether the hot path is compiled, and exit.",
)
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
    # Imported here: it loads ctypes, and `voiplog --help` ends before this runs.
    from voiplog._allocator import pin_mmap_threshold

    pin_mmap_threshold()


def _version(ctx: click.Context) -> None:
    """The version, then which implementation of each compiled part runs (the
    pure-Python reference runs where an extension was not built or is off)."""
    import importlib

    for module in ("voiplog.capture.files", "voiplog.capture.live", "voiplog.pipeline"):
        importlib.import_module(module)  # each chooses its implementations as it loads
    from voiplog._extensions import STATUS

    click.echo(f"voiplog, version {__version__}")
    for module, status in sorted(STATUS.items()):
        click.echo(f"{module}: {status}")
    ctx.exit()


def main() -> None:
    cli(prog_name="voiplog")
