"""Per-component costs of the replay hot path, in microseconds per call.

Reads a generated capture (or ``--capture``) and times, each on its own:
reading records, decoding frames, the SIP parser on the capture's SIP, the SDP
parser, RTP stream accounting, and the whole pipeline per packet. Best of
``--repeat`` runs; run it before and after a change to the hot path and quote
the figures in the commit message.

    python bench/components.py [--capture FILE] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gencapture import generate  # noqa: E402
from voiplog.capture import open_capture  # noqa: E402
from voiplog.packet import PROTO_UDP, decode  # noqa: E402
from voiplog.pipeline import Pipeline  # noqa: E402
from voiplog.rtp import RtpStream  # noqa: E402
from voiplog.sip import looks_like_sip, parse_message, parse_sdp  # noqa: E402


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path, help="pcap to use (default: generate 300k packets)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    capture = args.capture
    if capture is None:
        capture = ROOT / "bench" / "out" / "components.pcap"
        capture.parent.mkdir(parents=True, exist_ok=True)
        if not capture.exists():
            generate(capture, calls_concurrent=300, packets=300_000, seed=1)

    frames = list(open_capture(capture))
    datagrams = []
    for _, linktype, frame in frames:
        d = decode(linktype, frame)
        if d is not None and d[0] == PROTO_UDP:
            datagrams.append(d)
    sip = [d[5] for d in datagrams if looks_like_sip(d[5])]
    sdp = [m.sdp_body for m in map(parse_message, sip) if m.sdp_body]
    rtp = [(d, frames[i][0]) for i, d in enumerate(datagrams) if d[5][:1] == b"\x80"][:200_000]
    sip_frames = [
        f
        for f in frames
        if (d := decode(f[1], f[2])) and d[0] == PROTO_UDP and looks_like_sip(d[5])
    ]

    def read() -> None:
        for _ in open_capture(capture):
            pass

    def decode_all() -> None:
        for _, linktype, frame in frames:
            decode(linktype, frame)

    def sip_all() -> None:
        for payload in sip:
            parse_message(payload)

    def sdp_all() -> None:
        for body in sdp:
            parse_sdp(body)

    def rtp_all() -> None:
        streams: dict = {}
        for d, ts in rtp:
            key = (d[1], d[2], d[5][8:12])
            stream = streams.get(key)
            if stream is None:
                stream = streams[key] = RtpStream("a", d[2], "b", d[4], 0, 0, "PCMU", 8000)
            stream.add(ts, d[5])

    def sip_pipeline() -> None:
        # Call tracking and record building: the capture's SIP alone.
        pipeline = Pipeline(lambda record: None)
        pipeline.feed(sip_frames)
        pipeline.finish()

    def pipeline_all() -> None:
        pipeline = Pipeline(lambda record: None)
        pipeline.feed(frames)
        pipeline.finish()

    rows = [
        ("read a pcap record", read, len(frames)),
        ("decode a frame", decode_all, len(frames)),
        ("parse a SIP message", sip_all, len(sip)),
        ("parse an SDP body", sdp_all, len(sdp)),
        ("account an RTP packet", rtp_all, len(rtp)),
        ("track a SIP message (pipeline, SIP only)", sip_pipeline, len(sip_frames)),
        ("whole pipeline, per packet", pipeline_all, len(frames)),
    ]
    print(f"capture: {capture} ({len(frames)} packets), best of {args.repeat}\n")
    print("| component | calls | µs per call |")
    print("|---|---:|---:|")
    for label, fn, count in rows:
        seconds = best_of(args.repeat, fn)
        print(f"| {label} | {count:,} | {seconds / max(count, 1) * 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
