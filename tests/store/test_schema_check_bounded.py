"""The schema check a command makes before it touches the store is bounded: a
migration holding the version table's lock elsewhere makes it fail in time,
with the reason, instead of waiting for ever."""

from __future__ import annotations

import time

import psycopg2
from click.testing import CliRunner

from voiplog.cli.main import cli


def test_a_lock_on_the_version_table_ends_the_check_in_time(store_dsn, monkeypatch):
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", store_dsn)
    assert CliRunner().invoke(cli, ["db", "check"]).exit_code == 0
    holder = psycopg2.connect(store_dsn)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        result = CliRunner().invoke(cli, ["db", "check"])
        took = time.monotonic() - began
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 1, result.output
    assert "no answer in time from database" in result.output
    assert "lock timeout" in result.output
    assert took < 20
