"""Migrations up and down on an empty database; the schema check and its message."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.store.conftest import query
from voiplog.cli.main import cli
from voiplog.store import migrate
from voiplog.store.database import make_engine
from voiplog.store.errors import SchemaBehindError

pytestmark = pytest.mark.postgres

TABLES = {"cdr", "cdr_media", "registration", "legal_hold", "held_record", "purge_log", "lease", "cgnat_block"}  # fmt: skip


def _tables(dsn):
    rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


def test_up_down_up_on_an_empty_database(scratch_dsn):
    engine = make_engine(scratch_dsn)
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert _tables(scratch_dsn) >= TABLES
    assert {"cdr_default", "cdr_media_default", "registration_default"} <= _tables(scratch_dsn)
    migrate.downgrade(engine, "base")
    assert migrate.current(engine) is None
    assert _tables(scratch_dsn) == {"alembic_version"}
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    engine.dispose()


def test_writing_refuses_a_schema_that_is_behind(scratch_dsn):
    engine = make_engine(scratch_dsn)
    with pytest.raises(SchemaBehindError, match="run `voiplog db upgrade` first"):
        migrate.require_current(engine, "here")
    migrate.upgrade(engine)
    migrate.require_current(engine, "here")
    query(scratch_dsn, "UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(SchemaBehindError, match="newer than this voiplog knows"):
        migrate.require_current(engine, "here")
    engine.dispose()


def test_cli_check_upgrade_current(scratch_dsn, monkeypatch):
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", scratch_dsn)
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "check"])
    assert result.exit_code == 2
    assert "run `voiplog db upgrade`" in result.output
    result = runner.invoke(cli, ["replay", "--no-progress", "voiplog/data/sample-calls.pcap"])
    assert result.exit_code == 2
    assert "voiplog db upgrade" in result.output
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"empty -> {migrate.head()}" in result.output
    result = runner.invoke(cli, ["db", "current"])
    assert f"database: {migrate.head()}" in result.output
    assert runner.invoke(cli, ["db", "check"]).exit_code == 0


def test_migrations_run_one_at_a_time(store_dsn):
    # The advisory lock is released after a run: a second upgrade goes through.
    engine = make_engine(store_dsn)
    migrate.upgrade(engine)
    rows = query(store_dsn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    assert rows == [(0,)]
    engine.dispose()


def test_the_models_match_what_the_migrations_make(store_dsn):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from voiplog.store._models import PARTITIONED, Base

    def include(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return not any(name.startswith(f"{table}_") for table in PARTITIONED)
        return True

    engine = make_engine(store_dsn)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": include, "compare_type": True}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []
