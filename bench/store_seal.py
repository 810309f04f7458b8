"""Store benchmark: sealing and verifying a day, against the time its ingest took.

    python bench/store_seal.py [--records 1000000] [--ab-records 300000] [--dsn postgresql://...]

Ingests --records realistic CDRs of one day as `bench/store_ingest.py` does
(spooled, then drained by the writer into a fresh scratch database; the drain
is timed), then seals that day as the writer does once it is over (the
database hashes each record, the Merkle tree is built and the seal stored
with its leaves), verifies it as `voiplog store verify --day` does
(everything recomputed from the records) and proves one record: first with
the leaves and root the `voiplog_seal` extension computes in C, when the
server has it installed, then with those of the SQL it stands in for (the
extension dropped). Then the floor under any verification of the day: the
extension's leaf of every record computed in parallel and thrown away (no
sort, no tree), and SHA-256 alone over as many bytes, spread over every core.
Then it purges the day as `voiplog purge` does (which
checks the day against its seal first). Then, with
--ab-records, the ingest rate with and without the CHECK constraint that
binds writers to their POP (migration 0007), on the same machine at the same
moment. The scratch database is dropped at the end.

Targets: sealing and verifying a day each take at most 10% of its ingest time;
the purge of a day of 1,000,000 CDRs under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import sys
import time
from importlib import import_module

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.store_ingest import DEFAULT_DSN, bench_ingest, drop_database, scratch_database
from voiplog.store import migrate, purge, seal
from voiplog.store.database import make_engine

_0008 = import_module("voiplog.migrations.versions.0008_seal_leaf_form")
_0011 = import_module("voiplog.migrations.versions.0011_seal_extension")


def _extension(dsn: str, on: bool) -> None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS voiplog_seal" if on else "DROP EXTENSION IF EXISTS voiplog_seal")  # fmt: skip
    connection.close()


def bench_seal(dsn: str, day: dt.date, version: int) -> dict:
    """Seal (as `version`, or nothing new when the day is sealed as it is), verify and
    prove, with whichever leaves the database computes."""
    connection = psycopg2.connect(dsn)
    try:
        started = time.perf_counter()
        count, blob = seal.day_hashes(connection, day.isoformat())
        leaves_s = time.perf_counter() - started
        connection.rollback()
        started = time.perf_counter()
        seal.merkle_root(blob)
        tree_s = time.perf_counter() - started
        started = time.perf_counter()
        sealed = seal.seal_day(connection, day.isoformat(), version)
        seal_s = time.perf_counter() - started
        assert (sealed is None) == (version > 1), sealed
        started = time.perf_counter()
        report = seal.verify(connection, [day.isoformat()], today=day + dt.timedelta(days=1))
        verify_s = time.perf_counter() - started
        assert report.ok and report.records_checked == count, report.findings
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT uid FROM cdr WHERE started_at >= %s ORDER BY started_at LIMIT 1 OFFSET %s",
                (dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC), count // 2),
            )
            (uid,) = cursor.fetchone()
            cursor.execute(seal.EXTENSION_SCHEMA)
            compiled = cursor.fetchone() is not None
        connection.rollback()
        started = time.perf_counter()
        proof = seal.prove(connection, uid)
        prove_s = time.perf_counter() - started
        assert seal.check_proof(proof) is None
    finally:
        connection.close()
    return {
        "leaves": "the voiplog_seal extension" if compiled else "SQL",
        "records": count,
        "leaves_s": leaves_s,
        "tree_s": tree_s,
        "seal_s": seal_s,
        "verify_s": verify_s,
        "prove_s": prove_s,
        "path": len(proof["path"]),
    }


def hashing_floor(dsn: str, day: dt.date) -> dict:
    """What any verification of the day pays before sorting, gathering or a tree: the
    extension's leaf of every record, in parallel, each leaf thrown away; and SHA-256
    alone over as many bytes as the leaves hash (hashlib, the same libcrypto), spread
    over every core."""
    connection = psycopg2.connect(dsn)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    within = "c.started_at >= %s AND c.started_at < %s"
    bounds = (start, start + dt.timedelta(days=1))
    try:
        with connection.cursor() as cursor:
            cursor.execute(seal.EXTENSION_SCHEMA)
            (schema,) = cursor.fetchone()
            # The plan the day functions get (migration 0011): the partition read whole,
            # in parallel.
            for setting in ("jit", "parallel_setup_cost", "parallel_tuple_cost", "enable_bitmapscan",
                            "enable_indexscan"):  # fmt: skip
                cursor.execute(f"SET {setting} = 0")
            # The leaf the day functions compute, as migration 0011 writes it.
            leaf = _0011._leaf("c", _0008.CDR_COLUMNS).replace("%1$I", f'"{schema}"')
            started = time.perf_counter()
            cursor.execute(f"SELECT count({leaf}) FROM cdr c WHERE {within}", bounds)
            (records,) = cursor.fetchone()
            leaves_s = time.perf_counter() - started
            cursor.execute(
                f"SELECT avg(octet_length({_0008.CDR_ROW})) FROM cdr c TABLESAMPLE SYSTEM (2) "
                f"WHERE {within}",
                bounds,
            )
            row_bytes = int(cursor.fetchone()[0]) + 1  # and the leaf's 0x00
        connection.rollback()
    finally:
        connection.close()
    data, rounds = os.urandom(row_bytes), 200_000
    started = time.perf_counter()
    for _ in range(rounds):
        hashlib.sha256(data).digest()
    sha_us = (time.perf_counter() - started) / rounds * 1e6
    cores = os.cpu_count() or 1
    return {
        "records": records,
        "leaves_s": leaves_s,
        "row_bytes": row_bytes,
        "sha_us": sha_us,
        "sha_s": records * sha_us / 1e6 / cores,
        "cores": cores,
    }


def bench_purge(dsn: str, day: dt.date, count: int) -> float:
    engine = make_engine(dsn)
    plan = purge.make_plan(engine, dt.datetime.combine(day, dt.time(), dt.UTC) + dt.timedelta(days=1))  # fmt: skip
    started = time.perf_counter()
    done = purge.execute(engine, plan, "bench")
    purge_s = time.perf_counter() - started
    engine.dispose()
    assert sum(p.rows for p in done.partitions if p.table == "cdr") == count, done
    return purge_s


def _pop_check(dsn: str, on: bool) -> None:
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        for table in ("cdr", "registration"):
            if on:
                cursor.execute(
                    f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_pop_bound "
                    "CHECK (voiplog_pop_bound(inserted_by, pop))"
                )
            else:
                cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_pop_bound")
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--ab-records", type=int, default=300_000)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--drainers", type=int, default=2)
    args = parser.parse_args()
    name, dsn = scratch_database(args.dsn)
    try:
        migrate.upgrade(make_engine(dsn))
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'voiplog_seal'")
            installed = cursor.fetchone() is not None
        connection.close()
        if not installed:
            print("the voiplog_seal extension is not installed on this server "
                  "(scripts/install-pg-extension): leaves by SQL only", flush=True)  # fmt: skip
        day = dt.date(2026, 1, 10)
        ingest = bench_ingest(dsn, args.records, day, args.drainers)
        print(
            f"ingest: {ingest['records']:,} CDRs drained in {ingest['drain_s']:.2f} s "
            f"({ingest['cdr_per_s']:,.0f} CDRs/s, machine CPU busy {100 * ingest['cpu_busy']:.0f}%); "
            f"the day's look-up indexes built in {ingest['index_s']:.2f} s",
            flush=True,
        )
        # With the extension's leaves (when the server has it), then with the SQL's.
        runs = []
        if installed:
            _extension(dsn, True)
            runs.append(bench_seal(dsn, day, 1))
            _extension(dsn, False)
        runs.append(bench_seal(dsn, day, 2 if installed else 1))
        for sealed in runs:
            print(
                f"seal, leaves by {sealed['leaves']}: {sealed['records']:,} records sealed in "
                f"{sealed['seal_s']:.2f} s ({100 * sealed['seal_s'] / ingest['drain_s']:.0f}% of the "
                f"ingest time; its leaves out of Postgres alone {sealed['leaves_s']:.2f} s, a "
                f"Merkle tree over them in Python {sealed['tree_s']:.2f} s); verify "
                f"{sealed['verify_s']:.2f} s ({100 * sealed['verify_s'] / ingest['drain_s']:.0f}%); "
                f"one record's proof {1000 * sealed['prove_s']:.0f} ms ({sealed['path']} siblings)",
                flush=True,
            )
        _extension(dsn, installed)
        if installed:
            floor = hashing_floor(dsn, day)
            print(
                f"floor: the extension's leaf of each of the {floor['records']:,} records, in "
                f"parallel, no sort and no tree: {floor['leaves_s']:.2f} s "
                f"({100 * floor['leaves_s'] / ingest['drain_s']:.0f}% of the ingest time); SHA-256 "
                f"alone of {floor['row_bytes']:,} bytes a record: {floor['sha_us']:.2f} us, "
                f"{floor['sha_s']:.2f} s over {floor['cores']} cores "
                f"({100 * floor['sha_s'] / ingest['drain_s']:.0f}%)",
                flush=True,
            )
        purge_s = bench_purge(dsn, day, runs[0]["records"])
        print(f"purge of the day (its check against the seal first): {purge_s:.2f} s", flush=True)
        if args.ab_records:
            rates = {}
            for checked, when in ((True, dt.date(2026, 1, 12)), (False, dt.date(2026, 1, 14))):
                if not checked:
                    _pop_check(dsn, False)
                rates[checked] = bench_ingest(dsn, args.ab_records, when, args.drainers)
            _pop_check(dsn, True)
            print(
                f"POP binding: {args.ab_records:,} CDRs at {rates[True]['cdr_per_s']:,.0f} CDRs/s "
                f"with its CHECK constraint, {rates[False]['cdr_per_s']:,.0f} CDRs/s without",
                flush=True,
            )
    finally:
        drop_database(args.dsn, name)


if __name__ == "__main__":
    main()
