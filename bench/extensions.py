"""The compiled hot path against its pure-Python reference, in the same run.

For each generated capture (as `replay_vs_tshark.py` makes them), child processes
replay it alternately with the compiled extensions and with
``VOIPLOG_NO_EXTENSIONS=1``, and report:

- the per-packet path: CPU seconds of `Pipeline.feed` and `finish` over frames
  read into memory before the clock starts (steadier than wall time on a shared
  machine), the fastest of ``--passes`` replays per child;
- reading the capture: CPU seconds of iterating its `CaptureReader` once;
- reading and the per-packet path in one pass, as `replay` runs them: CPU
  seconds of `Pipeline.feed` over the reader and `finish` (the compiled fast path
  reads the records in place), the fastest of ``--passes``;
- the whole `voiplog replay --store none` process, start-up included (wall
  seconds);
- `RtpStream.add` alone: µs per packet over a long regular G.711 stream;
- the SHA-256 of the records, which must be the same both ways (exit status 1
  if not).

    python bench/extensions.py [--repeat 3] [--passes 2]

Needs the extension built (`pip install -e .` builds it); `voiplog --version`
says whether it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAPTURES = (
    ("sip+rtp", 1_000_000, 60.0),
    ("sip-heavy", 600_000, None),
)


def _child(capture: str, passes: int) -> dict:
    """Replay `capture` in this process: CPU seconds of the fastest pass, records' digest."""
    import orjson

    import voiplog.rtp
    from voiplog._extensions import STATUS
    from voiplog.capture import open_capture
    from voiplog.pipeline import Pipeline

    with open_capture(capture) as reader:
        started = time.process_time()
        frames = list(reader)
        read_s = time.process_time() - started
    best, digest = None, None
    for _ in range(passes):
        records = []
        pipeline = Pipeline(records.append)
        started = time.process_time()
        pipeline.feed(frames)
        pipeline.finish()
        spent = time.process_time() - started
        best = spent if best is None else min(best, spent)
        lines = sorted(orjson.dumps(r.to_dict()) for r in records)
        digest = hashlib.sha256(b"\n".join(lines)).hexdigest()
    one_pass = None
    for _ in range(passes):
        again = []
        pipeline = Pipeline(again.append)
        with open_capture(capture) as reader:
            started = time.process_time()
            pipeline.feed(iter(reader))
            pipeline.finish()
            spent = time.process_time() - started
        one_pass = spent if one_pass is None else min(one_pass, spent)
        lines = sorted(orjson.dumps(r.to_dict()) for r in again)
        if hashlib.sha256(b"\n".join(lines)).hexdigest() != digest:
            digest = "read in one pass: other records"
    stream_us = _stream_add_us(voiplog.rtp.RtpStream)
    return {
        "cpu_s": best,
        "read_s": read_s,
        "one_pass_s": one_pass,
        "packets": len(frames),
        "records": len(records),
        "digest": digest,
        "rtp_add_us": stream_us,
        "status": dict(STATUS),
    }


def _stream_add_us(cls, packets: int = 500_000) -> float:
    """µs per `RtpStream.add` of a regular 20 ms G.711 stream, header at offset 42."""
    import struct

    frames = [
        bytes(42) + struct.pack(">BBHII", 0x80, 0, i & 0xFFFF, (i * 160) & 0xFFFFFFFF, 7)
        for i in range(packets)
    ]
    stream = cls("192.0.2.1", 4000, "198.51.100.7", 5000, 7, 0, "g711U", 8000)
    add = stream.add
    t0 = 1_700_000_000_000_000
    started = time.process_time()
    for i, frame in enumerate(frames):
        add(t0 + i * 20_000, frame, 42)
    return (time.process_time() - started) / packets * 1e6


def _run_child(capture: Path, passes: int, pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("VOIPLOG_NO_EXTENSIONS", None)
    if pure:
        env["VOIPLOG_NO_EXTENSIONS"] = "1"
    command = [sys.executable, __file__, "--child", str(capture), "--passes", str(passes)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    replay = [sys.executable, "-m", "voiplog", "replay", str(capture), "--store", "none"]
    started = time.perf_counter()
    subprocess.run([*replay, "--jsonl", os.devnull], env=env, check=True)
    result["replay_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="pairs of children per capture")
    parser.add_argument("--passes", type=int, default=2, help="replays per child (fastest kept)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.passes)))
        return 0

    from bench.replay_vs_tshark import cached_capture

    out_dir = ROOT / "bench" / "out"
    status = 0
    for label, packets, hold in CAPTURES:
        capture, _expected = cached_capture(
            out_dir, packets=packets, calls_concurrent=300, seed=1, mean_hold_s=hold
        )
        ratios, compiled_runs, pure_runs = [], [], []
        for i in range(args.repeat):
            order = (False, True) if i % 2 == 0 else (True, False)
            pair = {pure: _run_child(capture, args.passes, pure) for pure in order}
            compiled_runs.append(pair[False])
            pure_runs.append(pair[True])
            ratios.append(pair[True]["cpu_s"] / pair[False]["cpu_s"])
            if pair[True]["digest"] != pair[False]["digest"]:
                print(f"{label}: the records differ between the two paths", file=sys.stderr)
                status = 1
        n = compiled_runs[0]["packets"]
        print(f"{label}: {n:,} packets, {compiled_runs[0]['records']:,} records")
        print(f"  hot path in use: {compiled_runs[0]['status']}")
        for name, runs in (("compiled", compiled_runs), ("pure Python", pure_runs)):
            cpu = [r["cpu_s"] for r in runs]
            add = [r["rtp_add_us"] for r in runs]
            read = [r["read_s"] for r in runs]
            one = [r["one_pass_s"] for r in runs]
            whole = [r["replay_s"] for r in runs]
            print(
                f"  {name:12} feed+finish {min(cpu):.2f}-{max(cpu):.2f} s CPU "
                f"({n / max(cpu) / 1e3:,.0f}-{n / min(cpu) / 1e3:,.0f}k packets/s, "
                f"{min(cpu) / n * 1e6:.2f}-{max(cpu) / n * 1e6:.2f} us/packet); "
                f"RtpStream.add {min(add):.3f}-{max(add):.3f} us"
            )
            print(
                f"  {'':12} reading {min(read) / n * 1e6:.2f}-{max(read) / n * 1e6:.2f} us/packet; "
                f"read and fed in one pass {min(one) / n * 1e6:.2f}-{max(one) / n * 1e6:.2f} "
                f"us/packet; whole replay {min(whole):.2f}-{max(whole):.2f} s wall"
            )
        print(
            f"  pure / compiled: median {statistics.median(ratios):.3f} "
            f"(from {min(ratios):.3f} to {max(ratios):.3f})"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
