"""A spool belongs to one database: drained into another, it is refused."""

from __future__ import annotations

import datetime as dt

import psycopg2
import pytest
from click.testing import CliRunner

from tests.store._records import call
from tests.store.conftest import query
from tests.store.test_writer import _Proxy
from voiplog.cli.main import cli
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.date(2026, 3, 1)
START = "2026-03-01T10:00:00Z"


def _drain(dsn, spool):
    env = {"VOIPLOG_DATABASE_URL": dsn, "VOIPLOG_STORE__SPOOL_DIR": str(spool)}
    return CliRunner().invoke(cli, ["db", "drain"], env=env)


def _count(dsn) -> int:
    return query(dsn, "SELECT count(*) FROM cdr")[0][0]


def test_records_for_one_database_are_refused_by_another(store_dsn, other_dsn, tmp_path):
    directory = tmp_path / "spool"
    with StoreWriter(store_dsn, Spool(directory), today=lambda: TODAY) as writer:
        for n in range(5):
            writer.put(call(START, n))
    assert _count(store_dsn) == 5  # reached: the spool is bound to it
    # Its database away: records wait in the spool (this run stores nothing).
    writer = StoreWriter(store_dsn, Spool(directory), today=lambda: TODAY)
    for n in range(5, 10):
        writer.put(call(START, n))
    writer.spool.close()

    refused = _drain(other_dsn, directory)
    assert refused.exit_code == 1
    ours = psycopg2.extensions.parse_dsn(store_dsn)["dbname"]
    theirs = psycopg2.extensions.parse_dsn(other_dsn)["dbname"]
    (line,) = refused.output.splitlines()
    assert line.startswith(f"voiplog: spool {directory} holds records for database {ours} (system ")
    assert f"not for database {theirs} (system " in line
    assert _count(other_dsn) == 0
    assert Spool(directory).pending_records() == 5

    drained = _drain(store_dsn, directory)
    assert drained.exit_code == 0, drained.output
    assert "5 records stored, 0 left" in drained.output
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(10, 10)]

    # Empty, the spool follows the configuration to the other database.
    with StoreWriter(other_dsn, Spool(directory), today=lambda: TODAY) as writer:
        writer.put(call(START, 10))
    assert _count(other_dsn) == 1


def test_a_database_never_reached_keeps_its_records(store_dsn, other_dsn, tmp_path):
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    proxy.cut()  # down from the first start on
    params.update(host="127.0.0.1", port=str(proxy.port))
    down = " ".join(f"{k}={v}" for k, v in params.items())
    directory = tmp_path / "spool"
    try:
        writer = StoreWriter(down, Spool(directory), today=lambda: TODAY).start()
        for n in range(3):
            writer.put(call(START, n))
        assert writer.close(drain_timeout_s=0.5) == 3

        refused = _drain(other_dsn, directory)
        assert refused.exit_code == 1
        assert (
            f"holds records for the database at postgres@127.0.0.1:{proxy.port}/" in refused.output
        )
        assert "(never reached), not for database " in refused.output
        assert _count(other_dsn) == 0

        proxy.restore()
        drained = _drain(down, directory)
    finally:
        proxy.close()
    assert drained.exit_code == 0, drained.output
    assert _count(store_dsn) == 3
