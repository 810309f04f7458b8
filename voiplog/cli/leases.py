"""`voiplog leases import FILE...`: lease history and CGNAT port blocks into the database."""

from __future__ import annotations

import click

from voiplog.errors import UsageError
from voiplog.wiring.enrichment import (
    EnrichmentSourceError,
    cgnat_format,
    lease_format,
    read_lease_file,
    read_port_blocks,
)

_FORMATS = ["csv", "jsonl", "cgnat-csv", "ipfix"]


@click.group()
def leases() -> None:
    """Lease history: who held which address or port block when."""


@leases.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    help="Leases: csv or jsonl (network, subscriber_id, account, access_line, start, end). "
    "CGNAT port blocks: cgnat-csv (public_ip, port_start, port_end, private_ip, start, end) "
    "or ipfix (RFC 8158 port-block events). Default: from each file's name (.csv, .jsonl).",
)
@click.option(
    "--cgnat",
    is_flag=True,
    help="The files hold CGNAT port blocks (.csv as cgnat-csv, anything else as ipfix).",
)
@click.option(
    "--dsn",
    metavar="URL",
    help="Postgres database (postgresql://user@host/db); default: the store of the POP "
    "config (store.database_url), else $VOIPLOG_DATABASE_URL, else the embedded store.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="POP config file (TOML) naming the store.",
)
def import_(
    files: tuple[str, ...], fmt: str | None, cgnat: bool, dsn: str | None, config_path: str | None
) -> None:
    """Import lease or port-block FILES into the database, in the order given.

    Times are ISO 8601 with a UTC offset (2024-05-01T10:00:00Z, +02:00); a time
    without one is refused. Validity is half-open: a lease ending at 10:00 no
    longer holds at 10:00. A renewal (the same network and owner, touching or
    overlapping a stored lease) extends that lease. A row overlapping another
    owner's lease is a conflict: it is reported with its file and line and
    skipped, and the exit code is 1. A file with a row that cannot be read
    (named with its line) stops the import with exit code 2; nothing of that
    file is written, files before it stay imported.
    """
    if dsn is not None:
        _import_into(dsn, files, fmt, cgnat)
        return
    from voiplog.cli._store import open_store

    # The same store replay and the daemon write to: config, environment, embedded.
    with open_store(config_path) as store:
        _import_into(store.dsn, files, fmt, cgnat)


def _import_into(url: str, files: tuple[str, ...], fmt: str | None, cgnat: bool) -> None:
    import psycopg2

    from voiplog.store.database import check_dsn
    from voiplog.store.leases import import_leases, import_port_blocks

    try:
        check_dsn(url, "--dsn")
        conn = psycopg2.connect(url)
    except UsageError as exc:
        click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(2) from None
    except psycopg2.Error as exc:
        click.echo(f"voiplog: database: cannot connect: {str(exc).strip()}", err=True)
        raise SystemExit(2) from None
    _require_schema(conn, url)
    conflicts = 0
    try:
        for path in files:
            kind = fmt or (
                ("cgnat-csv" if cgnat_format(path) == "csv" else "ipfix")
                if cgnat
                else lease_format(path)
            )
            try:
                if kind in ("csv", "jsonl"):
                    rows = list(read_lease_file(path, kind))
                    result = import_leases(conn, rows)
                    what = "leases"
                else:
                    blocks = list(read_port_blocks(path, "csv" if kind == "cgnat-csv" else "ipfix"))
                    result = import_port_blocks(conn, blocks)
                    what = "port blocks"
            except EnrichmentSourceError as exc:
                click.echo(f"voiplog: {exc}", err=True)
                raise SystemExit(2) from None
            for conflict in result.conflicts:
                click.echo(f"voiplog: conflict: {conflict}", err=True)
            conflicts += len(result.conflicts)
            click.echo(
                f"{path}: {result.inserted} {what} added, {result.merged} merged into stored ones, "
                f"{len(result.conflicts)} conflicts"
            )
    except psycopg2.Error as exc:
        click.echo(f"voiplog: database: {str(exc).strip()}", err=True)
        raise SystemExit(1) from None
    finally:
        conn.close()
    if conflicts:
        raise SystemExit(1)


def _require_schema(conn, url: str) -> None:
    """Exit 2, naming the command that fixes it, unless the schema is this version's."""
    from voiplog.store import migrate
    from voiplog.store.database import describe, make_engine
    from voiplog.store.errors import SchemaBehindError

    engine = make_engine(url)
    try:
        migrate.require_current(engine, f"database {describe(url)}")
    except SchemaBehindError as exc:
        conn.close()
        click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(2) from None
    finally:
        engine.dispose()
