"""The durable spool: append, seal, drain order, crash recovery, bound (no database)."""

from __future__ import annotations

import threading

import pytest

from voiplog.store.spool import Spool, SpoolFullError
from voiplog.store.spool_files import frame, iter_entries


def test_sealed_segments_come_oldest_first_and_leave_only_when_removed(tmp_path):
    spool = Spool(tmp_path, segment_bytes=20, fsync="always")
    for n in range(5):
        spool.append(b"record-%d" % n)
    spool.seal()
    ready = spool.ready()
    assert len(ready) >= 2
    stored = [r for p in ready for r in iter_entries(p.read_bytes())]
    assert stored == [b"record-%d" % n for n in range(5)]
    spool.remove(ready[0])
    assert spool.ready() == ready[1:]


def test_a_crash_leaves_the_open_segment_sealed_and_a_torn_last_entry_dropped(tmp_path):
    spool = Spool(tmp_path, fsync="always")
    spool.append(b"one")
    spool.append(b"two")
    spool._file.write(frame(b"three")[:-2])  # a write cut short by the crash, never acknowledged
    spool._file.flush()
    # no close: the process died
    again = Spool(tmp_path)
    ready = again.ready()
    assert len(ready) == 1
    assert ready[0].read_bytes() == frame(b"one") + frame(b"two")
    assert again.pending_records() == 2


def test_a_damaged_entry_ends_the_segment_where_the_damage_starts(tmp_path):
    spool = Spool(tmp_path, fsync="always")
    spool.append(b"one")
    spool.append(b"two")
    spool._file.flush()
    (path,) = tmp_path.glob("seg-*.open")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # "two" damaged: its CRC no longer matches
    path.write_bytes(bytes(data))
    again = Spool(tmp_path)
    assert [r for p in again.ready() for r in iter_entries(p.read_bytes())] == [b"one"]


def test_a_full_spool_waits_for_room_and_never_drops(tmp_path):
    spool = Spool(tmp_path, max_bytes=100, segment_bytes=30, fsync="never")
    line = b"x" * 22  # 30 bytes with its entry header: each record seals a segment
    for _ in range(3):
        spool.append(line)
    with pytest.raises(SpoolFullError, match="is full"):
        spool.append(line, timeout_s=0.05)

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
    spool.append(b"one")
    assert spool._unsynced_since is not None
    spool.tick()
    assert synced and spool._unsynced_since is None


def test_never_policy_writes_out_on_tick_and_sync_without_fsync(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("voiplog.store.spool.os.fsync", lambda fd: synced.append(fd))
    spool = Spool(tmp_path, fsync="never", fsync_interval_s=0.0)
    synced.clear()  # opening recovers what a crash left, and fsyncs the directory once
    spool.append(b"one")
    spool.tick()
    spool.append(b"two")
    assert spool.sync()
    assert synced == []
    written = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert frame(b"one") in written and frame(b"two") in written


class _Memo:
    def __init__(self):
        self.records = []
        self.size = 0

    def add(self, record):
        self.records.append(record)
        self.size += len(record)
        return len(record)


def test_each_sealed_segment_has_a_memo_of_exactly_its_records(tmp_path):
    spool = Spool(tmp_path, segment_bytes=40, fsync="never")
    spool.keep_memos(_Memo, max_bytes=1 << 20)
    for n in range(9):
        spool.append(b"record-%d" % n)
    spool.seal()
    ready = spool.ready()
    assert len(ready) >= 3
    for segment in ready:
        assert spool.memo(segment).records == list(iter_entries(segment.read_bytes()))
    spool.remove(ready[0])
    assert spool.memo(ready[0]) is None
    assert spool._memo_bytes == sum(spool.memo(p).size for p in ready[1:])


def test_past_the_memory_bound_segments_are_read_from_their_files(tmp_path):
    spool = Spool(tmp_path, segment_bytes=40, fsync="never")
    spool.keep_memos(_Memo, max_bytes=50)
    for n in range(12):
        spool.append(b"record-%02d" % n)  # 9 bytes a record, 3 to 4 a segment
    spool.seal()
    memos = [spool.memo(p) for p in spool.ready()]
    assert memos[0] is not None and memos[-1] is None
    # A segment has its whole memo or none.
    for segment, memo in zip(spool.ready(), memos, strict=True):
        if memo is not None:
            assert memo.records == list(iter_entries(segment.read_bytes()))
    assert spool._memo_bytes <= 50
    for segment in spool.ready():
        spool.remove(segment)
    assert spool._memo_bytes == 0
    spool.append(b"again")  # room again: the next segment has one
    spool.seal()
    assert spool.memo(spool.ready()[0]).records == [b"again"]


def test_a_segment_recovered_after_a_crash_has_no_memo(tmp_path):
    spool = Spool(tmp_path, fsync="always")
    spool.keep_memos(_Memo, max_bytes=1 << 20)
    spool.append(b"one")
    # no close: the process died
    again = Spool(tmp_path)
    again.keep_memos(_Memo, max_bytes=1 << 20)
    (segment,) = again.ready()
    assert again.memo(segment) is None
