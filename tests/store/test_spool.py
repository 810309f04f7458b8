"""The durable spool: append, seal, drain order, crash recovery, bound (no database)."""

from __future__ import annotations

import threading

import pytest

from voiplog.store.spool import Spool, SpoolFullError


def test_sealed_segments_come_oldest_first_and_leave_only_when_removed(tmp_path):
    spool = Spool(tmp_path, segment_bytes=20, fsync="always")
    for n in range(5):
        spool.append(b"c\trecord-%d\n" % n)
    spool.seal()
    ready = spool.ready()
    assert len(ready) >= 2
    assert b"".join(p.read_bytes() for p in ready) == b"".join(
        b"c\trecord-%d\n" % n for n in range(5)
    )
    spool.remove(ready[0])
    assert spool.ready() == ready[1:]


def test_a_crash_leaves_the_open_segment_sealed_and_a_torn_last_line_dropped(tmp_path):
    spool = Spool(tmp_path, fsync="always")
    spool.append(b"c\tone\n")
    spool.append(b"c\ttwo\n")
    spool._file.write(b"c\tthr")  # a write cut short by the crash, never acknowledged
    spool._file.flush()
    # no close: the process died
    again = Spool(tmp_path)
    ready = again.ready()
    assert len(ready) == 1
    assert ready[0].read_bytes() == b"c\tone\nc\ttwo\n"
    assert again.pending_records() == 2  # two records of the torn segment


def test_a_full_spool_waits_for_room_and_never_drops(tmp_path):
    spool = Spool(tmp_path, max_bytes=100, segment_bytes=30, fsync="never")
    line = b"c\t" + b"x" * 27 + b"\n"  # 30 bytes: each line seals a segment
    for _ in range(3):
        spool.append(line)
    with pytest.raises(SpoolFullError, match="is full"):
        spool.append(line + line, timeout_s=0.05)

    def drain_later():
        spool.remove(spool.ready()[0])

    timer = threading.Timer(0.1, drain_later)
    timer.start()
    spool.append(line, timeout_s=5)  # waits until the drainer made room
    timer.join()
    spool.close()
    assert spool.pending_records() == 3


def test_unknown_fsync_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fsync policy 'sometimes'"):
        Spool(tmp_path, fsync="sometimes")


def test_batch_policy_syncs_on_tick(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("voiplog.store.spool.os.fsync", lambda fd: synced.append(fd))
    spool = Spool(tmp_path, fsync="batch", fsync_interval_s=0.0)
    spool.append(b"c\tone\n")
    assert spool._unsynced_since is not None
    spool.tick()
    assert synced and spool._unsynced_since is None
