"""RTP-only captures of the shared corpus: every stream Wireshark's RTP heuristic finds.

For each capture the corpus tags as RTP without SIP, and for the SIP capture
whose extra RTP was set up by MGCP, every stream that ``tshark -o
rtp.heuristic_rtp:TRUE -z rtp,streams`` lists with at least `min_packets`
packets is on a record with the same packet and loss counts and jitter. Skipped
when ../shared/corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.wireshark_reference import read_streams
from voiplog.capture import open_capture
from voiplog.flows import FlowSettings
from voiplog.pipeline import Pipeline

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def _captures() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    names = []
    for line in manifest.read_text().splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) > 8 and "rtp-only" in fields[8].split(";"):
            names.append(fields[0])
    return [*sorted(names), "heplify__rtp_rtcp_sip.pcap"]


CAPTURES = _captures()


def _streams(path: Path) -> dict[tuple, dict]:
    records = []
    pipeline = Pipeline(lambda r: records.append(r.to_dict()), sip_ports=(5060,))
    with open_capture(path) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    return {
        (m["src_ip"], m["src_port"], m["dst_ip"], m["dst_port"], m["ssrc"]): m
        for rec in records
        for m in rec.get("media", ())  # registration records have none
    }


@pytest.mark.corpus
@pytest.mark.skipif(not CAPTURES, reason="shared corpus absent")
@pytest.mark.parametrize("name", CAPTURES)
def test_heuristic_streams_are_found_with_wiresharks_numbers(name):
    ours = _streams(CORPUS / "pcaps" / name)
    reference = read_streams(CORPUS / "reference" / f"{name}.rtp_streams_heuristic.txt")
    wanted = [r for r in reference if r.packets >= FlowSettings().min_packets]
    assert wanted, f"{name}: the reference lists no stream long enough to test"
    for ref in wanted:
        m = ours.get(ref.key)
        assert m is not None, f"{name}: stream {ref.key} ({ref.packets} packets) not found"
        assert (m["packets"], m["lost"]) == (ref.packets, ref.lost), ref.key
        assert (m["jitter_max_ms"], m["jitter_mean_ms"]) == (
            ref.max_jitter_ms,
            ref.mean_jitter_ms,
        ), ref.key
