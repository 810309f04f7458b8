"""Capture loss on the record: which periods had kernel or interface drops.

The daemon reads the drop counters at least once a second. A reading with new
drops says packets were lost somewhere between the previous reading and this one,
so that interval is kept. A record whose lifetime (started_at .. ended_at)
overlaps a kept interval may be missing packets and gets the flag
``capture_loss``. The list is bounded: beyond `max_intervals`, the two oldest
intervals are merged into one that covers both, which can only flag more
records, never fewer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime

from voiplog.cdr import CallRecord

FLAG = "capture_loss"


def _iso_to_us(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


class LossIntervals:
    """Bounded, time-ordered intervals (microseconds since the epoch) with drops."""

    def __init__(self, max_intervals: int = 1024) -> None:
        self._intervals: deque[list[int]] = deque()
        self._max = max(2, max_intervals)
        self.total_drops = 0

    def __len__(self) -> int:
        return len(self._intervals)

    def add(self, start_us: int, end_us: int, drops: int) -> None:
        if drops <= 0:
            return
        self.total_drops += drops
        intervals = self._intervals
        if intervals and start_us <= intervals[-1][1]:
            intervals[-1][1] = max(intervals[-1][1], end_us)  # extends the last one
            return
        intervals.append([start_us, end_us])
        if len(intervals) > self._max:
            first = intervals.popleft()
            intervals[0][0] = first[0]

    def overlaps(self, start_us: int, end_us: int) -> bool:
        for low, high in reversed(self._intervals):
            if high < start_us:
                return False  # ordered: every earlier interval ends earlier still
            if low <= end_us:
                return True
        return False

    def mark(self, record: CallRecord, now_us: int) -> CallRecord:
        """`record`, flagged when its lifetime overlaps a period with drops."""
        if not self._intervals or FLAG in record.flags:
            return record
        start = _iso_to_us(record.started_at)
        end = _iso_to_us(record.ended_at) if record.ended_at else now_us
        if not self.overlaps(start, end):
            return record
        return replace(record, flags=tuple(sorted((*record.flags, FLAG))))
