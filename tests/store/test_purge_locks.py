"""A purge that cannot get its locks in time says so in one line and exits 1."""

from __future__ import annotations

import psycopg2
import pytest
from click.testing import CliRunner

from tests.store.conftest import query
from tests.store.test_purge import _fill
from voiplog.cli.main import cli
from voiplog.store.purge import PURGE_LOCK

pytestmark = pytest.mark.postgres


def _purge(dsn):
    return CliRunner().invoke(
        cli,
        ["purge", "--before", "2026-03-03", "--lock-timeout", "0.5"],
        env={"VOIPLOG_DATABASE_URL": dsn},
    )


def test_a_purge_waiting_on_another_one_gives_up_in_one_line(store_dsn, tmp_path):
    _fill(store_dsn, tmp_path)
    other = psycopg2.connect(store_dsn)
    other.autocommit = True
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (PURGE_LOCK,))
        result = _purge(store_dsn)
    finally:
        other.close()
    assert result.exit_code == 1
    assert result.output == (
        "voiplog: purge: another purge is running (the purge lock was not free within 0.5 s); "
        "nothing was changed\n"
    )
    assert query(store_dsn, "SELECT count(*) FROM cdr_p20260301") == [(3,)]


def test_a_partition_in_use_stops_the_purge_in_one_line_and_it_can_be_run_again(
    store_dsn, tmp_path
):
    _fill(store_dsn, tmp_path)
    reader = psycopg2.connect(store_dsn)
    try:
        with reader.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM cdr_p20260302")  # held until rollback
        result = _purge(store_dsn)
    finally:
        reader.rollback()
        reader.close()
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("voiplog: purge: a table to purge is in use by another session (")
    assert line.endswith("not granted within 0.5 s); days dropped before it stay dropped, run it again later")  # fmt: skip
    again = _purge(store_dsn)
    assert again.exit_code == 0, again.output
    tables = {name for (name,) in query(store_dsn, "SELECT tablename FROM pg_tables")}
    assert "cdr_p20260302" not in tables and "cdr_p20260303" in tables
