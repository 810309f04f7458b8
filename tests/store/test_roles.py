"""Least privilege: the writer role inserts records and can do nothing else."""

from __future__ import annotations

import datetime as dt
import uuid
from importlib import resources

import psycopg2
import pytest

from tests.store._records import call
from tests.store.conftest import _admin, query
from voiplog.store import purge
from voiplog.store.database import make_engine
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres


def _as(dsn: str, user: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["user"] = user
    return " ".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def roles(store_dsn):
    script = resources.files("voiplog.store").joinpath("sql/roles.sql").read_text()
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(script)
    suffix = uuid.uuid4().hex[:8]
    writer, admin = f"vl_writer_{suffix}", f"vl_admin_{suffix}"
    query(store_dsn, f"CREATE ROLE {writer} LOGIN IN ROLE voiplog_writer")
    query(store_dsn, f"CREATE ROLE {admin} LOGIN IN ROLE voiplog_admin")
    yield _as(store_dsn, writer), _as(store_dsn, admin)
    connection = _admin()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s, %s)",
            (writer, admin),
        )
        for role in (writer, admin):
            cursor.execute(f"DROP OWNED BY {role}")
    # DROP OWNED only covers this database; the roles own nothing elsewhere.
    with psycopg2.connect(store_dsn) as conn, conn.cursor() as cursor:
        for role in (writer, admin):
            cursor.execute(f"DROP OWNED BY {role}")
    conn.close()
    with connection.cursor() as cursor:
        for role in (writer, admin):
            cursor.execute(f"DROP ROLE {role}")
    connection.close()


def test_the_writer_role_writes_records_and_nothing_else(roles, store_dsn, tmp_path):
    writer_dsn, _ = roles
    today = dt.date(2026, 3, 1)
    for attempt in range(2):  # the second run meets stored records: the merge path
        writer = StoreWriter(writer_dsn, Spool(tmp_path / str(attempt), fsync="never"), today=lambda: today)  # fmt: skip
        with writer:
            writer.put(call("2026-03-01T10:00:00Z", 0))
            writer.put(call("2026-03-05T10:00:00Z", 1))  # a new day: made through the function
        assert writer.records_rejected == 0
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(2,)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(4,)]
    denied = [
        "DELETE FROM cdr",
        "UPDATE cdr SET caller = 'x'",
        "TRUNCATE cdr",
        "SELECT caller FROM cdr",
        "SELECT * FROM legal_hold",
        "SELECT * FROM held_record",
        "SELECT * FROM purge_log",
        "SELECT * FROM lease",
        "SELECT * FROM cgnat_block",
        "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) "
        "VALUES ('x', 'ip', '1.1.1.1', now(), now() + interval '1 day', 'x')",
        "DROP TABLE cdr_p20260301",
        "CREATE TABLE intruder (x int)",
    ]
    for statement in denied:
        connection = psycopg2.connect(writer_dsn)
        with connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute(statement)
        connection.close()


def test_the_writer_role_has_days_that_are_over_indexed_but_cannot_index(
    roles, store_dsn, tmp_path
):
    writer_dsn, _ = roles
    writer = StoreWriter(
        writer_dsn, Spool(tmp_path, fsync="never"), today=lambda: dt.date(2026, 3, 1)
    )
    with writer:
        writer.put(call("2026-02-27T10:00:00Z", 0))
    assert writer.records_rejected == 0
    made = query(
        store_dsn,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'cdr_p20260227' ORDER BY 1",
    )
    assert made == [
        ("cdr_p20260227_callee_idx",),
        ("cdr_p20260227_caller_idx",),
        ("cdr_p20260227_expr_idx",),  # linked B2BUA legs (migration 0009), on every day
        ("cdr_p20260227_pkey",),
        ("cdr_p20260227_subscriber_ip_idx",),
    ]
    connection = psycopg2.connect(writer_dsn)
    with connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cursor.execute("CREATE INDEX intruder ON cdr_p20260301 (caller)")
    connection.close()


def test_the_admin_role_purges(roles, store_dsn, tmp_path):
    writer_dsn, admin_dsn = roles
    today = dt.date(2026, 3, 10)
    writer = StoreWriter(writer_dsn, Spool(tmp_path, fsync="never"), today=lambda: today)
    with writer:
        writer.put(call("2026-03-01T10:00:00Z", 0))
    engine = make_engine(admin_dsn)
    done = purge.execute(
        engine, purge.make_plan(engine, dt.datetime(2026, 3, 2, tzinfo=dt.UTC)), "t"
    )
    assert done.rows_dropped == 1  # one call, its media streams in its row
    engine.dispose()
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(0,)]


@pytest.mark.parametrize(
    "argv",
    [["hold", "list"], ["purge", "--dry-run", "--older-than", "30"], ["hold", "release", "1"]],
)
def test_admin_commands_under_the_writer_role_say_which_role_may(roles, monkeypatch, argv):
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    writer_dsn, _ = roles
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", writer_dsn)
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "the role vl_writer_" in line and "may not do this (permission denied" in line
    assert "voiplog_admin" in line and "Traceback" not in result.output


def test_admin_work_takes_the_admin_database_url_over_the_pop_config(roles, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    writer_dsn, admin_dsn = roles
    config = tmp_path / "pop.toml"
    config.write_text(f'pop = "ams1"\n[store]\ndatabase_url = "{writer_dsn}"\n')
    monkeypatch.delenv("VOIPLOG_DATABASE_URL", raising=False)
    runner = CliRunner()
    denied = runner.invoke(cli, ["hold", "list", "--config", str(config)])
    assert denied.exit_code == 2 and "VOIPLOG_ADMIN_DATABASE_URL" in denied.stderr
    monkeypatch.setenv("VOIPLOG_ADMIN_DATABASE_URL", admin_dsn)
    allowed = runner.invoke(cli, ["hold", "list", "--config", str(config)])
    assert allowed.exit_code == 0, allowed.output
    planned = runner.invoke(
        cli, ["purge", "--dry-run", "--older-than", "30", "--config", str(config)]
    )
    assert planned.exit_code == 0, planned.output
    assert planned.stdout.startswith("dry run, nothing changed:")
