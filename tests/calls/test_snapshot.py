"""Saving open calls and taking them back: a call cut by a restart goes on as one call."""

from __future__ import annotations

import dataclasses
import gc

import orjson
import pytest

from tests.sipcraft import T0, make_dialog, make_registration, sorted_frames, udp_frame
from voiplog.calls import CallSettings, CallTracker, EndReason
from voiplog.cdr.record import format_ts
from voiplog.pipeline import Pipeline

S = 1_000_000
SETTINGS = CallSettings(linger_s=1)


@pytest.fixture(autouse=True)
def _collect():
    """A suspended pipeline keeps its calls, which refer to their flows and back:
    collect them, so that tests counting live calls afterwards see none of these."""
    yield
    gc.collect()


def _traffic() -> list[tuple[int, int, bytes]]:
    """Overlapping answered calls with RTP both ways, a cancelled one, a REGISTER chain."""
    dialogs = []
    for n in range(1, 6):
        d = make_dialog(n)
        d.basic_answered(T0 + n * 700_000, talk_s=3.0)
        dialogs.append(d)
    cancelled = make_dialog(9)
    cancelled.invite(T0 + 200_000)
    cancelled.response(T0 + 250_000, 180)
    cancelled.request(T0 + 1_500_000, "CANCEL", cseq=1)
    cancelled.response(T0 + 1_520_000, 200, method="CANCEL", cseq=1)
    cancelled.response(T0 + 1_530_000, 487)
    dialogs.append(cancelled)
    frames = [(ts, 1, frame) for ts, frame in sorted_frames(*dialogs)]
    reg = make_registration(1)
    for ts, payload, to_registrar in (
        (T0 + 2_000_000, reg.register(T0 + 2_000_000, 1), True),
        (T0 + 2_001_000, reg.reply(T0 + 2_001_000, 401, 1), False),
        (T0 + 2_500_000, reg.register(T0 + 2_500_000, 2), True),
    ):
        ends = (reg.ua_ip, reg.ua_port, reg.registrar_ip, 5060)
        if not to_registrar:
            ends = (reg.registrar_ip, 5060, reg.ua_ip, reg.ua_port)
        frames.append((ts, 1, udp_frame(*ends, payload)))
    frames.sort(key=lambda f: f[0])
    return frames


def _run_through(frames) -> list:
    records = []
    pipeline = Pipeline(records.append, call_settings=SETTINGS)
    pipeline.feed(frames)
    pipeline.finish(EndReason.END_OF_INPUT)
    return records


def _run_restarted(frames, cut: int, gap) -> tuple[list, dict]:
    records = []
    first = Pipeline(records.append, call_settings=SETTINGS)
    first.feed(frames[:cut])
    saved = orjson.loads(orjson.dumps(first.suspend()))
    second = Pipeline(records.append, call_settings=SETTINGS)
    second.tracker.restore(saved, gap)
    second.feed(frames[cut:])
    second.finish(EndReason.END_OF_INPUT)
    return records, saved


def _without_restart(record):
    flags = tuple(f for f in record.flags if f != "restarted")
    extra = {k: v for k, v in record.extra.items() if k != "restart_gaps"}
    return dataclasses.replace(record, flags=flags, extra=extra)


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.35, 0.5, 0.8])
def test_a_call_taken_back_goes_on_as_if_never_saved(fraction):
    frames = _traffic()
    expected = _run_through(frames)
    cut = int(len(frames) * fraction)
    records, saved = _run_restarted(frames, cut, None)
    assert saved["calls"], "the cut must fall inside calls"
    key = lambda r: r.uid  # noqa: E731
    assert sorted(records, key=key) == sorted(expected, key=key)
    answered = [r for r in records if getattr(r, "disposition", None) == "answered"]
    assert len(answered) == 5
    assert all(m.packets == 150 and m.lost == 0 for r in answered for m in r.media)


def test_a_restart_gap_is_flagged_on_the_calls_it_cut():
    frames = _traffic()
    expected = {r.uid: r for r in _run_through(frames)}
    cut = len(frames) // 2
    gap = (frames[cut - 1][0], frames[cut][0])
    records, saved = _run_restarted(frames, cut, gap)
    resumed = {c["call_id"] for c in saved["calls"] + saved["registrations"]}
    assert len(records) == len(expected)
    for record in records:
        assert _without_restart(record) == expected[record.uid]
        if getattr(record, "call_id", None) in resumed:
            assert "restarted" in record.flags
            if hasattr(record, "media"):
                (span,) = record.extra["restart_gaps"]
                assert span == {"start": format_ts(gap[0]), "end": format_ts(gap[1])}
        else:
            assert "restarted" not in record.flags


def test_registration_chain_survives():
    frames = _traffic()
    cut = next(i for i, f in enumerate(frames) if f[0] > T0 + 2_100_000)
    records, saved = _run_restarted(frames, cut, (1, 2))
    assert len(saved["registrations"]) == 1
    (reg,) = [r for r in records if not hasattr(r, "media")]
    assert "restarted" in reg.flags and reg.extra["attempts"] == 2


def test_bad_state_is_refused_before_anything_changes():
    frames = _traffic()
    pipeline = Pipeline(lambda r: None, call_settings=SETTINGS)
    pipeline.feed(frames[: len(frames) // 2])
    saved = orjson.loads(orjson.dumps(pipeline.tracker.snapshot()))
    other = orjson.loads(orjson.dumps(saved))
    other["format"] = 99
    tracker = CallTracker(SETTINGS)
    with pytest.raises(ValueError, match="format 99"):
        tracker.restore(other)
    broken = orjson.loads(orjson.dumps(saved))
    del broken["calls"][-1]["state"]
    with pytest.raises(ValueError, match="do not read"):
        tracker.restore(broken)
    assert tracker.open_calls == 0 and tracker.media.flows == {}
    assert tracker.registrations.open_chains == 0
    assert tracker.restore(saved) == len(saved["calls"])
    with pytest.raises(ValueError, match="not empty"):
        tracker.restore(saved)
