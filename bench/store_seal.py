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
extension dropped). Then it purges the day as `voiplog purge` does (which
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
import os
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.store_ingest import DEFAULT_DSN, bench_ingest, drop_database, scratch_database
from voiplog.store import migrate, purge, seal
from voiplog.store.database import make_engine


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
