"""Replay speed of the call core against a baseline tree: the ratio, in the same run.

Times `Pipeline.feed` and `finish` on generated captures, once with the voiplog of
this tree and once with the voiplog of a baseline tree (a git worktree of an earlier
commit), in alternating child processes, and reports current/baseline per pair of
runs (each run the fastest of ``--passes`` replays in one process). The frames are read into memory before the clock starts, so the figure is the
per-packet path alone (decode, RTP accounting, SIP, calls, records), without file
reading or record writing, in CPU seconds of the replaying process (steadier than
wall time on a machine that other work shares). Both trees must produce the same records (their SHA-256
is compared), so neither side can be fast by doing something else.

Two captures, as in ``replay_vs_tshark.py``: SIP+RTP (60 s mean hold, mostly RTP
of known calls) and SIP-heavy (600,000 packets, hold scaled to the capture):

    git worktree add /tmp/rc-base <commit>
    python bench/replay_core.py --baseline /tmp/rc-base [--repeat 5]
    git worktree remove /tmp/rc-base

With ``--whole``, each run is instead a whole ``voiplog replay --store none`` of
the capture, start-up, file reading and record writing included: the CPU time
(user and system) of that process, the fastest of ``--passes``, and the SHA-256
of the JSON lines it wrote. Compare the pure-Python paths of two trees with
VOIPLOG_NO_EXTENSIONS=1 (a worktree has no compiled extension).

The machine is shared: the pairs alternate which tree runs first, and the report
gives the median and the range of the ratios. Exit status 1 if records differ.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Captures: (label, packets, mean hold in seconds or None to scale it to the capture).
CAPTURES = (
    ("sip+rtp", 1_000_000, 60.0),
    ("sip-heavy", 600_000, None),
)

# Run in a child with the tree to measure first on sys.path: argv is TREE CAPTURE
# PASSES; each pass replays into a new Pipeline, and the fastest pass counts.
_CHILD = r"""
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
# An editable install would serve any module missing from the tree (a compiled
# extension a worktree lacks) from the installed checkout: only the tree counts.
sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith("__editable__")]
from voiplog.capture import open_capture
from voiplog.pipeline import Pipeline

frames = list(open_capture(sys.argv[2]))
seconds = []
for _ in range(int(sys.argv[3])):
    records = []
    pipeline = Pipeline(records.append)
    started = time.process_time()
    pipeline.feed(frames)
    pipeline.finish()
    seconds.append(time.process_time() - started)
seconds = min(seconds)
digest = hashlib.sha256()
for record in records:
    digest.update(json.dumps(record.to_dict(), sort_keys=True, default=str).encode())
print(json.dumps({"seconds": seconds, "records": len(records), "digest": digest.hexdigest(),
                  "packets": len(frames)}))
"""


# Run in a child: argv is TREE CAPTURE OUT; the whole `voiplog replay --store none`
# of the capture in that tree, start-up included, its JSON lines written to OUT.
_WHOLE = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.meta_path[:] = [f for f in sys.meta_path if not f.__module__.startswith("__editable__")]
from voiplog.cli.main import main
capture, out = sys.argv[2], sys.argv[3]
sys.argv = ["voiplog", "replay", "--store", "none", "--jsonl", out, capture]
main()
"""


def _run_whole(tree: Path, capture: Path, passes: int) -> dict:
    """The fastest of `passes` whole replays by CPU time (user + system) of the process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    seconds = []
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "records.jsonl"
        for _ in range(passes):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            done = subprocess.run(
                [sys.executable, "-c", _WHOLE, str(tree), str(capture), str(out)],
                cwd=tree, env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode:
                raise SystemExit(f"replay in {tree} failed:\n{done.stderr}")
            seconds.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        records = out.read_bytes()
    return {
        "seconds": min(seconds),
        "records": records.count(b"\n"),
        "digest": hashlib.sha256(records).hexdigest(),
        "packets": _packets(capture),
    }


@functools.cache
def _packets(capture: Path) -> int:
    from voiplog.capture import open_capture

    with open_capture(str(capture)) as reader:
        return sum(1 for _ in reader)


def _capture(label: str, packets: int, mean_hold_s: float | None, out_dir: Path) -> Path:
    from bench.replay_vs_tshark import cached_capture

    capture, _expected = cached_capture(
        out_dir, packets=packets, calls_concurrent=300, seed=1, mean_hold_s=mean_hold_s
    )
    return capture


def _run(tree: Path, capture: Path, passes: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tree), str(capture), str(passes)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"replay in {tree} failed:\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def measure(
    capture: Path, current: Path, baseline: Path, repeat: int, passes: int, whole: bool = False
) -> dict:
    """Alternate runs of both trees; the ratio current/baseline of each pair."""
    run = _run_whole if whole else _run
    ratios, times, digests = [], {"current": [], "baseline": []}, set()
    for i in range(repeat):
        order = [("current", current), ("baseline", baseline)]
        if i % 2:
            order.reverse()
        pair = {}
        for name, tree in order:
            result = run(tree, capture, passes)
            pair[name] = result["seconds"]
            times[name].append(result["seconds"])
            digests.add((result["records"], result["digest"]))
            packets = result["packets"]
        ratios.append(pair["current"] / pair["baseline"])
        print(
            f"  run {i + 1}: current {pair['current']:.3f} s, baseline "
            f"{pair['baseline']:.3f} s, ratio {ratios[-1]:.3f}",
            file=sys.stderr,
        )
    return {
        "packets": packets,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "current_s": times["current"],
        "baseline_s": times["baseline"],
        "same_records": len(digests) == 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="the baseline tree")
    parser.add_argument("--current", type=Path, default=ROOT, help="default: this tree")
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs per capture")
    parser.add_argument(
        "--passes", type=int, default=3, help="timed passes per child; the fastest counts"
    )
    parser.add_argument("--only", choices=[c[0] for c in CAPTURES], help="one capture")
    parser.add_argument(
        "--whole",
        action="store_true",
        help="time whole `replay --store none` processes (CPU time, start-up and reading "
        "included) instead of the per-packet path",
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args(argv)
    failed = False
    for label, packets, hold in CAPTURES:
        if args.only and label != args.only:
            continue
        capture = _capture(label, packets, hold, args.out_dir)
        print(f"{label}: {capture.name}", file=sys.stderr)
        result = measure(
            capture,
            args.current.resolve(),
            args.baseline.resolve(),
            args.repeat,
            args.passes,
            args.whole,
        )
        failed |= not result["same_records"]
        print(
            f"{label} ({result['packets']} packets): current/baseline median "
            f"{result['ratio_median']:.3f}, range {result['ratio_min']:.3f}-"
            f"{result['ratio_max']:.3f}; current {min(result['current_s']):.2f}-"
            f"{max(result['current_s']):.2f} s, baseline {min(result['baseline_s']):.2f}-"
            f"{max(result['baseline_s']):.2f} s; records "
            + ("identical" if result["same_records"] else "DIFFER")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
