"""Run every fuzz harness for a share of a time budget and report what they found.

    python fuzz/run.py --seconds 600            # all harnesses, 600 s in total
    python fuzz/run.py --seconds 60 --only sip,tcp

Each harness runs in its own process (libFuzzer through atheris) with its corpus in
``--corpus DIR/<name>`` (seeded from real messages and frames, kept between runs so
that later runs start from what earlier ones found) and a memory limit. A finding
(an exception outside the harness's invariant, a timeout or the memory limit) leaves
the input in ``--artifacts`` and makes the exit status 1. The invariant of each
harness is the first line of its file.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESSES = [
    "sip",
    "sdp",
    "uri",
    "decode",
    "fragments",
    "tcp",
    "websocket",
    "hep",
    "sctp",
    "capture",
    "pipeline",
]


def invariant(name: str) -> str:
    text = (HERE / f"fuzz_{name}.py").read_text()
    return text.split("\n", 1)[0].strip('"').removeprefix("Invariant: ")


def run_one(name: str, seconds: int, corpus: Path, artifacts: Path, rss_mb: int) -> dict:
    corpus_dir = corpus / name
    corpus_dir.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        f"fuzz.fuzz_{name}",
        str(corpus_dir),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={rss_mb}",
        "-timeout=20",
        "-max_len=16384",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/{name}-",
    ]
    started = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=HERE.parent, capture_output=True, text=True, errors="replace", check=False
    )
    log = proc.stdout + proc.stderr
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"#\d+\s+\w+\s+cov: (\d+)", log)
    found = re.findall(r"Test unit written to (\S+)", log)
    return {
        "name": name,
        "exit": proc.returncode,
        "seconds": round(time.monotonic() - started),
        "runs": int(runs[-1]) if runs else 0,
        "coverage": int(cov[-1]) if cov else 0,
        "corpus": sum(1 for _ in corpus_dir.iterdir()),
        "findings": found,
        "log_tail": "\n".join(log.splitlines()[-40:]) if proc.returncode else "",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="total time budget (default 60)")
    parser.add_argument("--only", default="", help="comma-separated harness names")
    parser.add_argument("--corpus", type=Path, default=HERE / "corpus", help="corpus root")
    parser.add_argument(
        "--artifacts", type=Path, default=HERE / "findings", help="where findings are saved"
    )
    parser.add_argument("--rss-mb", type=int, default=1024, help="memory limit per harness")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or HARNESSES
    unknown = sorted(set(names) - set(HARNESSES))
    if unknown:
        parser.error(f"unknown harness {', '.join(unknown)}; known: {', '.join(HARNESSES)}")
    share = max(1, args.seconds // len(names))
    print(f"fuzzing {len(names)} harnesses, {share} s each", flush=True)
    results = []
    for name in names:
        result = run_one(name, share, args.corpus, args.artifacts, args.rss_mb)
        results.append(result)
        status = "ok" if result["exit"] == 0 else f"FINDING (exit {result['exit']})"
        print(
            f"{name:10} {status:18} {result['runs']:>9} runs  cov {result['coverage']:>5}  "
            f"corpus {result['corpus']:>5}  {result['seconds']} s",
            flush=True,
        )
        print(f"           invariant: {invariant(name)}", flush=True)
        for path in result["findings"]:
            print(f"           input saved: {path}", flush=True)
        if result["log_tail"]:
            print(result["log_tail"], flush=True)
    failed = [r["name"] for r in results if r["exit"] != 0]
    total = sum(r["runs"] for r in results)
    print(f"total {total} runs; findings in: {', '.join(failed) if failed else 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
