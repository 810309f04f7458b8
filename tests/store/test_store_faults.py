"""The writer against real faults: a stalled database, a lock held on `cdr`, connections
killed and refused. In each case every record is stored exactly once in the end, and
the spool never waits for the database."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import psycopg2
import pytest

from tests.store._faults import StallingRelay
from tests.store._records import call
from tests.store.conftest import admin_dsn, query
from voiplog.store.spool import Spool
from voiplog.store.spool_files import iter_entries
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.date(2026, 3, 1)
START = "2026-03-01T10:00:00Z"


def _stored(dsn) -> tuple[int, int]:
    return query(dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr")[0]


def _on_disk(directory) -> tuple[int, int]:
    """Records in sealed segments and in the open one, read from the files alone."""
    ready = sum(1 for p in directory.glob("seg-*.ready") for _ in iter_entries(p.read_bytes()))
    open_ = sum(1 for p in directory.glob("seg-*.open") for _ in iter_entries(p.read_bytes()))
    return ready, open_


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_a_stalled_database_blocks_neither_the_spool_nor_close(store_dsn, tmp_path, caplog):
    relay = StallingRelay(store_dsn)
    # Segments far larger than the records: only the keeper's clock seals them. One
    # drainer, connected before the stall: with two, the segment sealed after it
    # may go to the one that never connected, whose connection attempt then times
    # out (an outage, said as such) while the other has no call to be stuck in.
    spool = Spool(tmp_path / "spool", fsync="batch", segment_bytes=8 << 20)
    writer = StoreWriter(
        relay.dsn, spool, today=lambda: TODAY, seal_interval_s=0.2, stall_timeout_s=2.0,
        drainers=1,
    ).start()  # fmt: skip
    try:
        for n in range(100):
            writer.put(call(START, n))
        _wait(lambda: _stored(store_dsn) == (100, 100))
        relay.stall()
        with caplog.at_level(logging.ERROR, "voiplog.store"):
            for n in range(100, 300):
                writer.put(call(START, n))
            # Sealed while the drainer is stuck in a call that never returns.
            _wait(lambda: _on_disk(spool.directory) == (200, 0), timeout=5)
            _wait(lambda: "no answer to a call within 2 s" in caplog.text, timeout=10)
        started = time.monotonic()
        left = writer.close(drain_timeout_s=2.0)
        closing_s = time.monotonic() - started
    finally:
        relay.close()
    print(f"close with the database stalled: {closing_s:.2f} s, {left} records left spooled")
    assert closing_s < 2.0 + 1.5
    assert left == 200
    assert _stored(store_dsn) == (100, 100)
    # The next start, the database answering again, stores them, once.
    later = StoreWriter(store_dsn, Spool(tmp_path / "spool"), today=lambda: TODAY)
    assert later.close() == 0
    assert _stored(store_dsn) == (300, 300)
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(600,)]


def test_a_database_that_stalls_after_connecting_does_not_hold_close(store_dsn, tmp_path):
    """Connections go through and authenticate, then their first query never comes
    back: the checks the writer makes of a new connection wait like any call, and
    close's deadline cuts them; the records stay spooled for a later run."""
    relay = StallingRelay(store_dsn)
    relay.stall_queries = True
    spool = Spool(tmp_path / "spool", fsync="batch")
    # No stall bound before the deadline's: only close may cut the calls. Not
    # started: close drains from the caller's thread, which connects (time is
    # left for it) and makes its checks there.
    writer = StoreWriter(relay.dsn, spool, today=lambda: TODAY, stall_timeout_s=600.0)
    closed: list = []
    try:
        for n in range(50):
            writer.put(call(START, n))
        started = time.monotonic()
        closing = threading.Thread(
            target=lambda: closed.append(writer.close(drain_timeout_s=4.0)), daemon=True
        )
        closing.start()
        closing.join(30)
        took_s = time.monotonic() - started
        assert closed == [50], f"close still waiting after {took_s:.1f} s"
        assert took_s < 4.0 + 1.0
        relay.stall_queries = False  # the database answers again: all lands, once
        later = StoreWriter(relay.dsn, Spool(tmp_path / "spool"), today=lambda: TODAY)
        assert later.close() == 0
    finally:
        relay.close()
    assert _stored(store_dsn) == (50, 50)


def test_a_stalled_database_that_comes_back_gets_every_record_once(store_dsn, tmp_path):
    relay = StallingRelay(store_dsn)
    spool = Spool(tmp_path / "spool", fsync="batch", segment_bytes=2048)
    writer = StoreWriter(
        relay.dsn, spool, today=lambda: TODAY, seal_interval_s=0.05, stall_timeout_s=1.0
    ).start()
    try:
        for n in range(100):
            writer.put(call(START, n))
        _wait(lambda: _stored(store_dsn) == (100, 100))  # the drainers are connected
        relay.stall()
        for n in range(100, 250):
            writer.put(call(START, n))
        _wait(lambda: not writer.healthy, timeout=10)
        relay.restore()
        for n in range(250, 300):
            writer.put(call(START, n))
        _wait(lambda: _stored(store_dsn) == (300, 300), timeout=60)
        left = writer.close(drain_timeout_s=30)
    finally:
        relay.close()
    assert left == 0
    assert _stored(store_dsn) == (300, 300)


def test_a_lock_held_on_cdr_bounds_every_attempt_and_loses_nothing(store_dsn, tmp_path, caplog):
    holder = psycopg2.connect(store_dsn)
    with holder.cursor() as cursor:
        cursor.execute("LOCK TABLE cdr IN ACCESS EXCLUSIVE MODE")  # held until rollback
    spool = Spool(tmp_path / "spool", fsync="batch", segment_bytes=2048)
    writer = StoreWriter(
        store_dsn, spool, today=lambda: TODAY, seal_interval_s=0.05, lock_timeout_s=0.5
    ).start()
    try:
        with caplog.at_level(logging.ERROR, "voiplog.store"):
            for n in range(100):
                writer.put(call(START, n))
            _wait(lambda: "lock timeout" in caplog.text, timeout=10)
        started = time.monotonic()
        left = writer.close(drain_timeout_s=1.5)
        closing_s = time.monotonic() - started
        with holder.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM cdr")
            assert cursor.fetchone() == (0,)
    finally:
        holder.rollback()
        holder.close()
    print(f"close with cdr locked by another session: {closing_s:.2f} s, {left} left spooled")
    assert closing_s < 1.5 + 1.5
    assert left == 100
    later = StoreWriter(store_dsn, Spool(tmp_path / "spool"), today=lambda: TODAY)
    assert later.close() == 0
    assert _stored(store_dsn) == (100, 100)


def test_connections_killed_and_refused_then_back_every_record_lands_once(store_dsn, tmp_path):
    name = psycopg2.extensions.parse_dsn(store_dsn)["dbname"]
    admin = psycopg2.connect(admin_dsn())
    admin.autocommit = True
    spool = Spool(tmp_path / "spool", fsync="batch", segment_bytes=2048)
    writer = StoreWriter(store_dsn, spool, today=lambda: TODAY, seal_interval_s=0.05).start()
    try:
        for n in range(100):
            writer.put(call(START, n))
        _wait(lambda: _stored(store_dsn) == (100, 100))
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        for n in range(100, 300):
            writer.put(call(START, n))
        _wait(lambda: not writer.healthy, timeout=10)
        time.sleep(0.5)
        assert spool.pending_records() > 0
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        for n in range(300, 350):
            writer.put(call(START, n))
        left = writer.close(drain_timeout_s=60)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")
        admin.close()
    assert left == 0
    assert _stored(store_dsn) == (350, 350)
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(700,)]
