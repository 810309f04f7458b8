"""The log of records written since the saved state (`callstate.WrittenLog`)."""

from __future__ import annotations

import os

import pytest

from voiplog.daemon import callstate


def test_uids_are_logged_once_on_disk_and_read_back(tmp_path):
    path = callstate.written_path(tmp_path / "pop1.json")
    assert path.name == "pop1.written"
    log = callstate.WrittenLog(path)
    assert log.before == set()
    log.note("Ca")
    log.note("Cb")
    assert path.read_text() == ""  # noted, not yet known to be on disk
    log.commit()
    assert path.read_text() == "Ca\nCb\n"
    assert os.stat(path).st_mode & 0o777 == 0o600
    log.close()
    again = callstate.WrittenLog(path)
    assert again.before == {"Ca", "Cb"}
    # A state was saved: only the copies still awaited stay in the log.
    again.restart({"Cb"})
    again.note("Cc")
    again.commit()
    assert path.read_text() == "Cb\nCc\n"
    again.close()


def test_one_run_per_state(tmp_path):
    path = tmp_path / "pop1.written"
    first = callstate.WrittenLog(path)
    with pytest.raises(callstate.StateError, match="held by another voiplog run"):
        callstate.WrittenLog(path)
    first.close()
    callstate.WrittenLog(path).close()


def test_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("kept\n")
    (tmp_path / "pop1.written").symlink_to(target)
    with pytest.raises(OSError):
        callstate.WrittenLog(tmp_path / "pop1.written")
    assert target.read_text() == "kept\n"
