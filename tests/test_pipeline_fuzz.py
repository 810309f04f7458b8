"""Random and mangled frames through the whole pipeline: nothing escapes but records.

Invariant: whatever the bytes, `Pipeline.feed` and `finish` return normally; bad
input only ever shows up as counted oddities.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.pipeline import Pipeline

_dialog = make_dialog(90)
_dialog.basic_answered(T0, talk_s=0.2)
VALID = sorted_frames(_dialog)

LINKTYPES = st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 12, 14, 9, 50, 147])


def _run(frames):
    records = []
    pipeline = Pipeline(records.append)
    pipeline.feed(frames)
    pipeline.finish()
    return records, pipeline.stats


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2**40), LINKTYPES, st.binary(max_size=300)), max_size=30))
def test_random_frames_never_raise(frames):
    _run(frames)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_call_never_raises(data):
    frames = []
    for ts, frame in VALID:
        action = data.draw(st.sampled_from(["keep", "keep", "keep", "flip", "cut", "drop"]))
        if action == "flip" and frame:
            i = data.draw(st.integers(0, len(frame) - 1))
            frame = frame[:i] + bytes([frame[i] ^ data.draw(st.integers(1, 255))]) + frame[i + 1 :]
        elif action == "cut":
            frame = frame[: data.draw(st.integers(0, len(frame)))]
        elif action == "drop":
            continue
        frames.append((ts, 1, frame))
    records, _ = _run(frames)
    # One call at most; RTP whose SDP was mangled may make a media session besides.
    assert sum(r.kind == "sip" for r in records) <= 1
    assert all(r.kind in ("sip", "media") for r in records)


def test_valid_call_untouched_gives_one_record():
    records, stats = _run([(ts, 1, f) for ts, f in VALID])
    assert len(records) == 1
    assert not stats.weird and not stats.parse_errors
