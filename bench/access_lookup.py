"""Lawful-access lookups: a number and an IP+port+time over 30 day partitions of 1,000,000 calls.

    python bench/access_lookup.py [--days 30] [--calls-per-day 1000000] [--dsn postgresql://...]
                                  [--keep] [--reuse]

Fills a scratch database with generate_series in SQL (the same typed rows the
writer stores: two media streams and a subscriber per call): `--days` day
partitions of `--calls-per-day` calls each, the last of them today. The days
that are over get their look-up indexes as the writer and the admin have them
built (`voiplog_index_closed_days`, `voiplog_index_uri_users`); today's
partition stays bare and is scanned, as in production. Then it times
requests through the audited path (`voiplog_request_run`, as `voiplog request
run` calls it), each run three times, best and median reported:

- number: one subscriber number, searched as caller, callee and Request-URI
  user in all its spellings, over the whole window (every day);
- ip+port+time: a shared public address, its port and a moment, as a CGNAT
  log gives them.

And prints the plan of each search (EXPLAIN ANALYZE of the query the run
function builds). Disk: about 1 GB per million calls with indexes; check
`df -h` and scale down with --days / --calls-per-day. The database is
dropped at the end unless --keep (and --reuse skips filling a kept one).

Target: each lookup < 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from voiplog.store import access, migrate
from voiplog.store.database import connect, make_engine

DEFAULT_DSN = os.environ.get("VOIPLOG_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "voiplog_bench_access"
TARGET = "+912212345678"
SHARED_IP, SHARED_PORT = "198.18.0.7", 40312

# One day of calls: numbers drawn from ten million, 4096 public (CGNAT)
# addresses with ports spread over them, calls spread over the day.
FILL_DAY = """
INSERT INTO cdr (uid, started_at, kind, call_id, caller, callee, caller_uri, callee_uri,
    request_uri, caller_ip, caller_port, callee_ip, callee_port, transport, subscriber_ip,
    direction, ringing_at, answered_at, ended_at, duration_s, setup_ms, disposition,
    final_status, ended_by, user_agent, flags, version, media, subscriber)
SELECT 'b' || %(day_no)s || '-' || i, t, 'sip', i || '-' || %(day_no)s || '@bench', a, b,
    'sip:' || a || '@ims.example.net', 'sip:' || b || '@ims.example.net',
    'sip:' || b || '@ims.example.net;user=phone', ip, port, '192.0.2.10', 5060, 'udp', ip,
    'outbound', t + interval '1 s', t + interval '3 s', t + interval '3 s' + d, extract(epoch FROM d),
    1000, 'answered', 200, 'caller', 'Bench/1.0', '{}', 1,
    ARRAY[ROW(ip, port + 2, '192.0.2.20'::inet, 20000, i, 8, 'PCMA', 3000, 0, 1.5, 0.5,
              t + interval '3 s', t + interval '3 s' + d)::media_stream,
          ROW('192.0.2.20'::inet, 20000, ip, port + 2, i + 1, 8, 'PCMA', 3000, 0, 1.5, 0.5,
              t + interval '3 s', t + interval '3 s' + d)::media_stream],
    ROW('sub-' || s, 'acc-' || s, 'line-' || s, 'pop1', '{"site": "bench"}'::jsonb)::subscriber_info
FROM generate_series(1, %(calls)s) AS i,
LATERAL (SELECT
    %(day)s::timestamptz + (i::float8 / %(calls)s) * interval '86399 s' AS t,
    '+9122' || lpad(((i::bigint * 7919 + %(day_no)s * 104729) %% 10000000)::text, 8, '0') AS a,
    '+9122' || lpad(((i::bigint * 6271 + %(day_no)s * 15485863) %% 10000000)::text, 8, '0') AS b,
    '198.18.0.0'::inet + (i %% 4096) AS ip,
    1024 + ((i * 31) %% 60000) AS port,
    (i::bigint * 13) %% 1000000 AS s,
    make_interval(secs => 20 + (i %% 300)) AS d) g
"""

# A few calls of the target number and of the shared address+port, among the rest.
TARGETS = """
INSERT INTO cdr (uid, started_at, kind, call_id, caller, callee, request_uri, caller_ip,
    caller_port, callee_ip, callee_port, transport, subscriber_ip, ended_at, duration_s,
    disposition, version, subscriber)
VALUES
    ('t1-' || %(day_no)s, %(day)s::timestamptz + interval '9 h', 'sip', 't1-' || %(day_no)s, %(target)s, '+912299999999', 'sip:+912299999999@x', '198.18.1.1', 5060, '192.0.2.10', 5060, 'udp', '198.18.1.1', %(day)s::timestamptz + interval '9 h 2 min', 120, 'answered', 1, NULL),
    ('t2-' || %(day_no)s, %(day)s::timestamptz + interval '15 h', 'sip', 't2-' || %(day_no)s, '+912288888888', '02212345678', 'sip:02212345678@x', '198.18.1.2', 5060, '192.0.2.10', 5060, 'udp', '198.18.1.2', %(day)s::timestamptz + interval '15 h 1 min', 60, 'answered', 1, NULL)
"""


def admin_connection(dsn: str):
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    return connection


def database_dsn(dsn: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = DATABASE
    return " ".join(f"{k}={v}" for k, v in params.items())


def fill(dsn: str, days: list[dt.date], calls: int) -> None:
    connection = connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for n, day in enumerate(days):
            started = time.perf_counter()
            cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (day,))
            params = {"day": day.isoformat(), "day_no": n, "calls": calls, "target": TARGET}
            cursor.execute(FILL_DAY, params)
            cursor.execute(TARGETS, params)
            print(
                f"  day {day}: {calls:,} calls in {time.perf_counter() - started:.1f} s", flush=True
            )
        started = time.perf_counter()
        cursor.execute("SELECT voiplog_index_closed_days(%s)", (days[-1],))
        cursor.execute("SELECT voiplog_index_uri_users(%s)", (days[-1],))
        cursor.execute("VACUUM ANALYZE cdr")
        print(f"  indexes of the closed days and analyze: {time.perf_counter() - started:.1f} s")
    connection.close()


def approved_request(connection, selectors: list[dict], window, broad=False, max_records=None) -> int:  # fmt: skip
    spec = access.build_spec(
        {
            "max_records": max_records,
            "case": "BENCH",
            "agency": "bench",
            "officer.name": "bench",
            "legal_basis": "bench",
            "authorisation.reference": "bench",
            "authorisation.valid_until": "2999-01-01",
            "window.from": window[0],
            "window.to": window[1],
            "selectors": selectors,
            "broad": broad,
            "region": "IN",
        }
    )
    request_id = access.register(connection, spec, "bench", "bench")
    # The benchmark is one login: the approval is written as a second person's.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE access_request SET state = 'approved', approved_by = 'bench-approver', "
            "approved_os_user = 'bench', approved_at = now() WHERE id = %s",
            (request_id,),
        )
    connection.commit()
    return request_id


def plan(connection, selector: dict, lo: str, hi: str) -> str:
    """EXPLAIN ANALYZE of the cdr part of the search the run function builds."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # as voiplog_request_run runs it
        cursor.execute("SELECT voiplog_access_match(%s, 'cdr')", (json.dumps(selector),))
        condition = cursor.fetchone()[0].replace("%", "%%")  # a literal to psycopg2
        cursor.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT count(*) FROM cdr c "
            f"WHERE c.started_at >= %s::timestamptz - interval '1 day' AND c.started_at < %s "
            f"AND COALESCE(c.ended_at, c.started_at) >= %s AND ({condition})",
            (lo, hi, lo),
        )
        lines = [row[0] for row in cursor.fetchall()]
    connection.rollback()
    return "\n".join(lines)


def summarise(text: str) -> str:
    """The plan's shape: which partitions were reached by index and which scanned."""
    index = sum(1 for line in text.splitlines() if "Index" in line and " on cdr_p" in line)
    seq = [line.strip() for line in text.splitlines() if "Seq Scan on cdr_" in line]
    total = [line.strip() for line in text.splitlines() if line.startswith("Execution Time")]
    return f"{index} index scans of day partitions; scanned: {', '.join(s.split(' on ')[1] for s in seq) or 'none'}; {total[0] if total else ''}"  # fmt: skip


def time_runs(connection, request_id: int, repeat: int = 3) -> tuple[list[float], dict]:
    times = []
    status = {}
    for _ in range(repeat):
        started = time.perf_counter()
        result = access.run(connection, request_id, "bench", "bench", retention_days=None)
        connection.commit()
        times.append(time.perf_counter() - started)
        status = result.status | {"returned": len(result.records)}
        assert result.ok, result.reason
    return times, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls-per-day", type=int, default=1_000_000)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true", help="use a kept database as it is")
    parser.add_argument("--show-plans", action="store_true", help="print the whole plans")
    args = parser.parse_args()

    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=k) for k in range(args.days - 1, -1, -1)]
    admin = admin_connection(args.dsn)
    dsn = database_dsn(args.dsn)
    with admin.cursor() as cursor:
        if not args.reuse:
            cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {DATABASE}")
    try:
        if not args.reuse:
            engine = make_engine(dsn)
            migrate.upgrade(engine)
            engine.dispose()
            print(f"filling {args.days} days x {args.calls_per_day:,} calls")
            fill(dsn, days, args.calls_per_day)
        connection = connect(dsn)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), pg_size_pretty(pg_database_size(current_database())) FROM cdr")  # fmt: skip
            rows, size = cursor.fetchone()
        connection.commit()
        print(f"store: {rows:,} calls in {args.days} day partitions, database {size}")
        window = (days[0].isoformat(), (today + dt.timedelta(days=1)).isoformat())
        middle = days[len(days) // 2]
        at = dt.datetime.combine(middle, dt.time(12, 0, 30), tzinfo=dt.UTC)
        # The call of the shared address and port alive at that moment.
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO cdr (uid, started_at, kind, call_id, caller, callee, caller_ip, caller_port, "
                "callee_ip, callee_port, transport, subscriber_ip, ended_at, duration_s, disposition, version) "
                "VALUES ('t3', %s, 'sip', 't3', '+912277777777', '+912266666666', %s, %s, '192.0.2.10', 5060, "
                "'udp', %s, %s, 90, 'answered', 1) ON CONFLICT DO NOTHING",
                (at - dt.timedelta(seconds=30), SHARED_IP, SHARED_PORT, SHARED_IP, at + dt.timedelta(seconds=60)),
            )  # fmt: skip
        connection.commit()
        cases = [
            ("number", [{"type": "number", "value": "022 1234 5678"}], window),
            (
                "ip+port+time",
                [{"type": "ip", "value": SHARED_IP, "port": SHARED_PORT, "at": at.isoformat()}],
                window,
            ),
        ]
        figures = {}
        for name, selectors, span in cases:
            request_id = approved_request(connection, selectors, span)
            times, status = time_runs(connection, request_id)
            normalised = access.normalise(selectors[0], "IN", None, False)
            text = plan(connection, normalised, span[0], span[1])
            figures[name] = {
                "best_s": round(min(times), 4),
                "median_s": round(statistics.median(times), 4),
                "records": status["returned"],
                "plan": summarise(text),
            }
            print(f"{name}: best {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms, {status['returned']} records")  # fmt: skip
            print(f"  plan: {summarise(text)}")
            if args.show_plans:
                print(text)
        connection.close()
        print(json.dumps({"days": args.days, "calls_per_day": args.calls_per_day, "rows": rows, "size": size, "lookups": figures}, indent=2))  # fmt: skip
        if any(f["best_s"] >= 1.0 for f in figures.values()):
            print("TARGET MISSED: a lookup took 1 s or more", file=sys.stderr)
            raise SystemExit(1)
    finally:
        if not args.keep:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
