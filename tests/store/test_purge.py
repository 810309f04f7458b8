"""Retention purge and legal holds against a real Postgres."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
from click.testing import CliRunner

from tests.store._records import call, registration
from tests.store.conftest import query
from voiplog.cli.main import cli
from voiplog.store import purge
from voiplog.store.database import make_engine
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.date(2026, 3, 10)


def _fill(dsn, tmp_path):
    """Calls on 1, 2 and 3 March (3 each) and 10 March, registrations on 1 and 3 March."""
    writer = StoreWriter(dsn, Spool(tmp_path / "spool", fsync="never"), today=lambda: TODAY)
    with writer:
        for day in (1, 2, 3, 10):
            for n in range(3):
                writer.put(call(f"2026-03-{day:02d}T12:00:00Z", n, caller=f"+49301{day:02d}{n}"))
        writer.put(call("2026-03-02T12:00:00Z", 9, caller="+4930999", caller_ip="100.64.9.9"))
        writer.put(call("2026-03-02T13:00:00Z", 8, subscriber_id="sub-held"))
        writer.put_dict(registration("2026-03-01T08:00:00Z", 0, user="+4930999"))
        writer.put_dict(registration("2026-03-03T08:00:00Z", 1))
    writer_far = StoreWriter(dsn, Spool(tmp_path / "far", fsync="never"), today=lambda: TODAY, accept_past_days=5)  # fmt: skip
    with writer_far:
        writer_far.put(call("2026-02-01T12:00:00Z", 0))  # lands in the default partition


def _snapshot(dsn):
    return {
        table: query(dsn, f"SELECT uid, stored_at FROM {table} ORDER BY uid")
        for table in ("cdr", "registration")
    } | {"media": query(dsn, "SELECT sum(cardinality(media)) FROM cdr"), "held": query(dsn, "SELECT * FROM held_record"), "log": query(dsn, "SELECT count(*) FROM purge_log")}  # fmt: skip


def test_dry_run_changes_nothing_and_tells_exactly_what_the_purge_does(store_dsn, tmp_path):
    _fill(store_dsn, tmp_path)
    engine = make_engine(store_dsn)
    query(
        store_dsn,
        "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) VALUES "
        "('K-1', 'number', '+4930999', '2026-03-01', '2026-03-03', 't'), "
        "('K-2', 'ip', '100.64.9.0/24', '2026-03-01', '2026-03-05', 't'), "
        "('K-3', 'subscriber', 'sub-held', '2026-03-02', '2026-03-03', 't')",
    )
    cutoff = dt.datetime(2026, 3, 3, tzinfo=dt.UTC)  # 1 and 2 March go, 3 March stays
    before = _snapshot(store_dsn)
    plan = purge.make_plan(engine, cutoff)
    assert _snapshot(store_dsn) == before
    assert {p.name for p in plan.partitions} == {
        "cdr_p20260301", "registration_p20260301", "cdr_p20260302", "registration_p20260302",
    }  # fmt: skip
    rows = {p.name: p.rows for p in plan.partitions}
    assert rows["cdr_p20260301"] == 3 and rows["cdr_p20260302"] == 5
    assert rows["registration_p20260301"] == 1
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr_p20260302") == [(10,)]
    assert plan.default_rows == {"cdr": 1, "registration": 0}
    # K-1: the +4930999 call and registration; K-2: that call again (by IP); K-3: one call.
    assert plan.to_hold == 4

    done = purge.execute(engine, plan, os_user="tester")
    assert done == plan
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(6,)]  # 3 and 10 March
    assert query(store_dsn, "SELECT count(*) FROM registration") == [(1,)]
    assert query(store_dsn, "SELECT count(*) FROM cdr_default") == [(0,)]
    tables = {name for (name,) in query(store_dsn, "SELECT tablename FROM pg_tables")}
    assert "cdr_p20260301" not in tables and "cdr_p20260303" in tables
    log = query(
        store_dsn, "SELECT os_user, cutoff, partitions, rows_dropped, rows_held FROM purge_log"
    )
    assert log == [("tester", cutoff, [p.name for p in plan.partitions], plan.rows_dropped, 4)]
    engine.dispose()


def test_a_held_record_survives_whole(store_dsn, tmp_path):
    _fill(store_dsn, tmp_path)
    with psycopg2.connect(store_dsn) as connection:
        from voiplog.store.read import iter_records

        (original,) = iter_records(connection, "c.caller = %s", ("+4930999",))
    result = CliRunner().invoke(
        cli,
        ["hold", "add", "--case", "K-7", "--number", "+4930999", "--from", "2026-03-01", "--to", "2026-03-03T00:00:00+01:00"],
        env={"VOIPLOG_DATABASE_URL": store_dsn},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # Before any purge the hold already keeps the records it covers in the store.
    listing = CliRunner().invoke(cli, ["hold", "list"], env={"VOIPLOG_DATABASE_URL": store_dsn})
    assert listing.output.splitlines()[1].endswith(
        "2 records in the store, 0 copies kept past purges"
    )
    result = CliRunner().invoke(cli, ["purge", "--before", "2026-03-04"], env={"VOIPLOG_DATABASE_URL": store_dsn})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "records kept for legal holds: 2" in result.output
    assert query(store_dsn, "SELECT count(*) FROM cdr WHERE caller = '+4930999'") == [(0,)]
    (held,) = query(store_dsn, "SELECT record FROM held_record WHERE kind = 'sip'")
    record = held[0]
    assert record["caller"] == "+4930999"
    assert record["call_id"] == original["call_id"]
    assert len(record["media"]) == 2
    assert record["media"][0]["ssrc"] == original["media"][0]["ssrc"]
    assert record["media"][1]["src_ip"] == original["media"][1]["src_ip"] == "198.51.100.7"
    assert record["subscriber"] == original["subscriber"]
    listing = CliRunner().invoke(cli, ["hold", "list"], env={"VOIPLOG_DATABASE_URL": store_dsn})
    header, line = listing.output.splitlines()
    assert header == "id\tcase\tselector\twindow (UTC)\tstate\tcreated\tkeeps"
    assert "case K-7" in line
    assert line.endswith("0 records in the store, 2 copies kept past purges")
    # Released, the copies go at the next purge past their retention.
    result = CliRunner().invoke(cli, ["hold", "release", "1"], env={"VOIPLOG_DATABASE_URL": store_dsn})  # fmt: skip
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["purge", "--dry-run", "--before", "2026-03-04"], env={"VOIPLOG_DATABASE_URL": store_dsn})  # fmt: skip
    assert "held copies of released holds removed: 2" in result.output
    assert query(store_dsn, "SELECT count(*) FROM held_record") == [(2,)]
    CliRunner().invoke(cli, ["purge", "--before", "2026-03-04"], env={"VOIPLOG_DATABASE_URL": store_dsn})  # fmt: skip
    assert query(store_dsn, "SELECT count(*) FROM held_record") == [(0,)]


def test_hold_and_purge_arguments_are_checked(store_dsn):
    env = {"VOIPLOG_DATABASE_URL": store_dsn}
    runner = CliRunner()
    result = runner.invoke(cli, ["hold", "add", "--case", "K", "--number", "1", "--ip", "10.0.0.1", "--from", "2026-01-01", "--to", "2026-02-01"], env=env)  # fmt: skip
    assert result.exit_code == 2 and "exactly one of" in result.output
    result = runner.invoke(cli, ["hold", "add", "--case", "K", "--ip", "10.0.0.300", "--from", "2026-01-01", "--to", "2026-02-01"], env=env)  # fmt: skip
    assert result.exit_code == 2 and "not an IP address" in result.output
    result = runner.invoke(cli, ["hold", "add", "--case", "K", "--number", "1", "--from", "2026-01-01T10:00:00", "--to", "2026-02-01"], env=env)  # fmt: skip
    assert result.exit_code == 2 and "no time zone" in result.output
    result = runner.invoke(cli, ["hold", "release", "42"], env=env)
    assert result.exit_code == 2 and "no such active hold" in result.output
    result = runner.invoke(cli, ["purge", "--before", "2999-01-01"], env=env)
    assert result.exit_code == 2 and "in the future" in result.output


def test_dropping_a_day_is_a_drop_not_a_delete(store_dsn, tmp_path):
    _fill(store_dsn, tmp_path)
    engine = make_engine(store_dsn)
    oid = query(store_dsn, "SELECT 'cdr_p20260301'::regclass::oid")[0][0]
    purge.execute(engine, purge.make_plan(engine, dt.datetime(2026, 3, 2, tzinfo=dt.UTC)), "t")
    assert query(store_dsn, "SELECT count(*) FROM pg_class WHERE oid = %s", (oid,)) == [(0,)]
    engine.dispose()
