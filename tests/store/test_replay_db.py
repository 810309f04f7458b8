"""`voiplog replay` into the store: the same records as its JSON lines, once."""

from __future__ import annotations

import json
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
    return subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--no-progress", *extra],
        capture_output=True,
        env=env,
        check=False,
    )


def test_replay_into_the_store_equals_jsonl_and_twice_changes_nothing(store_dsn, tmp_path):
    import os

    path = _capture(tmp_path)
    env = {**os.environ, "VOIPLOG_DATABASE_URL": store_dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool")}  # fmt: skip
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


def test_a_database_that_cannot_be_reached_keeps_the_records_spooled(store_dsn, tmp_path):
    import os

    path = _capture(tmp_path)
    env = {
        **os.environ,
        "VOIPLOG_DATABASE_URL": "host=127.0.0.1 port=1 dbname=x user=x",
        "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool"),
    }
    result = _replay(path, tmp_path, env)
    assert result.returncode == 1
    assert b"cannot connect to database" in result.stderr
