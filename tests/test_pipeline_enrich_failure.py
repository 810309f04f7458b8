"""A failure inside enrichment loses no record, and is said, not swallowed."""

from __future__ import annotations

import logging
from collections import Counter

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.pipeline import Pipeline


class BrokenEnricher:
    radius = None

    def __init__(self):
        self.stats = Counter()

    def enrich(self, record):
        raise KeyError("lease table corrupted")


def _calls(n):
    frames = []
    for k in range(n):
        d = make_dialog(k + 1)
        d.invite(T0 + k * 1_000_000)
        d.answer(T0 + k * 1_000_000 + 500_000)
        d.ack(T0 + k * 1_000_000 + 510_000)
        d.bye(T0 + k * 1_000_000 + 900_000)
        frames += [(ts, 1, frame) for ts, frame in sorted_frames(d)]
    return sorted(frames, key=lambda f: f[0])


def test_records_are_written_unenriched_and_the_failure_is_counted_and_logged(caplog):
    records = []
    pipeline = Pipeline(records.append, enricher=BrokenEnricher())
    with caplog.at_level(logging.ERROR, logger="voiplog.pipeline"):
        pipeline.feed(_calls(3))
        pipeline.finish()
    assert len(records) == 3 and all(r.subscriber is None for r in records)
    counts = pipeline.stats.enrichment
    assert counts["enrich.failed.KeyError"] == 3 and counts["enrich.failed"] == 3
    (message,) = [r.getMessage() for r in caplog.records]  # once per kind
    assert "enrichment failed (KeyError" in message and records[0].uid in message
