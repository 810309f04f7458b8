"""`Pipeline.expire(now)`: the live daemon's wall clock closes idle calls, no packet needed."""

from __future__ import annotations

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.calls import CallSettings, EndReason
from voiplog.pipeline import Pipeline

S = 1_000_000


def _answered_without_bye():
    d = make_dialog(1)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.answer(T0 + S)
    d.ack(T0 + S + 10_000)
    return [(ts, 1, frame) for ts, frame in sorted_frames(d)]


def test_idle_call_expires_on_the_callers_clock():
    records = []
    pipeline = Pipeline(records.append, call_settings=CallSettings(idle_timeout_s=30))
    frames = _answered_without_bye()
    pipeline.feed(frames)
    last = frames[-1][0]
    pipeline.expire(last + 10 * S)
    assert records == [] and pipeline.tracker.open_calls == 1
    pipeline.expire(last + 31 * S)
    (record,) = records
    assert record.ended_by == "timeout" and "timeout" in record.flags
    assert record.ended_at.startswith("2023-11-14T22:13:21.01")  # its last packet, not now
    assert pipeline.tracker.open_calls == 0


def test_same_records_as_packet_time_expiry():
    """Expiring by a clock gives the same record as a later packet would have."""
    by_clock, by_packet = [], []
    frames = _answered_without_bye()
    settings = CallSettings(idle_timeout_s=30)
    clocked = Pipeline(by_clock.append, call_settings=settings)
    clocked.feed(frames)
    clocked.expire(frames[-1][0] + 40 * S)
    packeted = Pipeline(by_packet.append, call_settings=settings)
    unrelated = make_dialog(2)
    unrelated.invite(frames[-1][0] + 40 * S)
    packeted.feed(frames + [(ts, 1, f) for ts, f in unrelated.frames])
    assert by_clock == by_packet[:1]


def test_a_clock_behind_the_packets_changes_nothing():
    records = []
    pipeline = Pipeline(records.append, call_settings=CallSettings(idle_timeout_s=30))
    frames = _answered_without_bye()
    pipeline.feed(frames)
    pipeline.expire(T0 - 3600 * S)
    assert records == [] and pipeline.tracker.open_calls == 1
    pipeline.finish(EndReason.SHUTDOWN)
    (record,) = records
    assert record.ended_by == "shutdown" and "shutdown" in record.flags
