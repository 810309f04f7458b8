"""Migrations up and down on an empty database; the schema check and its message."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.store.conftest import query
from voiplog.cli.main import cli
from voiplog.store import migrate
from voiplog.store.database import make_engine
from voiplog.store.errors import SchemaBehindError

pytestmark = pytest.mark.postgres

TABLES = {"cdr", "registration", "legal_hold", "held_record", "purge_log", "lease", "cgnat_block"}  # fmt: skip


def _tables(dsn):
    rows = query(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {name for (name,) in rows}


def test_up_down_up_on_an_empty_database(scratch_dsn):
    engine = make_engine(scratch_dsn)
    assert migrate.current(engine) is None
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert _tables(scratch_dsn) >= TABLES
    assert {"cdr_default", "registration_default"} <= _tables(scratch_dsn)
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


def _stored_by_the_first_layout(dsn) -> list[dict]:
    """The fixture's two calls stored as revision 0003 stored them; their contract dicts."""
    from io import BytesIO
    from pathlib import Path

    import orjson
    import psycopg2

    from voiplog.store._ingest import COPY_HEADER, COPY_TRAILER, parts
    from voiplog.store.spool_files import iter_entries

    data = Path(__file__).parent / "data"
    entries = list(iter_entries((data / "spool-v1-calls.entries").read_bytes()))
    rows, media = (b"".join(parts(e)[i] for e in entries) for i in (1, 2))
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT voiplog_ensure_day_partitions('2026-03-01')")
        for table, data_rows in (("cdr", rows), ("cdr_media", media)):
            cursor.execute(
                f"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                f"WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped "
                "AND attname <> 'stored_at'"
            )
            (columns,) = cursor.fetchone()
            cursor.copy_expert(
                f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)",
                BytesIO(COPY_HEADER + data_rows + COPY_TRAILER),
            )
    connection.close()
    lines = (data / "spool-v1-calls.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_upgrading_moves_streams_and_enrichment_into_the_call_row_and_back(scratch_dsn):
    import psycopg2

    from voiplog.store.read import iter_records

    engine = make_engine(scratch_dsn)
    migrate.upgrade(engine, "0003")
    docs = _stored_by_the_first_layout(scratch_dsn)
    # A record from elsewhere: a subscriber object of another shape.
    odd = {"id": 42, "vlan": "7"}
    query(scratch_dsn, "UPDATE cdr SET subscriber = %s WHERE uid = %s", (json.dumps(odd), docs[1]["uid"]))  # fmt: skip
    docs[1]["subscriber"] = odd
    before = query(scratch_dsn, "SELECT uid, subscriber, remote, extra FROM cdr ORDER BY uid")
    media_before = query(scratch_dsn, "SELECT * FROM cdr_media ORDER BY uid, ordinal")
    assert len(media_before) == 2

    migrate.upgrade(engine)
    with psycopg2.connect(scratch_dsn) as connection:
        assert list(iter_records(connection)) == docs
    connection.close()
    assert query(scratch_dsn, "SELECT (subscriber).id, (remote).asn FROM cdr ORDER BY started_at") == [("sub-1", 3320), (None, None)]  # fmt: skip
    assert query(scratch_dsn, "SELECT count(*) FROM cdr WHERE extra IS NULL") == [(0,)]

    migrate.downgrade(engine, "0003")
    assert query(scratch_dsn, "SELECT uid, subscriber, remote, extra FROM cdr ORDER BY uid") == before  # fmt: skip
    assert query(scratch_dsn, "SELECT * FROM cdr_media ORDER BY uid, ordinal") == media_before
    engine.dispose()
