"""capture_loss: a record overlapping a period with drops says it may be incomplete."""

from __future__ import annotations

from dataclasses import replace

from voiplog.cdr import CallRecord, format_ts
from voiplog.daemon.loss import FLAG, LossIntervals

S = 1_000_000
T0 = 1_700_000_000 * S


def record(start_us: int, end_us: int | None, flags=("no_bye",)) -> CallRecord:
    return CallRecord(
        uid="Cx", kind="sip", call_id="c", caller=None, callee=None, caller_uri=None,
        callee_uri=None, request_uri=None, caller_ip=None, caller_port=None, callee_ip=None,
        callee_port=None, transport="udp", subscriber_ip=None, direction=None,
        started_at=format_ts(start_us), ringing_at=None, answered_at=None,
        ended_at=format_ts(end_us), duration_s=0.0, setup_ms=None, disposition="answered",
        final_status=200, ended_by="caller", user_agent=None, flags=flags,
    )  # fmt: skip


def test_no_drops_no_flag():
    loss = LossIntervals()
    loss.add(T0, T0 + S, 0)
    r = record(T0, T0 + 2 * S)
    assert loss.mark(r, T0 + 3 * S) is r


def test_overlap_flags_and_keeps_flags_sorted():
    loss = LossIntervals()
    loss.add(T0 + 10 * S, T0 + 11 * S, 5)
    assert loss.mark(record(T0, T0 + 10 * S + 500_000), 0).flags == (FLAG, "no_bye")
    assert loss.mark(record(T0 + 10 * S + 1, T0 + 10 * S + 2), 0).flags == (FLAG, "no_bye")
    assert loss.mark(record(T0 + 11 * S, T0 + 20 * S), 0).flags == (FLAG, "no_bye")
    assert FLAG not in loss.mark(record(T0, T0 + 10 * S - 1), 0).flags
    assert FLAG not in loss.mark(record(T0 + 11 * S + 1, T0 + 30 * S), 0).flags
    assert loss.total_drops == 5


def test_record_without_end_runs_to_now():
    loss = LossIntervals()
    loss.add(T0 + 10 * S, T0 + 11 * S, 1)
    assert FLAG in loss.mark(record(T0, None), T0 + 12 * S).flags
    assert FLAG not in loss.mark(record(T0, None), T0 + 9 * S).flags


def test_already_flagged_is_left_alone():
    loss = LossIntervals()
    loss.add(T0, T0 + S, 1)
    r = record(T0, T0 + S, flags=(FLAG,))
    assert loss.mark(r, 0) is r


def test_adjacent_readings_merge():
    loss = LossIntervals()
    loss.add(T0, T0 + S, 1)
    loss.add(T0 + S, T0 + 2 * S, 1)
    assert len(loss) == 1
    assert FLAG in loss.mark(record(T0 + S + S // 2, T0 + S + S // 2), 0).flags


def test_bounded_by_merging_the_oldest_conservatively():
    loss = LossIntervals(max_intervals=3)
    for i in range(10):
        loss.add(T0 + 10 * i * S, T0 + (10 * i + 1) * S, 1)
    assert len(loss) == 3
    # The gap between the first intervals is now covered: more flags, never fewer.
    assert FLAG in loss.mark(record(T0 + 5 * S, T0 + 6 * S), 0).flags
    for i in range(10):
        start = T0 + 10 * i * S
        assert FLAG in loss.mark(record(start, start + S // 2), 0).flags
    assert FLAG not in loss.mark(record(T0 + 95 * S, T0 + 96 * S), 0).flags


def test_frozen_record_replaced_not_mutated():
    loss = LossIntervals()
    loss.add(T0, T0 + S, 1)
    r = record(T0, T0 + S)
    marked = loss.mark(r, 0)
    assert r.flags == ("no_bye",) and marked == replace(r, flags=(FLAG, "no_bye"))
