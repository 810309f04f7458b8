"""Precision: non-VoIP UDP gives no media records at all. Recall: RTP-only streams are found.

Both run the whole pipeline over generated traffic (see `_traffic`): each
non-VoIP kind alone and all of them together must give no record; in a mixed
capture of 300 RTP-only calls among that traffic at least 99 % of the streams
must be found, with their exact packet counts.
"""

from __future__ import annotations

import random

import pytest

from tests.flows import _traffic
from voiplog.pipeline import Pipeline

T0 = 1_700_000_000_000_000


def _replay(frames) -> tuple[list, Pipeline]:
    records = []
    pipeline = Pipeline(records.append)
    pipeline.feed((ts, 1, frame) for ts, frame in sorted(frames, key=lambda f: f[0]))
    pipeline.finish()
    return records, pipeline


@pytest.mark.parametrize("kind", sorted(_traffic.NON_VOIP))
@pytest.mark.parametrize("seed", range(5))
def test_non_voip_udp_gives_no_record(kind, seed):
    rng = random.Random(f"{kind}-{seed}")
    frames = []
    for k in range(4):
        frames += _traffic.NON_VOIP[kind](rng, T0 + k * 7_000_000)
    records, _ = _replay(frames)
    assert records == []


def test_recall_of_rtp_only_streams_in_mixed_traffic():
    rng = random.Random(2024)
    frames, sent = [], []
    for index in range(300):
        session, streams = _traffic.rtp_session(rng, T0 + index * 200_000, index)
        frames += session
        sent += streams
    for k, make in enumerate(sorted(_traffic.NON_VOIP)):
        for j in range(3):
            frames += _traffic.NON_VOIP[make](rng, T0 + (k * 3 + j) * 3_000_000)
    records, pipeline = _replay(frames)
    assert all(r.kind == "media" for r in records)
    found = {(m.src_ip, m.src_port, m.ssrc): m.packets for r in records for m in r.media}
    hits = [s for s in sent if (s.src, s.sport, s.ssrc) in found]
    assert len(hits) >= 0.99 * len(sent), f"{len(hits)} of {len(sent)} streams found"
    exact = [s for s in hits if found[(s.src, s.sport, s.ssrc)] == s.packets]
    assert len(exact) >= 0.99 * len(sent), f"{len(exact)} of {len(sent)} with exact counts"
    # Nothing but the calls: every media stream on a record was sent as RTP.
    sent_keys = {(s.src, s.sport, s.ssrc) for s in sent}
    assert set(found) <= sent_keys
    assert pipeline.stats.records == len(records)
    # Once believed, a stream's packets take the fast path, counted apart from calls' RTP.
    stats = pipeline.stats
    assert stats.packets == len(frames)
    assert 0.9 * sum(s.packets for s in sent) < stats.media_session_packets
    assert stats.rtp_packets == 0
