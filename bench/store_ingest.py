"""Store benchmarks: sustained ingest from spool to Postgres, and dropping a day partition.

    python bench/store_ingest.py [--records 500000] [--dsn postgresql://...]

Builds realistic records (two RTP streams each, as an answered call has),
spools them, then measures how fast the writer drains the spool into a fresh
scratch database (binary COPY into the day being written: primary key in
place, the look-up indexes come when the day is over), in CDRs and media
streams per second, with the 2 cores shared by the drainers and Postgres.

Sustained ingest: the writer drains segments whose COPY streams it kept as it
spooled them, as it does in steady state, where the spool holds a few
segments (spooling, the pipeline's work, is not counted). Catch-up: the same
for a backlog beyond that memory (after an outage), read back from the
segment files. Baseline: Postgres taking the same rows, rendered and split
beforehand, with no writer around it. Then the time to build the day's
look-up indexes, as the writer has it done once the day is over. Then it fills
one day partition with --drop-records CDRs, seals it (as the writer seals a day
that is over) and times `voiplog purge` dropping it, which recomputes the day
against its seal first. The scratch database is dropped at the end.

Targets: >= 100,000 CDRs/s sustained ingest; drop of 1,000,000 CDRs < 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voiplog.cdr import CallRecord, MediaStream, format_ts, make_uid
from voiplog.store import _ingest, migrate
from voiplog.store.database import make_engine
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

DEFAULT_DSN = os.environ.get("VOIPLOG_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_record(rng: random.Random, start_us: int, session_keys: bool = True) -> CallRecord:
    """A realistic answered call; with `session_keys`, as the tracker writes a call
    that is a session of its own (its uid, no link), else as before they existed."""
    caller = f"+4930{rng.randrange(10**7):07d}"
    callee = f"+4989{rng.randrange(10**7):07d}"
    a = f"100.64.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    b = f"198.51.100.{rng.randrange(1, 255)}"
    call_id = uuid.UUID(int=rng.getrandbits(128)).hex + "@" + a
    answered = start_us + 2_500_000
    ended = answered + rng.randrange(5, 600) * 1_000_000
    media = tuple(
        MediaStream(
            src,
            sport,
            dst,
            dport,
            rng.getrandbits(32),
            8,
            "PCMA",
            3000,
            rng.randrange(3),
            round(rng.random() * 20, 3),
            round(rng.random() * 5, 3),
            format_ts(answered),
            format_ts(ended),
        )
        for src, sport, dst, dport in ((a, 40000, b, 20000), (b, 20000, a, 40000))
    )
    uid = make_uid("sip", call_id, start_us, a, 5060)
    return CallRecord(
        uid=uid, kind="sip", call_id=call_id,
        caller=caller, callee=callee, caller_uri=f"sip:{caller}@example.net",
        callee_uri=f"sip:{callee}@example.net", request_uri=f"sip:{callee}@example.net",
        caller_ip=a, caller_port=5060, callee_ip=b, callee_port=5060, transport="udp",
        subscriber_ip=a, direction="outbound", started_at=format_ts(start_us),
        ringing_at=format_ts(start_us + 800_000), answered_at=format_ts(answered),
        ended_at=format_ts(ended), duration_s=(ended - answered) / 1e6, setup_ms=800,
        disposition="answered", final_status=200, ended_by="caller",
        user_agent="ExamplePhone/1.0", media=media, flags=(),
        subscriber={"id": "sub-1", "account": None, "access_line": None, "pop": "bench",
                    "location": {"site": "hall 1"}},
        extra={"session_uid": uid, "session_link": None} if session_keys else {},
    )  # fmt: skip


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def scratch_database(dsn: str) -> tuple[str, str]:
    name = f"voiplog_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    admin.close()
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = name
    return name, " ".join(f"{k}={v}" for k, v in params.items())


def drop_database(dsn: str, name: str) -> None:
    admin = psycopg2.connect(dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


def bench_ingest(
    dsn: str,
    records: int,
    day: dt.date,
    drainers: int,
    segment_mb: int = 8,
    memos: bool = True,
    session_keys: bool = True,
) -> dict:
    rng = random.Random(7)
    base = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e6)
    docs = [make_record(rng, base + i * 80_000, session_keys).to_dict() for i in range(records)]
    directory = tempfile.mkdtemp(prefix="voiplog-bench-spool-")
    try:
        spool = Spool(directory, max_bytes=1 << 40, fsync="batch", segment_bytes=segment_mb << 20)
        # With memos, the writer keeps each segment's COPY streams as it spools
        # them, as it does for the segments waiting in steady state; without,
        # it reads a backlog (after an outage) back from the files.
        memo_bytes = records * 2048 if memos else 0
        writer = StoreWriter(
            dsn, spool, pop="bench", sensor="bench", drainers=drainers, today=lambda: day,
            memo_bytes=memo_bytes,
        )  # fmt: skip
        started = time.perf_counter()
        for doc in docs:
            writer.put_dict(doc)
        spool.close()
        spooled_s = time.perf_counter() - started
        started = time.perf_counter()
        busy_before = _cpu_busy()
        writer.start()  # its drainers take the sealed segments in parallel
        while spool.ready():
            time.sleep(0.01)
        drained_s = time.perf_counter() - started
        busy, total = (a - b for a, b in zip(_cpu_busy(), busy_before, strict=True))
        writer.close(drain_timeout_s=10)  # all drained above: the drainers only stop
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), sum(cardinality(media)) FROM cdr_p{day:%Y%m%d}")
        cdrs, media = cursor.fetchone()
        # The day is over: its look-up indexes are built, as the writer has it done.
        started = time.perf_counter()
        cursor.execute("SELECT voiplog_index_closed_days(%s)", (day + dt.timedelta(days=1),))
        indexed = cursor.fetchone()[0]
        index_s = time.perf_counter() - started
    assert cdrs == records, (cdrs, records)
    assert indexed == 1, indexed
    return {
        "records": records,
        "media_streams": media,
        "spool_s": spooled_s,
        "drain_s": drained_s,
        "cdr_per_s": records / drained_s,
        "media_streams_per_s": media / drained_s,
        "spool_us_per_record": spooled_s / records * 1e6,
        "cpu_busy": busy / total if total else 0.0,
        "index_s": index_s,
    }


def bench_ceiling(
    dsn: str, records: int, day: dt.date, connections: int, session_keys: bool = True
) -> float:
    """CDRs/s of Postgres taking the same rows with no writer around it: the
    records rendered and split beforehand, COPYed 8 MiB at a time, one
    transaction each, over `connections` connections (the baseline)."""
    rng = random.Random(11)
    base = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1e6)
    rendered = [_ingest.render(make_record(rng, base + i * 80_000, session_keys).to_dict(), "bench", "bench")
                for i in range(records)]  # fmt: skip
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (day,))
        cursor.execute("SELECT 'media_stream'::regtype::oid")
        (oid,) = cursor.fetchone()
    per_copy = max(1, (8 << 20) // (len(rendered[0]) or 1))
    streams = [
        _ingest.split(rendered[i : i + per_copy], oid)[0][b"c"] for i in range(0, records, per_copy)
    ]
    sql = _ingest.copy_sql("cdr", _ingest.CDR_COLUMNS)

    def copy(mine: list[bytes]) -> None:
        connection = psycopg2.connect(dsn)
        try:
            for stream in mine:
                with connection.cursor() as cursor:
                    cursor.copy_expert(sql, io.BytesIO(stream), 1 << 20)
                connection.commit()
        finally:
            connection.close()

    threads = [
        threading.Thread(target=copy, args=(streams[n::connections],)) for n in range(connections)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records / (time.perf_counter() - started)


def bench_drop(dsn: str, records: int, day: dt.date) -> dict:
    from voiplog.store import purge

    # Fill the partition straight from SQL: this measures the drop, not the load.
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (day,))
        cursor.execute(
            """
            INSERT INTO cdr (uid, started_at, kind, transport, duration_s, disposition, version,
                             caller, callee, caller_ip, subscriber_ip, media)
            SELECT 'Cdrop' || n, t, 'sip', 'udp', 60.0, 'answered', 1, '+4930' || n,
                   '+4989' || n, '100.64.0.1', '100.64.0.1',
                   ARRAY[ROW('100.64.0.1', 40000, '198.51.100.1', 20000, 1, 8, 'PCMA', 3000, 0,
                             1.0, 0.5, t, t)::media_stream,
                         ROW('198.51.100.1', 20000, '100.64.0.1', 40000, 2, 8, 'PCMA', 3000, 0,
                             1.0, 0.5, t, t)::media_stream]
            FROM generate_series(1, %s) AS n,
                 LATERAL (SELECT %s::timestamptz + n * interval '80 ms' AS t) AS s
            """,
            (records, dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)),
        )
    # The day is over: the writer sealed it (migration 0007) long before its purge.
    from voiplog.store import seal

    connection = psycopg2.connect(dsn)
    seal.seal_closed_days(connection, day + dt.timedelta(days=1))
    connection.close()
    cutoff = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    engine = make_engine(dsn)
    started = time.perf_counter()
    plan = purge.make_plan(engine, cutoff)
    planned_s = time.perf_counter() - started
    started = time.perf_counter()
    done = purge.execute(engine, plan, os_user="bench")
    dropped_s = time.perf_counter() - started
    engine.dispose()
    cdrs = sum(p.rows for p in done.partitions if p.table == "cdr" and p.day == day)
    return {"drop_cdrs": cdrs, "drop_media": 2 * cdrs, "plan_s": planned_s, "drop_s": dropped_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument(
        "--catch-up-records", type=int, default=200_000, help="backlog read back from files"
    )
    parser.add_argument(
        "--ceiling-records", type=int, default=150_000, help="rows COPYed with no writer around"
    )
    parser.add_argument("--drop-records", type=int, default=1_000_000)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--drainers", type=int, default=2, help="parallel drain connections")
    parser.add_argument("--segment-mb", type=int, default=8, help="spool segment size, MiB")
    parser.add_argument(
        "--compare-session-keys",
        action="store_true",
        help="also drain the same records without their session keys (as before migration 0009)",
    )
    args = parser.parse_args()
    name, dsn = scratch_database(args.dsn)
    try:
        migrate.upgrade(make_engine(dsn))
        ingest = bench_ingest(
            dsn, args.records, dt.date(2026, 1, 10), args.drainers, args.segment_mb
        )
        print(
            f"sustained ingest: {ingest['records']} CDRs with {ingest['media_streams']} media streams "
            f"spooled in {ingest['spool_s']:.2f} s ({ingest['spool_us_per_record']:.1f} us/record), "
            f"drained into Postgres in {ingest['drain_s']:.2f} s: "
            f"{ingest['cdr_per_s']:,.0f} CDRs/s, {ingest['media_streams_per_s']:,.0f} media streams/s "
            f"(machine CPU busy {100 * ingest['cpu_busy']:.0f}% while draining); "
            f"the day's look-up indexes then built in {ingest['index_s']:.2f} s "
            f"(ingest and index build together: "
            f"{ingest['records'] / (ingest['drain_s'] + ingest['index_s']):,.0f} CDRs/s)"
        )
        if args.compare_session_keys:
            # Postgres alone (as the baseline below), the records without their
            # session keys (extra NULL, as before migration 0009) and with them,
            # alternately on days of their own; best of three each.
            rates: dict[bool, float] = {False: 0.0, True: 0.0}
            for n in range(6):
                keys = bool(n % 2)
                day = dt.date(2026, 1, 16) + dt.timedelta(days=n)
                rate = bench_ceiling(dsn, args.ceiling_records or 150_000, day, args.drainers, keys)
                rates[keys] = max(rates[keys], rate)
            print(
                f"session keys: Postgres alone took the rows without them at "
                f"{rates[False]:,.0f} CDRs/s, with them at {rates[True]:,.0f} CDRs/s "
                f"({rates[True] / rates[False]:.0%})"
            )
        if args.catch_up_records:
            backlog = bench_ingest(
                dsn, args.catch_up_records, dt.date(2026, 1, 12), args.drainers,
                args.segment_mb, memos=False,
            )  # fmt: skip
            print(
                f"catch-up: a backlog of {backlog['records']} CDRs read back from the spool "
                f"files, drained in {backlog['drain_s']:.2f} s: {backlog['cdr_per_s']:,.0f} CDRs/s "
                f"(machine CPU busy {100 * backlog['cpu_busy']:.0f}%)"
            )
        if args.ceiling_records:
            ceiling = bench_ceiling(dsn, args.ceiling_records, dt.date(2026, 1, 14), args.drainers)
            print(
                f"baseline: Postgres alone took {args.ceiling_records} of the same rows "
                f"(rendered and split beforehand) at {ceiling:,.0f} CDRs/s over "
                f"{args.drainers} connections; sustained ingest reached "
                f"{ingest['cdr_per_s'] / ceiling:.0%} of that"
            )
        drop = bench_drop(dsn, args.drop_records, dt.date(2026, 1, 5))
        print(
            f"purge: a day of {drop['drop_cdrs']:,} CDRs with {drop['drop_media']:,} media streams: "
            f"dry-run plan {drop['plan_s']:.3f} s, purge (re-check under lock, the day "
            "recomputed against its seal, drop) "
            f"{drop['drop_s']:.3f} s"
        )
    finally:
        drop_database(args.dsn, name)


if __name__ == "__main__":
    main()
