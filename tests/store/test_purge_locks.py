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


def test_writers_go_on_while_the_purge_waits_for_a_reader_of_the_table(store_dsn, tmp_path):
    """Dropping a day needs its parent table to itself: while a reader holds the table
    (a lawful-access run, an export), writers must not queue behind the purge's request
    for longer than one of its tries."""
    import datetime as dt
    import threading
    import time

    from tests.store._records import call
    from voiplog.store import purge
    from voiplog.store.database import make_engine
    from voiplog.store.spool import Spool
    from voiplog.store.writer import StoreWriter

    _fill(store_dsn, tmp_path)
    reader = psycopg2.connect(store_dsn)  # reads a day the purge keeps, left open
    with reader.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM cdr WHERE started_at >= '2026-03-10' AND started_at < '2026-03-11'")  # fmt: skip
    engine = make_engine(store_dsn)
    plan = purge.make_plan(engine, dt.datetime(2026, 3, 3, tzinfo=dt.UTC))
    outcome = {}

    def run() -> None:
        try:
            outcome["done"] = purge.execute(engine, plan, "test", lock_timeout_s=20.0)
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    purging = threading.Thread(target=run)
    purging.start()
    try:
        watch = psycopg2.connect(store_dsn)
        watch.autocommit = True
        with watch.cursor() as cursor:
            for _ in range(500):
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'DROP TABLE%%' AND wait_event_type = 'Lock'")  # fmt: skip
                if cursor.fetchone():
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the purge never waited for the table")
        watch.close()
        writer = StoreWriter(store_dsn, Spool(tmp_path / "late", fsync="never"), today=lambda: dt.date(2026, 3, 10), lock_timeout_s=1.0)  # fmt: skip
        writer.put(call("2026-03-10T15:00:00Z", 7, caller="+4930777"))
        writer.spool.seal()
        # No lock of its waited for a second (its lock timeout), or it would have failed.
        assert writer.drain_once(), "the writer queued behind the purge past its lock timeout"
        writer._disconnect(writer._link)
        writer.spool.close()
        assert purging.is_alive()  # still waiting for the reader
    finally:
        reader.rollback()
        reader.close()
        purging.join(30)
        engine.dispose()
    assert "error" not in outcome, outcome
    tables = {name for (name,) in query(store_dsn, "SELECT tablename FROM pg_tables")}
    assert not tables & {"cdr_p20260301", "cdr_p20260302", "registration_p20260301"}
    assert query(store_dsn, "SELECT count(*) FROM cdr_p20260310") == [(4,)]
