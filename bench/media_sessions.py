"""Media-session benchmark: the same RTP with its SIP and without it.

Takes the benchmark capture of `replay_vs_tshark.py` (generated and cached the
same way) and writes a copy without its SIP packets, so that every RTP stream
in it is one that no SDP announced. Then times ``voiplog replay`` on both,
alternately: the first run is the fast path of known calls, the second the
flow classifier's RTP heuristics. The run without SIP is checked against the
capture's ground truth, which makes it a recall test at full size: one
``media`` record per answered call, every RTP stream found, with its exact
packet and loss counts.

    python bench/media_sessions.py                 # 2M packets, 3 runs each
    python bench/media_sessions.py --packets 600000 --repeat 5

Exit status: 0 when the records are right, 1 when not (or a run failed).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

try:
    from bench import replay_vs_tshark as rvt
except ModuleNotFoundError:  # run as a script: bench/ itself is on sys.path
    import replay_vs_tshark as rvt  # type: ignore[no-redef]

_RECORD = struct.Struct("<IIII")
SIP_PORT = 5060  # the generator's SBC and phones signal on 5060 only


def strip_sip(capture: Path, out: Path) -> int:
    """Copy a little-endian Ethernet/IPv4 pcap without its UDP port-5060 packets."""
    kept = 0
    with open(capture, "rb") as src, open(out, "wb") as dst:
        header = src.read(24)
        if header[:4] != b"\xd4\xc3\xb2\xa1":
            raise SystemExit(f"{capture}: not a little-endian microsecond pcap")
        dst.write(header)
        while chunk := src.read(16):
            _, _, incl, _ = _RECORD.unpack(chunk)
            frame = src.read(incl)
            ports = struct.unpack_from(">HH", frame, 34) if len(frame) >= 38 else (0, 0)
            if frame[23:24] == b"\x11" and SIP_PORT in ports:
                continue
            dst.write(chunk + frame)
            kept += 1
    return kept


def check(jsonl: Path, expected) -> list[str]:
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    problems = []
    kinds = {r["kind"] for r in records}
    if kinds - {"media"}:
        problems.append(f"record kinds {sorted(kinds)}, only media expected")
    answered = expected.calls_by_disposition.get("answered", 0)
    if len(records) != answered:
        problems.append(f"{len(records)} media records, {answered} answered calls")
    media = [m for r in records for m in r["media"]]
    for name, ours, truth in (
        ("streams", len(media), expected.rtp_streams),
        ("packets", sum(m["packets"] for m in media), expected.rtp_packets),
        ("lost", sum(m["lost"] for m in media), expected.rtp_lost),
    ):
        if ours != truth:
            problems.append(f"RTP {name}: voiplog {ours}, ground truth {truth}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--calls-concurrent", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mean-hold", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--voiplog-cmd", default=None)
    parser.add_argument("--out-dir", type=Path, default=rvt.DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)

    capture, expected = rvt.cached_capture(
        args.out_dir,
        packets=args.packets,
        calls_concurrent=args.calls_concurrent,
        seed=args.seed,
        mean_hold_s=args.mean_hold or None,
    )
    no_sip = capture.with_name(capture.stem + "-no-sip.pcap")
    if not no_sip.exists() or no_sip.stat().st_mtime < capture.stat().st_mtime:
        strip_sip(capture, no_sip)
    runs_dir = args.out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = rvt.voiplog_command(args.voiplog_cmd)
    cases = {"with SIP (fast path)": capture, "without SIP (media sessions)": no_sip}
    runs: dict[str, list] = {name: [] for name in cases}
    packets = {}
    for name, path in cases.items():
        rvt.warm_page_cache(path)
        packets[name] = rvt.count_packets(path)
    for i in range(args.repeat):
        for name, path in cases.items():
            jsonl = runs_dir / f"media-sessions-{'sip' if path == capture else 'nosip'}.jsonl"
            run = rvt.run_measured("voiplog", rvt.replay_argv(base, path, jsonl), jsonl)
            if run.exit_code:
                print(f"{name}: voiplog failed ({run.exit_code}):\n{run.stderr_tail}")
                return 1
            runs[name].append(run)
            print(f"  run {i + 1}/{args.repeat} {name}: {run.wall_s:.2f} s")
    print(f"\ncapture: `{capture.name}` and its copy without SIP\n")
    print("| replay | packets | wall s (best) | CPU s (best) | packets/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, case_runs in runs.items():
        best = min(case_runs, key=lambda r: r.wall_s)
        cpu = min(r.cpu_s for r in case_runs)
        rate = packets[name] / best.wall_s if packets[name] else 0
        print(
            f"| {name} | {packets[name]} | {best.wall_s:.2f} | {cpu:.2f} | {rate:,.0f} "
            f"| {max(r.peak_rss_mb for r in case_runs):.1f} |"
        )
    problems = check(runs_dir / "media-sessions-nosip.jsonl", expected)
    if problems:
        print("\nMEDIA SESSIONS WRONG:\n  " + "\n  ".join(problems))
        return 1
    print("\nwithout SIP: one media record per answered call, every stream, packet and loss found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
