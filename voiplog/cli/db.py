"""`voiplog db upgrade|downgrade|current|check|drain|where|shell`: the store, its schema and spool."""

from __future__ import annotations

import click

CONFIG = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="POP config file (TOML)."
)


@click.group()
def db() -> None:
    """Manage the retention store's schema (Alembic migrations) and spool.

    The database is the config's store.database_url, else VOIPLOG_DATABASE_URL,
    else the embedded Postgres. Migrations take a Postgres advisory lock, so
    POPs sharing one database can run them at the same time safely.
    """


@db.command()
@CONFIG
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(config_path: str | None, revision: str) -> None:
    """Migrate the schema up to REVISION."""
    from voiplog.cli._store import open_store
    from voiplog.store import migrate

    with open_store(config_path, require_schema=False) as store:
        before = migrate.current(store.engine)
        migrate.upgrade(store.engine, revision)
        click.echo(f"schema: {before or 'empty'} -> {migrate.current(store.engine)}")


@db.command()
@CONFIG
@click.argument("revision")
def downgrade(config_path: str | None, revision: str) -> None:
    """Migrate the schema down to REVISION ('base' removes every table: all records)."""
    from voiplog.cli._store import open_store
    from voiplog.store import migrate

    with open_store(config_path, require_schema=False) as store:
        migrate.downgrade(store.engine, revision)
        click.echo(f"schema: {migrate.current(store.engine) or 'empty'}")


@db.command()
@CONFIG
def current(config_path: str | None) -> None:
    """Print the schema revision of the database and the one this voiplog needs."""
    from voiplog.cli._store import open_store
    from voiplog.store import migrate

    with open_store(config_path, require_schema=False) as store:
        click.echo(f"database: {migrate.current(store.engine) or 'empty'}")
        click.echo(f"voiplog:  {migrate.head()}")


@db.command()
@CONFIG
def check(config_path: str | None) -> None:
    """Exit 0 when the schema is the one this voiplog writes, 2 (with the fix) when not."""
    from voiplog.cli._store import open_store

    with open_store(config_path, require_schema=True):
        click.echo("schema is current")


@db.command()
@CONFIG
def drain(config_path: str | None) -> None:
    """Store what the POP's spool still holds (after an outage), then exit.

    A spool is drained only into the database its records are for: another one
    is refused, with a message naming both.
    """
    from voiplog.cli._store import locked_spool_dir, open_store
    from voiplog.store.spool import Spool
    from voiplog.store.writer import StoreWriter

    with open_store(config_path) as store:
        cfg = store.config.store
        with locked_spool_dir(store.config) as directory:
            spool = Spool(directory, max_bytes=cfg.spool_max_bytes, fsync=cfg.fsync)
            before = spool.pending_records()
            writer = StoreWriter(store.dsn, spool, pop=store.config.pop, sensor=store.config.sensor)
            left = writer.close(drain_timeout_s=cfg.drain_timeout_s)
    if writer.refused is not None:
        click.echo(f"voiplog: {writer.refused}", err=True)
        raise SystemExit(1)
    click.echo(f"spool {directory}: {before - left} records stored, {left} left")
    if left:
        raise SystemExit(1)


@db.command()
@CONFIG
def where(config_path: str | None) -> None:
    """Say which store the config resolves to, and why, without connecting to it."""
    from voiplog.cli._store import load_pop_config
    from voiplog.errors import UsageError
    from voiplog.store.database import DSN_VARIABLE, describe, resolve_dsn
    from voiplog.store.embedded import default_data_dir

    cfg = load_pop_config(config_path)
    try:
        dsn = resolve_dsn(cfg.store.database_url)
    except UsageError as exc:
        click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(2) from None
    if dsn is None:
        root = default_data_dir()
        made = (root / "data" / "PG_VERSION").is_file()
        click.echo(
            f"the embedded store in {root} ({'made' if made else 'not made yet'}): "
            f"neither store.database_url nor {DSN_VARIABLE} is set"
        )
    elif cfg.store.database_url:
        click.echo(f"database {describe(dsn)} (store.database_url of {config_path})")
    else:
        click.echo(f"database {describe(dsn)} ({DSN_VARIABLE})")


@db.command()
@CONFIG
def shell(config_path: str | None) -> None:
    """Open psql on the store in use (the embedded one is started for the session)."""
    import shutil
    import subprocess

    from voiplog.cli._store import open_store

    with open_store(config_path, require_schema=False) as store:
        psql = shutil.which("psql")
        if psql is None and store.embedded:
            from voiplog.store.embedded import find_binaries

            candidate = find_binaries() / "psql"
            psql = str(candidate) if candidate.exists() else None
        if psql is None:
            click.echo("voiplog: db shell: psql not found (Debian: postgresql-client)", err=True)
            raise SystemExit(2)
        code = subprocess.call([psql, store.dsn])
    raise SystemExit(code)
