"""The writer against a real Postgres: round trip, idempotence, partitions, outages."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import socket
import threading
import time

import psycopg2
import pytest

from tests.store._records import call, registration
from tests.store.conftest import query
from voiplog.store.read import iter_records, iter_registrations
from voiplog.store.spool import Spool
from voiplog.store.spool_files import iter_entries
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.date(2026, 3, 1)


def _writer(dsn, tmp_path, **kw):
    spool = Spool(tmp_path / "spool", fsync="never", segment_bytes=kw.pop("segment_bytes", 4096))
    return StoreWriter(dsn, spool, pop="ams1", sensor="edge-1", today=lambda: TODAY, **kw)


def _records(dsn):
    with psycopg2.connect(dsn) as connection:
        return list(iter_records(connection))


@pytest.mark.parametrize("memo_bytes", [0, 1 << 20])  # segments read back, or kept in memory
def test_records_come_back_exactly_as_written(store_dsn, tmp_path, memo_bytes):
    records = [
        call("2026-03-01T10:00:00Z", 0),
        call(
            "2026-03-01T10:00:00.5Z",
            1,
            user_agent='tab\there "q" back\\slash ünï€',
            flags=("a,b", 'c"d', "e\\f"),
        ),
        call(
            "2026-03-01T23:59:59.997999Z",
            2,
            media=False,
            subscriber_id=None,
            caller_ip="2001:db8::1",
            extra={"tunnel": {"type": "gre", "key": 7}},
        ),
        call("2026-03-02T00:00:00Z", 3, duration_s=0.000001, setup_ms=None, answered_at=None),
        call("2026-03-01T11:00:00Z", 4, remote={"country": "NL", "asn": 1136, "org": "KPN"}),
        call("2026-03-01T11:00:00Z", 5, remote={"country": None, "asn": None, "org": None}),
        # Enrichment of another shape than the contract's (a record from elsewhere).
        call("2026-03-01T11:00:00Z", 6, subscriber={"id": 7, "vlan": "x"}, remote={"asn": "AS1"}),
    ]
    writer = _writer(store_dsn, tmp_path, memo_bytes=memo_bytes)
    with writer:
        for record in records:
            writer.put(record)
    assert writer.records_stored == len(records)
    stored = {doc["uid"]: doc for doc in _records(store_dsn)}
    for record in records:
        assert stored[record.uid] == record.to_dict()
    parts = query(
        store_dsn, "SELECT tableoid::regclass::text, count(*) FROM cdr GROUP BY 1 ORDER BY 1"
    )
    assert parts == [("cdr_p20260301", 6), ("cdr_p20260302", 1)]
    pop = query(store_dsn, "SELECT DISTINCT pop, sensor FROM cdr")
    assert pop == [("ams1", "edge-1")]


def test_registrations_go_to_their_table(store_dsn, tmp_path):
    doc = registration("2026-03-01T08:00:00Z")
    doc["extra_key"] = "kept"
    writer = _writer(store_dsn, tmp_path)
    with writer:
        writer.put_dict(doc)
    with psycopg2.connect(store_dsn) as connection:
        assert list(iter_registrations(connection)) == [doc]


def test_writing_twice_stores_once(store_dsn, tmp_path):
    records = [call("2026-03-01T10:00:00Z", n) for n in range(50)]
    for attempt in range(2):
        writer = _writer(store_dsn, tmp_path / str(attempt))
        with writer:
            for record in records[: 30 + attempt * 20]:  # the second run overlaps the first
                writer.put(record)
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(50, 50)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(100,)]


def test_a_segment_drained_again_after_a_crash_adds_nothing(store_dsn, tmp_path):
    writer = _writer(store_dsn, tmp_path)
    for n in range(10):
        writer.put(call("2026-03-01T10:00:00Z", n))
    writer.spool.seal()
    segment = writer.spool.ready()[0]
    copy = segment.read_bytes()
    assert writer.drain_once()
    segment.write_bytes(copy)  # committed, then the process died before deleting it
    spool = Spool(tmp_path / "spool", fsync="never")
    again = StoreWriter(store_dsn, spool, today=lambda: TODAY)
    assert again.close() == 0
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(10,)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(20,)]


def test_far_off_timestamps_go_to_the_default_partition_with_a_warning(store_dsn, tmp_path, caplog):
    writer = _writer(store_dsn, tmp_path)
    with caplog.at_level(logging.WARNING, "voiplog.store"), writer:
        writer.put(call("1970-01-01T00:00:01Z"))
        writer.put(call("2099-06-01T00:00:00Z", 1))
    assert "far outside the partition window" in caplog.text
    assert query(store_dsn, "SELECT count(*) FROM cdr_default") == [(2,)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr_default") == [(4,)]


def test_a_day_made_later_takes_its_rows_out_of_the_default_partition(store_dsn, tmp_path):
    writer = _writer(store_dsn, tmp_path, accept_past_days=1)
    with writer:
        writer.put(call("2026-01-01T12:00:00Z"))
    assert query(store_dsn, "SELECT count(*) FROM cdr_default") == [(1,)]
    query(store_dsn, "SELECT voiplog_ensure_day_partitions('2026-01-01')")
    assert query(store_dsn, "SELECT tableoid::regclass::text FROM cdr") == [("cdr_p20260101",)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr_p20260101") == [(2,)]


def test_a_new_day_is_made_while_other_sessions_read_the_records(store_dsn, tmp_path):
    """Readers (a seal, a lawful-access run, an export) hold their locks on the record
    tables until they end: a day made meanwhile must not wait for them, nor make the
    writers wait behind it (migration 0015)."""
    with _writer(store_dsn, tmp_path) as writer:
        writer.put(call("2026-03-01T10:00:00Z"))
        writer.put_dict(registration("2026-03-01T10:00:00Z"))
    reader = psycopg2.connect(store_dsn)  # a transaction left open, as a long read is
    with reader.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM cdr WHERE started_at >= '2026-03-01' AND started_at < '2026-03-02'")  # fmt: skip
        cursor.execute("SELECT count(*) FROM registration WHERE requested_at >= '2026-03-01' AND requested_at < '2026-03-02'")  # fmt: skip
    try:
        # A day no partition was made for yet (it is past the writer's window ahead).
        late = _writer(store_dsn, tmp_path / "late", lock_timeout_s=2.0, partitions_ahead_days=30)
        late.put(call("2026-03-20T09:00:00Z", 1))
        late.put_dict(registration("2026-03-20T09:00:00Z", 1))
        late.spool.seal()
        # No lock of its waited for 2 s (its lock timeout), or it would have failed.
        assert late.drain_once(), "the writer waited for the reader past its lock timeout"
        late._disconnect(late._link)
        late.spool.close()
    finally:
        reader.close()
    assert query(store_dsn, "SELECT tableoid::regclass::text FROM cdr WHERE started_at >= '2026-03-20'") == [("cdr_p20260320",)]  # fmt: skip
    assert query(store_dsn, "SELECT tableoid::regclass::text FROM registration WHERE requested_at >= '2026-03-20'") == [("registration_p20260320",)]  # fmt: skip


def test_a_writer_running_for_days_keeps_its_partitions_made_a_week_ahead(store_dsn, tmp_path):
    """The days ahead are made by the writer's periodic job as the days pass, not by the
    first batch that needs one (made while that batch waits, at midnight, when the day
    that ended is being sealed)."""
    today = [TODAY]
    spool = Spool(tmp_path / "spool", fsync="never")
    writer = StoreWriter(store_dsn, spool, today=lambda: today[0], partitions_ahead_days=7)
    writer.put(call("2026-03-01T10:00:00Z"))
    spool.seal()
    assert writer.drain_once()

    def days():
        rows = query(store_dsn, "SELECT relname FROM pg_class WHERE relname ~ '^cdr_p[0-9]{8}$'")
        return max(name for (name,) in rows)

    assert days() == "cdr_p20260308"
    today[0] = TODAY + dt.timedelta(days=3)  # three days later, no record of them yet
    assert writer.make_days_ahead()
    assert days() == "cdr_p20260311"
    assert query(store_dsn, "SELECT count(*) FROM pg_class WHERE relname ~ '^registration_p2026031[01]$'") == [(2,)]  # fmt: skip
    writer._disconnect(writer._link)
    spool.close()


# What a partition is made of, by name: columns, constraints, indexes and triggers.
_PARTITION_SHAPE = r"""
SELECT 'column', a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
       || ' storage=' || a.attstorage::text || ' compression=' || a.attcompression::text
       || ' collation=' || a.attcollation || ' default=' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(t)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', c.contype::text || ' ' || pg_get_constraintdef(c.oid)
FROM pg_constraint c WHERE c.conrelid = %(t)s::regclass
UNION ALL
SELECT 'index', regexp_replace(pg_get_indexdef(i.indexrelid), '\S+ ON public\.\S+', 'ON t')
FROM pg_index i WHERE i.indrelid = %(t)s::regclass
UNION ALL
SELECT 'trigger', g.tgname || ' ' || g.tgfoid::regproc::text || ' ' || g.tgtype
FROM pg_trigger g WHERE g.tgrelid = %(t)s::regclass
UNION ALL
SELECT 'partition of', i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = %(t)s::regclass
ORDER BY 1, 2
"""


@pytest.mark.parametrize("table", ["cdr", "registration"])
def test_a_day_made_by_attaching_is_made_as_partition_of_would_make_it(store_dsn, table):
    query(store_dsn, "SELECT voiplog_ensure_day_partitions('2026-04-01')")
    query(store_dsn, f"CREATE TABLE {table}_reference PARTITION OF {table} FOR VALUES FROM ('2026-04-02') TO ('2026-04-03')")  # fmt: skip
    try:
        made = query(store_dsn, _PARTITION_SHAPE, {"t": f"{table}_p20260401"})
        reference = query(store_dsn, _PARTITION_SHAPE, {"t": f"{table}_reference"})
    finally:
        query(store_dsn, f"DROP TABLE {table}_reference")
    assert made == reference
    assert len(made) > 20


def test_values_no_column_can_take_are_kept_aside_and_the_rest_is_stored(store_dsn, tmp_path):
    writer = _writer(store_dsn, tmp_path)
    with writer:
        writer.put(call("2026-03-01T10:00:00Z", 0))
        writer.put(call("2026-03-01T10:00:00Z", 1, caller_ip="not-an-address"))
        writer.put(call("2026-03-01T10:00:00Z", 2))
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(2,)]
    assert writer.records_rejected == 1
    (kept,) = (tmp_path / "spool" / "rejected" / "unstorable.jsonl").read_text().splitlines()
    kept = json.loads(kept)
    assert kept["reason"] == "caller_ip: 'not-an-address' is not an IP address"
    assert kept["record"]["call_id"] == "call-1@test"


def test_rows_the_database_refuses_are_kept_aside_and_the_rest_is_stored(store_dsn, tmp_path):
    from voiplog.store._ingest import render

    good = render(call("2026-03-01T10:00:00Z", 0).to_dict(), None, None)
    bad = bytearray(render(call("2026-03-01T10:00:00Z", 1).to_dict(), None, None))
    bad[16:18] = (3).to_bytes(2, "big")  # the cdr row, after the 16-byte header, claims 3 fields
    spool = Spool(tmp_path / "spool", fsync="never")
    spool.append(good)
    spool.append(bytes(bad))
    spool.close()
    writer = StoreWriter(store_dsn, spool, today=lambda: TODAY)
    assert writer.close() == 0
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(1,)]
    assert writer.records_rejected == 1
    rejected = tmp_path / "spool" / "rejected"
    (reasons,) = rejected.glob("*.reasons")
    assert reasons.read_text().startswith("record 2: ")
    (entries,) = rejected.glob("*.entries")
    assert list(iter_entries(entries.read_bytes())) == [bytes(bad)]


class _Proxy:
    """A TCP relay to Postgres that the test can cut and restore."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.accept_only = None  # accept this many clients, refuse the rest until restored
        self.accepted = 0
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.accept_only is not None and self.accepted >= self.accept_only:
                self.up, self.accept_only = False, None
            if not self.up:
                client.close()
                continue
            self.accepted += 1
            server = socket.create_connection(self.target)
            self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up = False
        for pair in self.pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        self.pairs.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_database_down_mid_stream_then_back_every_record_lands_once(store_dsn, tmp_path):
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    params.update(host="127.0.0.1", port=str(proxy.port))
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    spool = Spool(tmp_path / "spool", fsync="batch", segment_bytes=2048)
    writer = StoreWriter(dsn, spool, today=lambda: TODAY, seal_interval_s=0.05).start()
    try:
        for n in range(100):
            writer.put(call("2026-03-01T10:00:00Z", n))
        _wait(lambda: query(store_dsn, "SELECT count(*) FROM cdr")[0][0] == 100)
        proxy.cut()
        for n in range(100, 300):
            writer.put(call("2026-03-01T10:00:00Z", n))
        _wait(lambda: not writer.healthy)
        time.sleep(0.3)
        assert spool.pending_records() > 0  # piling up while the database is away
        assert query(store_dsn, "SELECT count(*) FROM cdr")[0][0] < 300
        proxy.restore()
        for n in range(300, 350):
            writer.put(call("2026-03-01T10:00:00Z", n))
    finally:
        left = writer.close(drain_timeout_s=60)
        proxy.close()
    assert left == 0
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(350, 350)]
    assert query(store_dsn, "SELECT sum(cardinality(media)) FROM cdr") == [(700,)]


def test_records_stay_spooled_when_the_database_never_comes_back(store_dsn, tmp_path):
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    proxy.cut()
    params.update(host="127.0.0.1", port=str(proxy.port))
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    try:
        spool = Spool(tmp_path / "spool", fsync="always")
        writer = StoreWriter(dsn, spool, today=lambda: TODAY).start()
        for n in range(5):
            writer.put(call("2026-03-01T10:00:00Z", n))
        assert writer.close(drain_timeout_s=0.5) == 5
        # the next start, the database back, stores them
        proxy.restore()
        later = StoreWriter(dsn, Spool(tmp_path / "spool"), today=lambda: TODAY)
        assert later.close() == 0
    finally:
        proxy.close()
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(5,)]


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _lookup_indexes(dsn):
    # The look-up indexes of each partition; the partial index of linked B2BUA legs
    # (migration 0009) is on every partition, today's too, and is not one of them.
    return query(
        dsn,
        """
        SELECT c.relname, count(n.relname) FILTER (WHERE n.relname LIKE '%%\\_idx' AND x.indpred IS NULL)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        LEFT JOIN pg_index x ON x.indrelid = c.oid LEFT JOIN pg_class n ON n.oid = x.indexrelid
        WHERE i.inhparent = 'cdr'::regclass GROUP BY 1 ORDER BY 1
        """,
    )


def test_days_that_are_over_are_indexed_and_today_is_not(store_dsn, tmp_path):
    records = [call("2026-02-27T10:00:00Z", 0), call("2026-03-01T10:00:00Z", 1)]
    writer = _writer(store_dsn, tmp_path)
    with writer:
        for record in records:
            writer.put(record)
    indexes = dict(_lookup_indexes(store_dsn))
    # The writer indexed the day of the replayed record as it closed; today stays bare.
    assert indexes["cdr_p20260227"] == 3
    assert indexes["cdr_p20260228"] == 3
    assert indexes["cdr_p20260301"] == 0
    assert indexes["cdr_default"] == 3
    assert writer.index_closed_days() == 0  # nothing left to do
    # Questions by number use the index where there is one and find both days.
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # the partitions are tiny
        cursor.execute("SELECT count(*) FROM cdr WHERE caller = '+4930111'")
        assert cursor.fetchone() == (2,)
        cursor.execute("EXPLAIN SELECT * FROM cdr WHERE caller = '+4930111'")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "cdr_p20260227_caller_idx" in plan


def test_a_day_missing_one_lookup_index_gets_it_back(store_dsn, tmp_path):
    # Besides its three look-up indexes, every partition has the partial index of
    # linked B2BUA legs (`..._expr_idx`): it must not count for a missing one.
    writer = _writer(store_dsn, tmp_path)
    with writer:
        writer.put(call("2026-02-27T10:00:00Z", 0))
    assert dict(_lookup_indexes(store_dsn))["cdr_p20260227"] == 3
    query(store_dsn, "DROP INDEX cdr_p20260227_callee_idx")
    assert dict(_lookup_indexes(store_dsn))["cdr_p20260227"] == 2
    assert writer.index_closed_days() == 1
    assert dict(_lookup_indexes(store_dsn))["cdr_p20260227"] == 3
    assert writer.index_closed_days() == 0


def test_a_late_record_lands_in_an_indexed_day(store_dsn, tmp_path):
    writer = _writer(store_dsn, tmp_path)
    with writer:
        writer.put(call("2026-02-27T10:00:00Z", 0))
    late = call("2026-02-27T11:00:00Z", 1, caller="+4930999")
    with _writer(store_dsn, tmp_path) as writer:
        writer.put(late)
    found = query(store_dsn, "SELECT uid FROM cdr WHERE caller = '+4930999'")
    assert found == [(late.uid,)]
