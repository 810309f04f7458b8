"""`voiplog run` with its database stalled: SIGTERM ends it in time, SIGKILL loses
nothing acknowledged, and once the database answers every call is stored once.

The database is reached through a relay on a Unix socket in the test's directory
(the daemon runs in a network namespace of its own); stalled, the relay keeps the
connections open and passes nothing, as a hung server or a black-holed path does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.live.conftest import ANSWER_PORT, ROOT
from tests.store._faults import StallingRelay
from tests.store.conftest import query, scratch_dsn, store_dsn  # noqa: F401 (fixtures)
from tests.store.test_spool_disk_full import tiny_fs  # noqa: F401 (fixture)

pytestmark = pytest.mark.postgres

CONFIG = """
pop = "lab"
[calls]
linger_s = 1
"""
CALLS = 30


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _stored_uids(dsn) -> list[str]:
    return [uid for (uid,) in query(dsn, "SELECT uid FROM cdr")]


def _drain(dsn, spool) -> subprocess.CompletedProcess:
    env = {**os.environ, "VOIPLOG_DATABASE_URL": dsn, "VOIPLOG_STORE__SPOOL_DIR": str(spool)}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "voiplog", "db", "drain"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _calls_with_the_database_stalled(lab, store_dsn):  # noqa: F811
    """A daemon storing through a relay that stalls after its first records; the
    relay, the daemon and its records (all of the calls made)."""
    relay = StallingRelay(store_dsn, socket_dir=lab.workdir)
    spool = lab.workdir / "spool"
    env = {"VOIPLOG_DATABASE_URL": relay.dsn, "VOIPLOG_STORE__SPOOL_DIR": str(spool)}
    daemon = lab.start_daemon(CONFIG, env=env, args=("--store", "db"))
    lab.callee("uas_answer.xml", ANSWER_PORT, CALLS)
    time.sleep(0.3)
    lab.call(ANSWER_PORT, 5, hold_ms=300, rate=10)
    _wait(lambda: len(_stored_uids(store_dsn)) >= 5, timeout=15)
    relay.stall()  # the drainers' connections stay open; nothing comes back
    lab.call(ANSWER_PORT, CALLS - 5, hold_ms=300, rate=10)
    records = daemon.wait_for_records(CALLS, timeout=10)
    assert len(records) == CALLS
    return relay, daemon, records, spool


def test_sigterm_with_the_database_stalled_ends_in_time_and_keeps_every_call(
    lab,
    store_dsn,  # noqa: F811
):
    relay, daemon, records, spool = _calls_with_the_database_stalled(lab, store_dsn)
    try:
        stopped = time.monotonic()
        assert daemon.terminate(timeout=15) == 0
        took_s = time.monotonic() - stopped
    finally:
        relay.close()
    log = daemon.err.read_text()
    counts = re.search(r"(\d+) records stored, (\d+) stay in the spool", log)
    print(f"daemon: SIGTERM to exit with the database stalled: {took_s:.2f} s; {counts[0]}")
    assert took_s < 10
    assert int(counts[2]) > 0
    drained = _drain(store_dsn, spool)
    assert drained.returncode == 0, drained.stderr
    stored = _stored_uids(store_dsn)
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(r["uid"] for r in records)


def test_sigkill_with_the_database_stalled_loses_no_call_already_written(
    lab,
    store_dsn,  # noqa: F811
):
    relay, daemon, records, spool = _calls_with_the_database_stalled(lab, store_dsn)
    try:
        # The records reached the JSON lines; the spool seals and syncs on its own
        # clock (every second at most), whatever the stuck drainers do.
        time.sleep(1.5)
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait()
    finally:
        relay.close()
    drained = _drain(store_dsn, spool)
    assert drained.returncode == 0, drained.stderr
    stored = _stored_uids(store_dsn)
    print(f"daemon: SIGKILL with the database stalled: {len(stored)} of {CALLS} calls stored")
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(r["uid"] for r in records)


def test_a_full_disk_under_the_spool_keeps_the_daemon_capturing_and_loses_nothing(
    lab,
    store_dsn,  # noqa: F811
    tiny_fs,  # noqa: F811
):
    """The spool's file system full and the database away: the calls are still
    recorded, the alarm is raised, and once there is room every record is spooled."""
    (tiny_fs / "spool").mkdir(mode=0o700)
    ballast = os.open(tiny_fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(ballast, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(ballast)
    sockets = lab.workdir / "db"  # no server listens here yet: the database is away
    sockets.mkdir()
    relay_dsn = StallingRelay.dsn_at(store_dsn, sockets)
    env = {"VOIPLOG_DATABASE_URL": relay_dsn, "VOIPLOG_STORE__SPOOL_DIR": str(tiny_fs / "spool")}
    daemon = lab.start_daemon(CONFIG, env=env, args=("--store", "db"))
    lab.callee("uas_answer.xml", ANSWER_PORT, 10)
    time.sleep(0.3)
    lab.call(ANSWER_PORT, 10, hold_ms=300, rate=10)
    records = daemon.wait_for_records(10, timeout=10)
    assert len(records) == 10
    daemon.wait_for_log("SPOOL DISK FULL", timeout=5)
    assert daemon.proc.poll() is None  # still capturing
    (tiny_fs / "ballast").unlink()  # room again
    daemon.wait_for_log("room again after", timeout=5)
    assert daemon.terminate(timeout=15) == 0
    assert "Traceback" not in daemon.err.read_text()
    relay = StallingRelay(store_dsn, socket_dir=sockets)  # the database is back
    try:
        drained = _drain(relay.dsn, tiny_fs / "spool")
    finally:
        relay.close()
    assert drained.returncode == 0, drained.stderr
    stored = _stored_uids(store_dsn)
    print(f"daemon: spool's file system full, database away: {len(stored)} of 10 calls stored")
    assert sorted(stored) == sorted(r["uid"] for r in records)
