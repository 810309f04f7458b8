"""`voiplog replay` into the store: the same records as its JSON lines, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2
import pytest

from tests.pcapwriter import write_pcap
from tests.sipcraft import T0, make_dialog, make_registration, sorted_frames
from tests.store.conftest import query
from voiplog.store.read import iter_records, iter_registrations

pytestmark = pytest.mark.postgres


def _capture(tmp_path):
    dialogs = []
    for n in range(12):
        d = make_dialog(100 + n)
        start = T0 + n * 7_000_000
        if n % 2 == 0:
            d.basic_answered(start, talk_s=1.0)
        else:
            d.invite(start)
            d.response(start + 50_000, 180)
            d.response(start + 2_000_000, 486)
            d.ack(start + 2_010_000)
        dialogs.append(d)
    for n in range(3):  # registrations, one challenged and retried
        reg = make_registration(n + 1)
        start = T0 + n * 5_000_000
        reg.register(start, 1)
        reg.reply(start + 20_000, 401, 1)
        reg.register(start + 40_000, 2, auth_user=reg.user)
        reg.reply(start + 60_000, 200, 2, contacts=[reg.default_contact() + ";expires=600"])
        dialogs.append(reg)
    frames = sorted_frames(*dialogs)
    path = tmp_path / "calls.pcap"
    write_pcap(path, frames)
    return path


def _replay(path, tmp_path, env, *extra):
    options = [e for e in extra if e in ("--log-level", "info")]
    extra = [e for e in extra if e not in options]
    return subprocess.run(
        [sys.executable, "-m", "voiplog", *options, "replay", str(path), "--no-progress", *extra],
        capture_output=True,
        env=env,
        check=False,
    )


# Segments drained from the COPY streams kept as they were spooled (the
# default), or all read back from their files.
@pytest.mark.parametrize("memo_bytes", [None, "0"], ids=["memos", "files"])
def test_replay_into_the_store_equals_jsonl_and_twice_changes_nothing(
    store_dsn, tmp_path, memo_bytes
):
    import os

    path = _capture(tmp_path)
    env = {**os.environ, "VOIPLOG_DATABASE_URL": store_dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool")}  # fmt: skip
    if memo_bytes is not None:
        env["VOIPLOG_STORE__SPOOL_MEMO_BYTES"] = memo_bytes
    jsonl = _replay(path, tmp_path, env, "--store", "none", "--jsonl", "-")
    assert jsonl.returncode == 0, jsonl.stderr
    expected = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(expected) == 15

    first = _replay(path, tmp_path, env)  # --store db is the default
    assert first.returncode == 0, first.stderr
    with psycopg2.connect(store_dsn) as connection:
        stored = list(iter_records(connection)) + list(iter_registrations(connection))
    assert sorted(stored, key=lambda r: r["uid"]) == sorted(expected, key=lambda r: r["uid"])
    assert query(store_dsn, "SELECT count(*), min(result) FROM registration") == [(3, "registered")]
    before = query(store_dsn, "SELECT uid, stored_at, xmin::text FROM cdr ORDER BY uid")

    both = _replay(path, tmp_path, env, "--jsonl", str(tmp_path / "again.jsonl"))
    assert both.returncode == 0, both.stderr
    assert query(store_dsn, "SELECT uid, stored_at, xmin::text FROM cdr ORDER BY uid") == before
    again = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert again == expected


def test_database_unreachable_mid_replay_then_back_every_record_lands_once(store_dsn, tmp_path):
    import os
    import threading

    from tests.store.test_writer import _Proxy

    path = _capture(tmp_path)
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    # The schema check at start goes through; then the database is away for 3 s.
    proxy.accept_only = 1
    threading.Timer(3.0, proxy.restore).start()
    params.update(host="127.0.0.1", port=str(proxy.port))
    env = {
        **os.environ,
        "VOIPLOG_DATABASE_URL": " ".join(f"{k}={v}" for k, v in params.items()),
        "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool"),
    }
    try:
        result = _replay(path, tmp_path, env, "--log-level", "info")
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert b"unusable" in result.stderr and b"is back" in result.stderr
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(12, 12)]
    assert query(store_dsn, "SELECT count(*) FROM registration") == [(3,)]


def test_records_wait_in_the_spool_for_a_database_down_at_start(store_dsn, tmp_path):
    import os

    from click.testing import CliRunner

    from tests.store.test_writer import _Proxy
    from voiplog.cli.main import cli

    path = _capture(tmp_path)
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    proxy.cut()  # the database is down
    params.update(host="127.0.0.1", port=str(proxy.port))
    dsn = " ".join(f"{k}={v}" for k, v in params.items())
    down = {
        **os.environ,
        "VOIPLOG_DATABASE_URL": dsn,
        "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool"),
        "VOIPLOG_STORE__DRAIN_TIMEOUT_S": "0.5",
    }
    try:
        result = _replay(path, tmp_path, down)
        assert result.returncode == 1
        assert b"cannot connect to database" in result.stderr
        assert b"0 records stored, 15 kept in the spool" in result.stderr
        # Back: `voiplog db drain` stores them, once.
        proxy.restore()
        env = {"VOIPLOG_DATABASE_URL": dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool")}
        result = CliRunner().invoke(cli, ["db", "drain"], env=env)
    finally:
        proxy.close()
    assert result.exit_code == 0, result.output
    assert "15 records stored, 0 left" in result.output
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(12,)]
    assert query(store_dsn, "SELECT count(*) FROM registration") == [(3,)]


def test_the_summary_ends_with_where_the_records_went(store_dsn, tmp_path):
    path = _capture(tmp_path)
    env = {**os.environ, "VOIPLOG_DATABASE_URL": store_dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool")}  # fmt: skip
    jsonl = tmp_path / "out.jsonl"
    result = _replay(path, tmp_path, env, "--summary", "--jsonl", str(jsonl))
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    records = len(jsonl.read_text().splitlines())
    dbname = psycopg2.extensions.parse_dsn(store_dsn)["dbname"]
    assert f"voiplog: {records:,} records stored in database " in stderr
    assert f"/{dbname}" in stderr
    assert f"voiplog: records as JSON lines on {jsonl}" in stderr
