"""The saved state of open calls on disk: atomic, private, refused whole when foreign."""

from __future__ import annotations

import os
import stat

import orjson
import pytest

import voiplog
from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.calls import CallSettings, CallTracker
from voiplog.config import PopConfig
from voiplog.daemon import callstate
from voiplog.pipeline import Pipeline


def _open_calls() -> dict:
    pipeline = Pipeline(lambda r: None, call_settings=CallSettings())
    d = make_dialog(1)
    d.basic_answered(T0, talk_s=4.0)
    frames = [(ts, 1, f) for ts, f in sorted_frames(d)]
    pipeline.feed(frames[: len(frames) // 2])
    return pipeline.tracker.snapshot()


def test_round_trip_through_a_private_file(tmp_path):
    cfg = PopConfig(pop="lab", daemon={"state_dir": str(tmp_path / "calls")})
    path = callstate.state_path(cfg)
    assert path == tmp_path / "calls" / "lab.json"
    calls = _open_calls()
    digest = callstate.config_hash(cfg)
    size = callstate.save(path, digest, 123, calls)
    assert size == path.stat().st_size
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["lab.json"]  # no temporary file left
    saved_us, loaded = callstate.load(path, digest)
    assert saved_us == 123 and loaded == orjson.loads(orjson.dumps(calls))
    tracker = CallTracker()
    assert tracker.restore(loaded, (123, 456)) == 1
    # Saved again over the old one, the state is replaced whole.
    callstate.save(path, digest, 789, {**calls, "calls": []})
    assert callstate.load(path, digest)[0] == 789


def test_missing_state_is_none(tmp_path):
    assert callstate.load(tmp_path / "none.json", "x") is None


def test_other_config_version_or_garbage_is_refused(tmp_path):
    cfg = PopConfig(pop="lab")
    other = PopConfig(pop="lab", calls={"idle_timeout_s": 7})
    assert callstate.config_hash(cfg) != callstate.config_hash(other)
    path = tmp_path / "lab.json"
    callstate.save(path, callstate.config_hash(cfg), 1, _open_calls())
    with pytest.raises(callstate.StateError, match=r"lab\.json: saved under another"):
        callstate.load(path, callstate.config_hash(other))
    data = orjson.loads(path.read_bytes())
    path.write_bytes(orjson.dumps({**data, "voiplog": "0.0.1"}))
    with pytest.raises(callstate.StateError, match=f"voiplog 0.0.1.*this is {voiplog.__version__}"):
        callstate.load(path, callstate.config_hash(cfg))
    path.write_bytes(b"{not json")
    with pytest.raises(callstate.StateError, match="not a saved state"):
        callstate.load(path, callstate.config_hash(cfg))
    aside = callstate.set_aside(path, 42)
    assert aside.name == "lab.json.refused-42" and not path.exists()


def test_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("{}")
    (tmp_path / "lab.json").symlink_to(target)
    with pytest.raises(callstate.StateError, match="cannot be read"):
        callstate.load(tmp_path / "lab.json", "x")
