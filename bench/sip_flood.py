"""SIP floods: requests per second and bytes per open call on a scanner-like capture.

A SIP scanner (friendly-scanner, sipvicious, sipcli...) sends INVITEs and OPTIONS
with a new Call-ID each, from many addresses and ports, and nothing answers them.
Each INVITE opens a call that stays open until its setup timeout or until the
open-call cap evicts it (with an ``evicted`` record); OPTIONS open nothing. This
bench builds such a capture (``--requests``, 85 % INVITE, one every 20 µs) and
measures, for this tree and for a baseline tree (``--baseline DIR``, e.g. a git
worktree of the commit before a change) in the same run, alternately:

* ``parse+track``: `parse_message` and `CallTracker.on_sip` in-process, requests/s
  (the open-call cap at its default, so the later INVITEs evict the first calls);
* ``pipeline``: the frames through `Pipeline.feed` in-process, requests/s;
* ``replay``: ``voiplog replay --store none`` of the capture end to end, requests/s
  including start-up;
* ``bytes/call``: memory held per open call (tracemalloc) with ``--open-calls`` open.

Each tree is measured in its own process (``--worker``), with the cyclic garbage
collector set as ``replay`` and ``run`` set it (`voiplog._collector`, where the tree
has it); ``--pure`` also measures
this tree with its compiled extensions off (``VOIPLOG_NO_EXTENSIONS=1``), in turn
with the others. The records of every tree's pipeline must be identical, else the
run fails (exit 1).

    python bench/sip_flood.py [--baseline /tmp/sf-base] [--pure] [--runs 3] [--requests 200000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "captures"
T0 = 1_700_000_000_000_000
GAP_US = 20
TARGET_PER_S = 50_000
TARGET_BYTES = 1_500

USER_AGENTS = (
    "friendly-scanner",
    "sipvicious",
    "sipcli/v1.8",
    "VaxSIPUserAgent/3.1",
    "pplsip",
    "SIPScan",
)
_PCAP_GLOBAL = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")


def scanner_request(n: int, rng: random.Random) -> tuple[bytes, int, bytes, int, bytes]:
    """(source ip, port, destination ip, port, SIP) of the scanner's `n`th request."""
    src = bytes([45, rng.randrange(1, 255), rng.randrange(256), rng.randrange(1, 255)])
    dst = bytes([198, 51, 100, 1 + n % 200])
    sport = rng.randrange(1024, 65536)
    target = f"{100 + n % 900}"
    ua = USER_AGENTS[n % len(USER_AGENTS)]
    method = "OPTIONS" if rng.random() < 0.15 else "INVITE"
    src_text, dst_text = ".".join(map(str, src)), ".".join(map(str, dst))
    call_id = f"{rng.getrandbits(64):016x}{n:08x}"
    lines = [
        f"{method} sip:{target}@{dst_text} SIP/2.0",
        f"Via: SIP/2.0/UDP {src_text}:{sport};branch=z9hG4bK-{rng.getrandbits(40):x};rport",
        "Max-Forwards: 70",
        f'From: "{target}" <sip:{target}@{src_text}>;tag={rng.getrandbits(48):x}',
        f"To: <sip:{target}@{dst_text}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:{target}@{src_text}:{sport}>",
        f"User-Agent: {ua}",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return src, sport, dst, 5060, ("\r\n".join(lines) + "\r\n\r\n").encode()


def scanner_requests(
    count: int, seed: int = 4475
) -> list[tuple[int, bytes, int, bytes, int, bytes]]:
    """(time µs, src, sport, dst, dport, SIP) of `count` requests, `GAP_US` apart."""
    rng = random.Random(seed)
    return [(T0 + n * GAP_US, *scanner_request(n, rng)) for n in range(count)]


def udp_frame(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
    eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    return eth + ip + udp


def write_capture(count: int) -> Path:
    """The capture of `count` scanner requests, cached under bench/out/captures."""
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:8]
    path = OUT / f"sip-flood-{count}-{digest}.pcap"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        out.write(_PCAP_GLOBAL.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, src, sport, dst, dport, sip in scanner_requests(count):
            frame = udp_frame(src, sport, dst, dport, sip)
            out.write(_PCAP_RECORD.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            out.write(frame)
    tmp.rename(path)
    return path


# -- the measurements, run in a worker process with one tree on sys.path -----------


def _parse_and_track(requests: list) -> float:
    from voiplog.calls import CallTracker
    from voiplog.sip import parse_message

    inputs = [
        (ts, ".".join(map(str, src)), sport, ".".join(map(str, dst)), dport, sip)
        for ts, src, sport, dst, dport, sip in requests
    ]
    tracker = CallTracker()
    on_sip, take_records = tracker.on_sip, tracker.take_records
    started = time.perf_counter()
    for ts, src, sport, dst, dport, sip in inputs:
        on_sip(parse_message(sip), ts, src, sport, dst, dport)
        take_records()  # the records of the calls evicted, as the pipeline takes them
    return time.perf_counter() - started


def _pipeline(requests: list) -> tuple[float, str, int]:
    from voiplog.pipeline import Pipeline

    frames = [(ts, 1, udp_frame(*fields)) for ts, *fields in requests]
    records: list = []
    pipeline = Pipeline(records.append)
    started = time.perf_counter()
    pipeline.feed(frames)
    pipeline.finish()
    seconds = time.perf_counter() - started
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record.to_dict(), sort_keys=True).encode() + b"\n")
    return seconds, digest.hexdigest(), len(records)


def _bytes_per_call(requests: list, calls: int) -> float:
    import gc
    import tracemalloc
    from dataclasses import replace

    from voiplog.calls import CallSettings, CallTracker
    from voiplog.packet import format_ip
    from voiplog.sip import parse_message

    invites = [request for request in requests if request[5].startswith(b"INVITE")][:calls]
    tracker = CallTracker(replace(CallSettings(), max_open_calls=len(invites) + 1))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    # The addresses are formatted here, as the pipeline does for each message:
    # the strings a call keeps of them count.
    for ts, src, sport, dst, dport, sip in invites:
        tracker.on_sip(parse_message(sip), ts, format_ip(src), sport, format_ip(dst), dport)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert tracker.open_calls == len(invites), tracker.open_calls
    return held / len(invites)


def worker(args: argparse.Namespace) -> None:
    import voiplog

    requests = scanner_requests(args.requests)
    result: dict[str, object] = {"tree": str(Path(voiplog.__file__).parents[1])}
    try:
        from voiplog import _collector
    except ImportError:  # a tree from before the collector was set
        pass
    else:
        _collector.tune()  # as `replay` and `run` set it before the first packet
    result["parse_track_s"] = _parse_and_track(requests)
    result["pipeline_s"], result["records_sha256"], result["records"] = _pipeline(requests)
    if args.open_calls:
        result["bytes_per_call"] = _bytes_per_call(requests, args.open_calls)
    print(json.dumps(result))


# -- the driver ----------------------------------------------------------------------


def _run_worker(tree: Path, extra_env: dict[str, str], args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), **extra_env)
    command = [sys.executable, __file__, "--worker", "--requests", str(args.requests)]
    command += ["--open-calls", str(args.open_calls)]
    out = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(result["tree"]).resolve() != tree.resolve():
        raise SystemExit(f"worker imported voiplog from {result['tree']}, not {tree}")
    return result


def _replay(tree: Path, extra_env: dict[str, str], capture: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), **extra_env)
    command = [sys.executable, "-m", "voiplog", "replay", "--store", "none"]
    command += ["--jsonl", os.devnull, "--no-progress", "--no-summary", str(capture)]
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=tree, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _span(values: list[float], fmt: str) -> str:
    low, high = min(values), max(values)
    return format(low, fmt) if low == high else f"{format(low, fmt)} - {format(high, fmt)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--open-calls", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="tree to compare with (a git worktree)")
    parser.add_argument(
        "--pure", action="store_true", help="also measure this tree with extensions off"
    )
    parser.add_argument("--no-gate", action="store_true", help="exit 0 whatever the figures")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    capture = write_capture(args.requests)
    trees: dict[str, tuple[Path, dict[str, str]]] = {"this tree": (ROOT, {})}
    if args.pure:
        trees["this tree, pure Python"] = (ROOT, {"VOIPLOG_NO_EXTENSIONS": "1"})
    if args.baseline is not None:
        trees["baseline"] = (args.baseline, {})
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    digests: dict[str, set[str]] = {name: set() for name in trees}
    n = args.requests
    print(f"{n:,} scanner requests ({capture.name}), {args.runs} runs, trees alternating")
    for _ in range(args.runs):
        for name, (tree, extra_env) in trees.items():
            result = _run_worker(tree, extra_env, args)
            digests[name].add(result["records_sha256"])
            got = figures[name]
            got.setdefault("parse+track /s", []).append(n / result["parse_track_s"])
            got.setdefault("pipeline /s", []).append(n / result["pipeline_s"])
            got.setdefault("replay /s", []).append(n / _replay(tree, extra_env, capture))
            if "bytes_per_call" in result:
                got.setdefault("bytes/call", []).append(result["bytes_per_call"])
    ok = True
    for name, got in figures.items():
        print(f"  {name}:")
        for label, values in got.items():
            print(f"    {label:16s} {_span(values, ',.0f'):>22s}")
    if "baseline" in trees:
        base = figures["baseline"]
        for name in trees:
            if name == "baseline":
                continue
            for label, values in figures[name].items():
                ratios = [a / b for a, b in zip(values, base[label], strict=True)]
                print(f"  ratio {name} / baseline, {label:16s} {_span(ratios, '.2f')}")
    if len({frozenset(found) for found in digests.values()}) > 1:
        print("  WRONG: the records differ between trees")
        ok = False
    mine = figures["this tree"]
    met = min(mine["parse+track /s"]) >= TARGET_PER_S and (
        "bytes/call" not in mine or max(mine["bytes/call"]) <= TARGET_BYTES
    )
    print(
        f"targets {TARGET_PER_S:,} requests/s per core parsed and tracked, "
        f"{TARGET_BYTES:,} bytes per open call: " + ("met" if met else "NOT met")
    )
    if not ok:
        return 1
    return 0 if met or args.no_gate else 1


if __name__ == "__main__":
    sys.exit(main())
