"""`voiplog --help` lists the subcommands from a table, importing none of them:
the table's short helps must be the commands' own."""

from __future__ import annotations

import subprocess
import sys

import click

from voiplog.cli.main import SUBCOMMANDS, cli


def test_the_listed_short_helps_are_the_commands_own():
    ctx = click.Context(cli, info_name="voiplog")
    own = ctx.make_formatter()
    click.Group.format_commands(cli, ctx, own)  # imports every subcommand
    listed = ctx.make_formatter()
    cli.format_commands(ctx, listed)
    assert listed.getvalue() == own.getvalue()
    assert sorted(SUBCOMMANDS) == cli.list_commands(ctx)


def test_help_imports_no_subcommand():
    code = (
        "import sys\n"
        "from voiplog.cli.main import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='voiplog')\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('voiplog.') and "
        "m not in ('voiplog.cli', 'voiplog.cli.main', 'voiplog._allocator'))\n"
        "print(loaded, file=sys.stderr)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
