"""`voiplog replay` into the store under real faults: a database that stalls mid-drain
and a SIGTERM, SIGKILL at random moments. Every record is stored exactly once in the
end; none is lost, and what is left in the spool is counted."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.pcapwriter import write_pcap
from tests.sipcraft import T0, make_dialog, sorted_frames
from tests.store._faults import StallingRelay
from tests.store.conftest import query
from voiplog.store.spool import Spool

pytestmark = pytest.mark.postgres

CALLS = 2000


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """2,000 answered calls, and their records in the order replay makes them."""
    directory = tmp_path_factory.mktemp("capture")
    dialogs = []
    for n in range(CALLS):
        dialog = make_dialog(n + 1)
        dialog.basic_answered(T0 + n * 20_000, talk_s=0.1, rtp=False)
        dialogs.append(dialog)
    path = directory / "calls.pcap"
    write_pcap(path, sorted_frames(*dialogs))
    made = subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--no-progress", "--store", "none"],
        capture_output=True,
        check=True,
    )
    uids = [json.loads(line)["uid"] for line in made.stdout.splitlines()]
    assert len(uids) == CALLS
    return path, uids


def _env(dsn, spool, **store):
    env = {
        **os.environ,
        "VOIPLOG_DATABASE_URL": dsn,
        "VOIPLOG_STORE__SPOOL_DIR": str(spool),
        "VOIPLOG_STORE__SPOOL_SEGMENT_BYTES": "65536",
    }
    env.update({f"VOIPLOG_STORE__{key.upper()}": str(value) for key, value in store.items()})
    return env


def _replay(path, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _drain(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiplog", "db", "drain"], env=env, capture_output=True, check=False
    )


def _stored_uids(dsn) -> list[str]:
    return [uid for (uid,) in query(dsn, "SELECT uid FROM cdr")]


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_sigterm_with_the_database_stalled_mid_drain_ends_in_time_and_keeps_all(
    store_dsn, tmp_path, capture
):
    path, uids = capture
    relay = StallingRelay(store_dsn)
    env = _env(relay.dsn, tmp_path / "spool", drain_timeout_s=3)
    try:
        proc = _replay(path, env)
        try:
            _wait(lambda: query(store_dsn, "SELECT count(*) FROM cdr")[0][0] > 0)
            relay.stall()  # the drainers' connections stay open; nothing comes back
            time.sleep(0.2)
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
            took_s = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        relay.close()
    stderr = stderr.decode()
    print(f"replay: SIGTERM to exit with the database stalled: {took_s:.2f} s\n{stderr}")
    assert proc.returncode == 1, stderr
    assert took_s < 3 + 1.5
    kept = re.search(r"(\d+) records stored, (\d+) kept in the spool", stderr)
    assert kept, stderr
    left = int(kept.group(2))
    assert left > 0
    assert Spool(tmp_path / "spool").pending_records() == left
    made = re.search(r"([\d,]+) records made and kept", stderr)
    made = int(made.group(1).replace(",", "")) if made else CALLS  # stopped while draining
    # The database answering again: the spool is drained, then the rest replayed.
    direct = _env(store_dsn, tmp_path / "spool")
    drained = _drain(direct)
    assert drained.returncode == 0, drained.stderr
    stored = _stored_uids(store_dsn)
    assert len(stored) == len(set(stored)) == made
    assert set(stored) == set(uids[:made])  # the records made first, none missing
    again = _replay(path, direct)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert sorted(_stored_uids(store_dsn)) == sorted(uids)


def test_sigkill_at_random_moments_loses_nothing_and_stores_each_record_once(
    store_dsn, tmp_path, capture
):
    path, uids = capture
    env = _env(store_dsn, tmp_path / "spool")
    started = time.monotonic()
    full = _replay(path, _env(store_dsn, tmp_path / "timing"))
    _, stderr = full.communicate(timeout=120)
    assert full.returncode == 0, stderr
    run_s = time.monotonic() - started
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    counts = []
    for run in range(20):
        query(store_dsn, "TRUNCATE cdr")
        proc = _replay(path, env)
        time.sleep(rng.uniform(0.3 * run_s, run_s))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        if run == 19:
            break  # the last run's spool is left for the replay below to drain
        drained = _drain(env)
        assert drained.returncode == 0, drained.stderr
        stored = _stored_uids(store_dsn)
        # Each record once, and what the run stored is the records made first:
        # a record is only ever lost from the end, before it was acknowledged.
        assert len(stored) == len(set(stored))
        assert set(stored) == set(uids[: len(stored)]), f"seed {seed}"
        counts.append(len(stored))
    print(
        f"SIGKILL after {0.3 * run_s:.1f}-{run_s:.1f} s (seed {seed}): records stored after each {counts}"
    )
    # The capture replayed again over what the last run left: all of it, once.
    final = _replay(path, env)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    stored = _stored_uids(store_dsn)
    assert len(stored) == len(set(stored)) == CALLS
    assert set(stored) == set(uids)


def test_a_second_sigterm_ends_replay_at_once_and_the_spool_keeps_the_records(tmp_path):
    from tests.store.test_replay_db import _capture

    path = _capture(tmp_path)
    env = _env("host=127.0.0.1 port=1 dbname=x user=x", tmp_path / "spool", drain_timeout_s=60)
    proc = _replay(path, env)
    try:
        # Sealed: the replay is past its reading, storing what it made.
        _wait(lambda: list((tmp_path / "spool").glob("seg-*.ready")), timeout=30)
        proc.send_signal(signal.SIGTERM)  # waits for the database, up to 60 s
        time.sleep(0.5)
        assert proc.poll() is None
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        took_s = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGTERM
    assert took_s < 2
    assert Spool(tmp_path / "spool").pending_records() == 15
