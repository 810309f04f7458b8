"""Proofs for a request spanning many sealed days: paths from the database, or from the leaves.

    python bench/proofs_days.py [--days 7] [--calls-per-day 500000] [--runs 3] [--dsn ...]

Fills a scratch database with --days days of --calls-per-day calls of others
(generate_series in SQL, the rows `bench/export.py` makes) and three calls a day
of one subscriber, seals every day as the writer does once they are over, and
registers an approved request for that subscriber over the whole span. Then it
runs the request with proofs (`voiplog.store.access.run(..., proofs=True)`,
as `voiplog export` reads it) --runs times each way, alternating:

- with the `voiplog_seal` extension at 1.1: the database gives each record's
  place and sibling hashes (`voiplog_merkle_paths`, migration 0016), and sends
  no leaves;
- with the extension dropped: the database sends each day's leaves (32 bytes a
  call) and finds each record's place among the day's keys; the client builds
  each day's tree (as before migration 0016);

and, for comparison, the same run without proofs.

Prints the best and median time of each, per day of the span, and checks that
both give the same proofs. The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.access_lookup import approved_request
from bench.export import FILL
from bench.store_ingest import DEFAULT_DSN, drop_database, scratch_database
from bench.store_seal import _extension
from voiplog.store import access, migrate, seal
from voiplog.store.database import connect, make_engine

TARGET = "sub-bench"
TARGET_CALLS_PER_DAY = 3


def fill(dsn: str, start: dt.date, days: int, calls_per_day: int) -> None:
    connection = connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for k in range(days + 1):
            cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (start + dt.timedelta(days=k),))  # fmt: skip
        # FILL spreads its calls over `span` from `start`: one day at a time here.
        for k in range(days):
            day = (start + dt.timedelta(days=k)).isoformat()
            for tag, subscriber, ip, calls in (
                (f"o{k}", "sub-other", "198.18.9.9", calls_per_day),
                (f"t{k}", TARGET, "198.18.7.7", TARGET_CALLS_PER_DAY),
            ):
                started = time.perf_counter()
                cursor.execute(
                    FILL,
                    {"tag": tag, "subscriber": subscriber, "ip": ip, "calls": calls, "start": day, "span": "23 hours 59 minutes"},
                )  # fmt: skip
                if calls > TARGET_CALLS_PER_DAY:
                    print(f"  {day}: {calls:,} calls in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        cursor.execute("SELECT voiplog_index_closed_days(%s)", (start + dt.timedelta(days=days),))
        cursor.execute("VACUUM ANALYZE cdr")
    connection.close()


def timed_run(dsn: str, request_id: int, proofs: bool = True) -> tuple[float, list[dict]]:
    connection = connect(dsn)
    try:
        started = time.perf_counter()
        result = access.run(connection, request_id, "bench", "bench", proofs=proofs)
        elapsed = time.perf_counter() - started
        connection.commit()
    finally:
        connection.close()
    assert result.ok, result.status
    return elapsed, result.proofs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--calls-per-day", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    args = parser.parse_args()
    name, dsn = scratch_database(args.dsn)
    try:
        migrate.upgrade(make_engine(dsn))
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'voiplog_seal'")
            version = cursor.fetchone()
        connection.close()
        if version != ("1.1",):
            raise SystemExit(
                f"the voiplog_seal extension is {version[0] if version else 'not installed'} "
                "here, not 1.1: run scripts/install-pg-extension first"
            )
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days + 2)
        print(f"filling {args.days} days of {args.calls_per_day:,} calls", flush=True)
        fill(dsn, start, args.days, args.calls_per_day)
        connection = connect(dsn)
        started = time.perf_counter()
        sealed = seal.seal_closed_days(connection, start + dt.timedelta(days=args.days))
        print(f"  {len(sealed)} days sealed in {time.perf_counter() - started:.1f} s", flush=True)
        window = (start.isoformat(), (start + dt.timedelta(days=args.days)).isoformat())
        request_id = approved_request(connection, [{"type": "subscriber", "value": TARGET}], window)  # fmt: skip
        connection.close()
        times: dict[bool | None, list[float]] = {True: [], False: [], None: []}
        proofs: dict[bool, list[dict]] = {}
        for _ in range(args.runs):
            for compiled in (True, False):
                _extension(dsn, compiled)
                elapsed, proofs[compiled] = timed_run(dsn, request_id)
                times[compiled].append(elapsed)
            times[None].append(timed_run(dsn, request_id, proofs=False)[0])
        _extension(dsn, True)
        assert proofs[True] == proofs[False], "the two ways gave other proofs"
        proven = sum("path" in p for p in proofs[True])
        assert proven == args.days * TARGET_CALLS_PER_DAY, proven
        print(f"a request over {args.days} sealed days of {args.calls_per_day:,} calls, {proven} records proven:")  # fmt: skip
        for compiled, label in ((True, "paths from the database (voiplog_seal 1.1)"), (False, "paths from each day's leaves"), (None, "the same run without proofs")):  # fmt: skip
            best, median = min(times[compiled]), statistics.median(times[compiled])
            print(f"  {label}: best {best:.2f} s, median {median:.2f} s ({1000 * median / args.days:.0f} ms a day)")  # fmt: skip
    finally:
        drop_database(args.dsn, name)


if __name__ == "__main__":
    main()
