"""Write voiplog/data/sample-calls.pcap, the capture the README's first command replays.

Five calls between subscribers of 100.64.0.0/10 and the outside world: answered
(with two-way RTP, one with loss), busy, cancelled, and refused after an auth
challenge. Run from the repository root: python scripts/make_sample_capture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pcapwriter import write_pcap  # noqa: E402
from tests.sipcraft import T0, make_dialog, sorted_frames  # noqa: E402


def main() -> None:
    answered = make_dialog(1, caller_ip="100.64.12.7", callee_ip="198.51.100.20")
    answered.basic_answered(T0, talk_s=3.0)

    lossy = make_dialog(2, caller_ip="198.51.100.20", callee_ip="100.64.40.2")
    lossy.invite(T0 + 500_000)
    lossy.response(T0 + 520_000, 100)
    lossy.response(T0 + 700_000, 180)
    lossy.answer(T0 + 2_500_000)
    lossy.ack(T0 + 2_510_000)
    lossy.rtp(T0 + 2_600_000, 150, from_caller=True, ssrc=0x5EED0001, drop=frozenset({7, 8, 90}))
    lossy.rtp(T0 + 2_610_000, 150, from_caller=False, ssrc=0x5EED0002)
    lossy.bye(T0 + 5_700_000, by_caller=False)

    busy = make_dialog(3, caller_ip="100.64.12.9", callee_ip="203.0.113.5")
    busy.invite(T0 + 1_000_000)
    busy.response(T0 + 1_030_000, 100)
    busy.response(T0 + 1_400_000, 486)
    busy.ack(T0 + 1_410_000)

    cancelled = make_dialog(4, caller_ip="100.64.12.11", callee_ip="203.0.113.6")
    cancelled.invite(T0 + 1_200_000)
    cancelled.response(T0 + 1_250_000, 180)
    cancelled.request(T0 + 6_000_000, "CANCEL", in_dialog=False)
    cancelled.response(T0 + 6_020_000, 200, method="CANCEL")
    cancelled.response(T0 + 6_030_000, 487)
    cancelled.ack(T0 + 6_040_000)

    refused = make_dialog(5, caller_ip="100.64.12.13", callee_ip="203.0.113.7")
    refused.invite(T0 + 1_500_000)
    refused.response(T0 + 1_540_000, 407)
    refused.ack(T0 + 1_550_000)
    refused.cseq = 2
    refused.invite(T0 + 1_800_000)
    refused.response(T0 + 1_850_000, 100)
    refused.response(T0 + 2_100_000, 404)
    refused.ack(T0 + 2_110_000)

    out = ROOT / "voiplog" / "data" / "sample-calls.pcap"
    out.parent.mkdir(exist_ok=True)
    write_pcap(out, sorted_frames(answered, lossy, busy, cancelled, refused))
    print(out)


if __name__ == "__main__":
    main()
