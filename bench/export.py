"""Evidence export of 100,000 records: `voiplog export` end to end, and where its time goes.

    python bench/export.py [--records 100000] [--dsn postgresql://...] [--zip] [--keep]

Fills a scratch database with generate_series in SQL (the typed rows the
writer stores: two media streams and a subscriber per call) so that one
subscriber has `--records` calls over a week among as many calls of others,
registers a request for that subscriber with room for all of them, marks it
approved (the benchmark is one login; the approval is written as a second
person's, as bench/access_lookup.py does) and runs it once, so that it is
`disclosed`. The days are sealed, signed, as the writer seals them once they
are over, so that every record comes with its inclusion proof. Then it times:

- `voiplog export ID --out DIR` as a new process, end to end (start-up, the
  audited read through `voiplog_request_run_proven` with each record's
  proof, the CSV tables, report.html, RFC 8785 manifest, CMS signature, the
  export audit row, writing the files), three times, best and median;
- the same steps one by one in this process, once, to show where the time
  goes;
- `voiplog export verify DIR` as a new process.

Target: the export of 100,000 records in under 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.access_lookup import approved_request
from voiplog import __version__
from voiplog.export import bundle, columns, report, signing
from voiplog.store import access, migrate, proof_check, seal
from voiplog.store.database import connect, make_engine

DEFAULT_DSN = os.environ.get("VOIPLOG_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "voiplog_bench_export"
TARGET = "sub-bench"
TARGET_SECONDS = 30.0

FILL = """
INSERT INTO cdr (uid, started_at, kind, call_id, caller, callee, caller_uri, callee_uri,
    request_uri, caller_ip, caller_port, callee_ip, callee_port, transport, subscriber_ip,
    direction, ringing_at, answered_at, ended_at, duration_s, setup_ms, disposition,
    final_status, ended_by, user_agent, flags, version, media, subscriber)
SELECT 'e' || %(tag)s || '-' || i, t, 'sip', i || '-' || %(tag)s || '@bench', a, b,
    'sip:' || a || '@ims.example.net', 'sip:' || b || '@ims.example.net',
    'sip:' || b || '@ims.example.net;user=phone', ip, 5060, '192.0.2.10', 5060, 'udp', ip,
    'outbound', t + interval '1 s', t + interval '3 s', t + interval '3 s' + d, extract(epoch FROM d),
    1000, 'answered', 200, 'caller', 'Bench/1.0', '{}', 1,
    ARRAY[ROW(ip, 40002, '192.0.2.20'::inet, 20000, i, 8, 'PCMA', 3000, 0, 1.5, 0.5,
              t + interval '3 s', t + interval '3 s' + d)::media_stream,
          ROW('192.0.2.20'::inet, 20000, ip, 40002, i + 1, 8, 'PCMA', 3000, 0, 1.5, 0.5,
              t + interval '3 s', t + interval '3 s' + d)::media_stream],
    ROW(%(subscriber)s, 'acc-1', 'line-1', 'pop1', '{"site": "bench"}'::jsonb)::subscriber_info
FROM generate_series(1, %(calls)s) AS i,
LATERAL (SELECT
    %(start)s::timestamptz + (i::float8 / %(calls)s) * %(span)s::interval AS t,
    '+9122' || lpad(((i::bigint * 7919) %% 10000000)::text, 8, '0') AS a,
    '+9122' || lpad(((i::bigint * 6271 + 17) %% 10000000)::text, 8, '0') AS b,
    %(ip)s::inet AS ip,
    make_interval(secs => 20 + (i %% 300)) AS d) g
"""


def database_dsn(dsn: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["dbname"] = DATABASE
    return " ".join(f"{k}={v}" for k, v in params.items())


def fill(dsn: str, start: dt.date, records: int) -> None:
    connection = connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for k in range(9):
            cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (start + dt.timedelta(days=k),))  # fmt: skip
        for tag, subscriber, ip in (("t", TARGET, "198.18.7.7"), ("o", "sub-other", "198.18.9.9")):
            started = time.perf_counter()
            cursor.execute(FILL, {"tag": tag, "subscriber": subscriber, "ip": ip, "calls": records, "start": start.isoformat(), "span": "7 days"})  # fmt: skip
            print(f"  {records:,} calls of {subscriber} in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        cursor.execute("SELECT voiplog_index_closed_days(%s)", (start + dt.timedelta(days=8),))
        cursor.execute("VACUUM ANALYZE cdr")
    connection.close()


def disclosed_request(connection, start: dt.date, records: int) -> int:
    """A request for the target subscriber, approved (as bench/access_lookup.py does) and run."""
    window = (start.isoformat(), (start + dt.timedelta(days=8)).isoformat())
    request_id = approved_request(connection, [{"type": "subscriber", "value": TARGET}], window, max_records=records)  # fmt: skip
    result = access.run(connection, request_id, "bench", "bench", count_only=False)
    connection.commit()
    assert result.ok and result.status["records"] == records, result.status
    return request_id


def timed(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def steps(dsn: str, request_id: int, signer: signing.Signer, out: Path) -> dict[str, float]:
    """The export's steps in this process, each timed."""
    figures = {}
    connection = connect(dsn)
    t0 = time.perf_counter()
    result = access.run(connection, request_id, "bench", "bench")
    figures["read (voiplog_request_run)"] = time.perf_counter() - t0
    connection.rollback()
    t0 = time.perf_counter()
    result = access.run(connection, request_id, "bench", "bench", proofs=True)
    figures["read with the proofs (voiplog_request_run_proven)"] = time.perf_counter() - t0
    assert all("path" in p for p in result.proofs), [p for p in result.proofs if "path" not in p][
        :3
    ]
    (request,) = access.requests(connection, request_id=request_id)
    connection.rollback()
    connection.close()
    zone = ZoneInfo("Asia/Kolkata")
    t0 = time.perf_counter()
    bundle.records_jsonl(result.records)
    figures["records.jsonl"] = time.perf_counter() - t0
    for name, (table, rows) in columns.TABLES.items():
        t0 = time.perf_counter()
        columns.write_csv(table, rows(result.records, zone))
        figures[name] = time.perf_counter() - t0
    facts = bundle.RunFacts(dt.datetime.now(dt.UTC), "bench", "bench", "bench", 1, len(result.records), False, [], None)  # fmt: skip
    producer = bundle.Producer(f"voiplog {__version__}", "pop1", "sensor", zone.key)
    t0 = time.perf_counter()
    files = bundle.build(request, result.records, facts, producer, dt.datetime.now(dt.UTC), signer, proofs=result.proofs)  # fmt: skip
    figures["whole bundle in memory"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    checked = bundle.verify(files)
    proven = proof_check.check_bundle(files)
    figures["verify, its proofs checked"] = time.perf_counter() - t0
    assert checked.ok and not proven.problems, (checked.problems + proven.problems)[:3]
    assert proven.proven == len(result.records), proven.unproven[:3]
    t0 = time.perf_counter()
    report.render(json.loads(files[bundle.MANIFEST]), result.records)
    figures["report.html alone"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bundle.write(files, out)
    figures["write"] = time.perf_counter() - t0
    figures["bundle bytes"] = sum(len(data) for data in files.values())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--zip", action="store_true", help="export to a zip instead of a directory")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    admin = psycopg2.connect(args.dsn)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    dsn = database_dsn(args.dsn)
    work = Path(tempfile.mkdtemp(prefix="voiplog-bench-export-"))
    try:
        engine = make_engine(dsn)
        migrate.upgrade(engine)
        engine.dispose()
        start = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)
        print(f"filling 2 x {args.records:,} calls")
        fill(dsn, start, args.records)
        key_pem, cert_pem = signing.new_key_and_certificate("bench", None, 2, dt.datetime.now(dt.UTC))  # fmt: skip
        (work / "key.pem").write_bytes(key_pem)
        (work / "cert.pem").write_bytes(cert_pem)
        connection = connect(dsn)
        started = time.perf_counter()
        sealed = seal.seal_closed_days(connection, start + dt.timedelta(days=9), signing.load_signer(work / "key.pem", work / "cert.pem"))  # fmt: skip
        print(f"  {len(sealed)} days sealed in {time.perf_counter() - started:.1f} s", flush=True)
        request_id = disclosed_request(connection, start, args.records)
        connection.close()
        env = os.environ | {
            "VOIPLOG_DATABASE_URL": dsn,
            "VOIPLOG_SIGNING_KEY": str(work / "key.pem"),
            "VOIPLOG_SIGNING_CERT": str(work / "cert.pem"),
            "VOIPLOG_LOCAL_ZONE": "Asia/Kolkata",
        }
        cli = [sys.executable, "-m", "voiplog"]
        suffix = ".zip" if args.zip else ""
        times = []
        for n in range(3):
            out = work / f"bundle-{n}{suffix}"
            times.append(timed([*cli, "export", str(request_id), "--out", str(out)], env))
            print(f"  export {n + 1}: {times[-1]:.2f} s", flush=True)
        verify_s = timed([*cli, "export", "verify", str(work / f"bundle-0{suffix}")], env)
        signer = signing.load_signer(work / "key.pem", work / "cert.pem")
        breakdown = steps(dsn, request_id, signer, work / "steps")
        print(f"export of {args.records:,} records: best {min(times):.2f} s, median {statistics.median(times):.2f} s (target < {TARGET_SECONDS:.0f} s)")  # fmt: skip
        print(f"verify: {verify_s:.2f} s")
        for name, value in breakdown.items():
            print(
                f"  {name}: {value:,.0f}" if name == "bundle bytes" else f"  {name}: {value:.2f} s"
            )
        print(json.dumps({"records": args.records, "export_best_s": round(min(times), 2), "export_median_s": round(statistics.median(times), 2), "verify_s": round(verify_s, 2), "steps": {k: round(v, 3) for k, v in breakdown.items()}}, indent=2))  # fmt: skip
        if min(times) >= TARGET_SECONDS:
            print(f"TARGET MISSED: export took {min(times):.1f} s", file=sys.stderr)
            raise SystemExit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.close()


if __name__ == "__main__":
    main()
