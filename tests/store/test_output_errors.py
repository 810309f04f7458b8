"""Output that cannot be written: one line saying so, exit 1, the records made kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from tests.store.conftest import query
from tests.store.test_replay_db import _capture
from voiplog.cli.main import cli

pytestmark = pytest.mark.postgres


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", "--no-progress", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_jsonl_to_a_full_device_is_one_line_and_the_records_are_stored(store_dsn, tmp_path):
    path = _capture(tmp_path)
    env = {"VOIPLOG_DATABASE_URL": store_dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tmp_path / "spool")}
    result = _run([str(path), "--jsonl", "/dev/full"], env)
    assert result.returncode == 1
    assert result.stderr == (
        "voiplog: /dev/full: cannot write records: No space left on device; "
        "15 records made before\n"
    )
    # The records made still reached the store, whole.
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(12,)]
    assert query(store_dsn, "SELECT count(*) FROM registration") == [(3,)]


def test_jsonl_alone_to_a_full_device_is_one_line(tmp_path):
    path = _capture(tmp_path)
    result = _run([str(path), "--store", "none", "--jsonl", "/dev/full"], {})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("voiplog: /dev/full: cannot write records: No space left")
    assert len(result.stderr.splitlines()) == 1


def test_jsonl_to_a_fifo_no_one_reads_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("voiplog.sinks.jsonl._FIFO_WAIT_S", 0.5)
    path = _capture(tmp_path)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["replay", str(path), "--store", "none", "--jsonl", str(fifo)])
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    assert result.output == (
        f"voiplog: {fifo}: no process opened this FIFO for reading within 0.5 s; "
        "start the reader first\n"
    )


def test_a_capture_fifo_no_one_writes_says_so_and_stops_on_sigterm(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "voiplog", "replay", str(fifo), "--no-progress", "--store", "none"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert proc.poll() is None
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert stderr == (
        f"voiplog: {fifo} is a FIFO: waiting for a process to write into it\n"
        f"voiplog: {fifo}: stopped while no process wrote into it\n"
    )


def test_a_capture_fifo_is_replayed_once_written(tmp_path):
    path = _capture(tmp_path)
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)

    def write_later():
        time.sleep(0.5)
        with open(fifo, "wb") as out:
            out.write(path.read_bytes())

    writer = threading.Thread(target=write_later)
    writer.start()
    result = _run([str(fifo), "--store", "none"], {})
    writer.join()
    assert result.returncode == 0, result.stderr
    assert len([json.loads(line) for line in result.stdout.splitlines()]) == 15
