"""The spool on a file system that fills up (a real, tiny tmpfs): no exception, the
alarm raised, records kept in memory and written once there is room; what the memory
reserve cannot hold is counted and logged, and every other record is stored once."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import time

import psycopg2
import pytest

from tests.store._records import call
from tests.store.conftest import query
from tests.store.test_writer import _Proxy
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.date(2026, 3, 1)
START = "2026-03-01T10:00:00Z"
RECORDS = 1500  # about 1.5 MB spooled: more than the file system holds


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir(mode=0o700)
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def down(store_dsn):
    """A path to the store that the test cuts and restores, and its DSN."""
    params = psycopg2.extensions.parse_dsn(store_dsn)
    proxy = _Proxy(int(params.get("port", 5432)))
    proxy.cut()
    params.update(host="127.0.0.1", port=str(proxy.port))
    try:
        yield proxy, " ".join(f"{k}={v}" for k, v in params.items())
    finally:
        proxy.close()


def _wait(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def test_a_full_file_system_keeps_records_in_memory_until_there_is_room(
    store_dsn, tiny_fs, down, caplog
):
    proxy, dsn = down
    spool = Spool(tiny_fs / "spool", segment_bytes=64 << 10, reserve_bytes=4 << 20)
    writer = StoreWriter(dsn, spool, today=lambda: TODAY, seal_interval_s=0.1).start()
    try:
        with caplog.at_level(logging.WARNING, "voiplog.store"):
            for n in range(RECORDS):
                writer.put(call(START, n))  # never raises: the daemon keeps capturing
            assert spool.disk_full_since is not None
            in_memory = spool.records_in_memory
            assert in_memory > 0
            assert "SPOOL DISK FULL" in caplog.text
            proxy.restore()  # draining makes room; the records in memory follow
            _wait(lambda: query(store_dsn, "SELECT count(*) FROM cdr")[0][0] == RECORDS)
            _wait(lambda: spool.disk_full_since is None)
            assert "room again after" in caplog.text
        left = writer.close(drain_timeout_s=30)
    finally:
        proxy.restore()
    print(f"tmpfs of 1 MiB full: {in_memory} of {RECORDS} records waited in memory, none lost")
    assert left == 0
    assert spool.records_lost == 0
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(RECORDS, RECORDS)]


def test_what_the_memory_reserve_cannot_hold_is_counted_and_the_rest_stored_once(
    store_dsn, tiny_fs, down, caplog
):
    proxy, dsn = down
    spool = Spool(tiny_fs / "spool", segment_bytes=64 << 10, reserve_bytes=64 << 10)
    writer = StoreWriter(dsn, spool, today=lambda: TODAY, seal_interval_s=0.1).start()
    with caplog.at_level(logging.ERROR, "voiplog.store"):
        for n in range(RECORDS):
            writer.put(call(START, n))
        left = writer.close(drain_timeout_s=0.5)  # the database is still away
    lost = spool.records_lost
    print(f"tmpfs of 1 MiB full, 64 KiB reserve: {lost} of {RECORDS} lost (counted), {left} kept")
    assert lost > 0
    assert left + lost == RECORDS
    assert f"records could not be written to the spool {spool.directory}" in caplog.text or (
        "records are lost" in caplog.text
    )
    proxy.restore()
    later = StoreWriter(dsn, Spool(tiny_fs / "spool"), today=lambda: TODAY)
    assert later.close() == 0
    assert query(store_dsn, "SELECT count(*), count(DISTINCT uid) FROM cdr") == [(left, left)]


def test_a_spool_that_cannot_be_written_at_all_is_refused_at_start(tiny_fs):
    from voiplog.store.spool_files import SpoolDirError

    (tiny_fs / "spool").mkdir(mode=0o700)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    with pytest.raises(SpoolDirError) as refused:
        Spool(tiny_fs / "spool")
    assert str(refused.value) == (
        f"spool {tiny_fs / 'spool'}: cannot write in it: Read-only file system"
    )


def test_replay_onto_a_full_spool_counts_what_it_could_not_keep(tiny_fs, tmp_path):
    import re
    import sys

    from tests.store.test_replay_db import _capture

    path = _capture(tmp_path)
    (tiny_fs / "spool").mkdir(mode=0o700)
    ballast = os.open(tiny_fs / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # the file system full
        while os.write(ballast, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(ballast)
    env = {
        **os.environ,
        "VOIPLOG_DATABASE_URL": "host=127.0.0.1 port=1 dbname=x user=x",
        "VOIPLOG_STORE__SPOOL_DIR": str(tiny_fs / "spool"),
        "VOIPLOG_STORE__DRAIN_TIMEOUT_S": "0.5",
    }
    result = subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "SPOOL DISK FULL" in result.stderr
    kept = re.search(r"0 records stored, (\d+) kept in the spool", result.stderr)
    kept = int(kept[1]) if kept else 0
    lost = int(re.search(r"voiplog: (\d+) records were lost: the file system", result.stderr)[1])
    print(f"replay onto a full spool: {kept} kept, {lost} lost and counted of 15")
    assert kept + lost == 15
