"""Offline-pipeline benchmark: ``voiplog replay`` against tshark on the same capture.

Times ``voiplog replay CAPTURE --store none --jsonl OUT`` and
``tshark -r CAPTURE -q -z sip,stat -z rtp,streams`` (the reference: both find the calls
and the RTP streams with their loss and jitter), several times each, and measures the
peak RSS of every run. voiplog's records are then held against the capture's ground
truth, so that the benchmark cannot be won by doing less work or the wrong work.

``--memory-check`` instead replays a capture and one twice as long at the same
concurrency, and fails when voiplog's peak RSS grows by more than ``--max-growth``
percent: memory must follow the number of open calls, not the length of the capture.

Exit status: 0 when every gate passes, 1 when one fails (too slow, wrong records, memory
growth, a run that crashed), 2 on a usage problem (tool missing, bad option).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

try:
    from bench import gencapture, tshark_stats
except ModuleNotFoundError:  # run as a script: bench/ itself is on sys.path
    import gencapture  # type: ignore[no-redef]
    import tshark_stats  # type: ignore[no-redef]

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT_DIR = BENCH_DIR / "out"
MIN_BENCH_PACKETS = 500_000

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageProblem(Exception):
    """A tool is missing or an option cannot work; exit status 2."""


# -- running and measuring children ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    tool: str
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mb: float  # peak RSS of the tool itself: anonymous memory plus mapped file pages
    peak_anon_mb: float | None  # sampled RssAnon (heap only), when sampling was asked for
    exit_code: int
    stderr_tail: str


def _maxrss_bytes(usage: os.struct_rusage) -> int:
    # Linux reports kilobytes, macOS bytes.
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024


class _AnonSampler(threading.Thread):
    """Polls /proc/PID/status for the peak of RssAnon, which mapped files do not inflate."""

    def __init__(self, pid: int, interval_s: float = 0.02, *, follow_child: bool = False) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.follow_child = follow_child  # sample the process `pid` started (under GNU time)
        self.interval_s = interval_s
        self.stopped = threading.Event()
        self.peak_kb = 0

    def _status_path(self) -> Path | None:
        if not self.follow_child:
            return Path(f"/proc/{self.pid}/status")
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return Path(f"/proc/{children[0]}/status") if children else None

    def run(self) -> None:
        path = None
        while not self.stopped.is_set():
            if path is None:
                path = self._status_path()
                if path is None:
                    self.stopped.wait(0.002)
                    continue
            try:
                text = path.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("RssAnon:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                    break
            self.stopped.wait(self.interval_s)


GNU_TIME = "/usr/bin/time"


def run_measured(tool: str, argv: list[str], stdout_path: Path, *, sample_anon=False) -> Run:
    """Run ``argv`` to completion; wall time, CPU time and its own peak RSS.

    The peak comes from GNU time when it is installed: a child forked straight
    from this (large) process would report this process's size as its own peak
    until it execs, so wait4's figure is only the fallback.
    """
    stderr_path = stdout_path.with_suffix(stdout_path.suffix + ".stderr")
    maxrss_path = stdout_path.with_suffix(stdout_path.suffix + ".maxrss")
    if Path(GNU_TIME).exists():
        argv = [GNU_TIME, "-f", "%M", "-o", str(maxrss_path), *argv]
    else:
        maxrss_path.unlink(missing_ok=True)
    sampler = None
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        if sample_anon and Path("/proc/self/status").exists():
            sampler = _AnonSampler(proc.pid, follow_child=argv[0] == GNU_TIME)
            sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    if sampler is not None:
        sampler.stopped.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_rss = _maxrss_bytes(usage)
    if maxrss_path.exists():
        lines = maxrss_path.read_text().split()
        if lines and lines[-1].isdigit():
            peak_rss = int(lines[-1]) * 1024
    tail = stderr_path.read_text(errors="replace").strip().splitlines()[-15:]
    return Run(
        tool=tool,
        wall_s=round(wall, 4),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
        peak_rss_mb=round(peak_rss / 2**20, 1),
        peak_anon_mb=round(sampler.peak_kb / 1024, 1) if sampler else None,
        exit_code=proc.returncode,
        stderr_tail="\n".join(tail),
    )


def voiplog_command(override: str | None) -> list[str]:
    """How to start voiplog: ``python -m voiplog``, else the console script."""
    if override:
        return shlex.split(override)
    with contextlib.suppress(ImportError):
        if importlib.util.find_spec("voiplog.__main__") is not None:
            return [sys.executable, "-m", "voiplog"]
    script = shutil.which("voiplog")
    if script:
        return [script]
    raise UsageProblem("voiplog is not runnable: no voiplog.__main__ and no voiplog script")


def replay_argv(base: list[str], capture: Path, jsonl: Path) -> list[str]:
    return [*base, "replay", str(capture), "--store", "none", "--jsonl", str(jsonl)]


def tshark_argv(tshark: str, capture: Path) -> list[str]:
    return [tshark, "-r", str(capture), *tshark_stats.TSHARK_STATS_ARGS]


# -- captures --------------------------------------------------------------------------


def _generator_fingerprint() -> str:
    source = Path(gencapture.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:12]


def cached_capture(
    out_dir: Path, *, packets: int, calls_concurrent: int, seed: int, mean_hold_s: float | None
) -> tuple[Path, gencapture.Expected]:
    """A generated capture, reused while the generator and its parameters are unchanged."""
    folder = out_dir / "captures"
    folder.mkdir(parents=True, exist_ok=True)
    hold = "auto" if mean_hold_s is None else f"{mean_hold_s:g}"
    name = f"sip-rtp-p{packets}-c{calls_concurrent}-s{seed}-h{hold}-{_generator_fingerprint()}"
    capture = folder / f"{name}.pcap"
    sidecar = gencapture.sidecar_path(capture)
    if capture.exists() and sidecar.exists():
        with contextlib.suppress(ValueError, TypeError, json.JSONDecodeError):
            return capture, gencapture.Expected.load(sidecar)
    for stale in folder.glob(f"sip-rtp-p{packets}-c{calls_concurrent}-s{seed}-h{hold}-*"):
        stale.unlink()
    print(f"generating {capture.name} ...", file=sys.stderr)
    started = time.perf_counter()
    expected = gencapture.generate(
        capture,
        calls_concurrent=calls_concurrent,
        packets=packets,
        seed=seed,
        mean_hold_s=mean_hold_s,
    )
    print(
        f"  {expected.packets} packets, {expected.calls} calls in "
        f"{time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return capture, expected


def count_packets(capture: Path) -> int | None:
    """Records in a pcap or pcapng file, by walking the headers; None if neither."""
    with open(capture, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return None
        magic = head[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            record = struct.Struct("<IIII")
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            record = struct.Struct(">IIII")
        elif magic == b"\x0a\x0d\x0d\x0a":
            return _count_pcapng(f)
        else:
            return None
        count = 0
        while header := f.read(16):
            if len(header) < 16:
                break
            f.seek(record.unpack(header)[2], os.SEEK_CUR)
            count += 1
        return count


def _count_pcapng(f) -> int:
    f.seek(8)
    order = "<" if f.read(4) == b"\x4d\x3c\x2b\x1a" else ">"
    f.seek(0)
    count = 0
    while header := f.read(8):
        if len(header) < 8:
            break
        block_type, length = struct.unpack(order + "II", header)
        count += block_type in (3, 6)  # simple and enhanced packet blocks
        f.seek(length - 8, os.SEEK_CUR)
    return count


def warm_page_cache(capture: Path) -> None:
    """Read the file once so that no timed run pays for the first disk read."""
    with open(capture, "rb") as f:
        while f.read(1 << 24):
            pass


# -- checking voiplog's records --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    failures: list[str]
    warnings: list[str]
    summary: dict


def _stream_key(media: dict) -> tuple:
    return (
        media.get("src_ip"),
        media.get("src_port"),
        media.get("dst_ip"),
        media.get("dst_port"),
        media.get("ssrc"),
    )


def check_records(jsonl: Path, expected: gencapture.Expected) -> Verdict:
    """Hold voiplog's JSONL records against the generator's ground truth."""
    failures: list[str] = []
    warnings: list[str] = []
    records: list[dict] = []
    bad_lines = 0
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                bad_lines += 1
                continue
            if isinstance(value, dict):
                records.append(value)
            else:
                bad_lines += 1
    if bad_lines:
        failures.append(f"{bad_lines} lines of the JSONL output are not JSON objects")

    by_kind = Counter(str(r.get("kind")) for r in records)
    sip = [r for r in records if r.get("kind") == "sip"]
    by_disposition = Counter(str(r.get("disposition")) for r in sip)
    streams = [m for r in records for m in (r.get("media") or []) if isinstance(m, dict)]
    rtp_packets = sum(int(m.get("packets") or 0) for m in streams)
    rtp_lost = sum(int(m.get("lost") or 0) for m in streams)
    retransmitted = sum("invite_retransmitted" in (r.get("flags") or []) for r in sip)
    duration_total = sum(float(r.get("duration_s") or 0.0) for r in sip)
    summary = {
        "records": len(records),
        "records_by_kind": dict(by_kind),
        "calls_by_disposition": dict(by_disposition),
        "rtp_streams": len(streams),
        "rtp_packets": rtp_packets,
        "rtp_lost": rtp_lost,
        "calls_flagged_invite_retransmitted": retransmitted,
        "answered_duration_s_total": round(duration_total, 6),
    }

    truth_dispositions = {k: v for k, v in expected.calls_by_disposition.items() if v}
    if dict(by_disposition) != truth_dispositions:
        failures.append(
            f"calls by disposition: voiplog {dict(sorted(by_disposition.items()))}, "
            f"ground truth {dict(sorted(truth_dispositions.items()))}"
        )
    others = {k: v for k, v in by_kind.items() if k != "sip"}
    if others:
        failures.append(f"records of kind other than sip: {others} (the capture has none)")
    for what, seen, truth in (
        ("RTP packets", rtp_packets, expected.rtp_packets),
        ("RTP streams", len(streams), expected.rtp_streams),
        ("RTP lost", rtp_lost, expected.rtp_lost),
    ):
        if seen != truth:
            failures.append(f"{what}: voiplog {seen}, ground truth {truth}")
    if retransmitted != expected.calls_with_invite_retransmission:
        warnings.append(
            f"calls flagged invite_retransmitted: voiplog {retransmitted}, "
            f"ground truth {expected.calls_with_invite_retransmission}"
        )
    # ended_at - answered_at is exact to the microsecond in the ground truth
    if abs(duration_total - expected.answered_duration_s_total) > 1e-5 * max(expected.calls, 1):
        warnings.append(
            f"sum of duration_s: voiplog {duration_total:.6f}, "
            f"ground truth {expected.answered_duration_s_total:.6f}"
        )
    warnings.extend(_field_differences(sip, expected))
    if failures:
        failures.extend(_call_differences(sip, expected))
    return Verdict(not failures, failures, warnings, summary)


# Per-call fields that the ground truth knows exactly; a difference is reported, not fatal.
COMPARED_FIELDS = (
    "caller",
    "callee",
    "caller_ip",
    "caller_port",
    "callee_ip",
    "callee_port",
    "final_status",
    "ended_by",
    "started_at",
    "ringing_at",
    "answered_at",
    "ended_at",
    "duration_s",
)


def _field_differences(sip: list[dict], expected: gencapture.Expected) -> list[str]:
    seen = {r.get("call_id"): r for r in sip}
    differing: dict[str, list[str]] = {}
    for call in expected.call_records:
        record = seen.get(call["call_id"])
        if record is None:
            continue
        for name in COMPARED_FIELDS:
            if record.get(name) != call[name]:
                differing.setdefault(name, []).append(
                    f"{call['call_id']}: {record.get(name)!r}, ground truth {call[name]!r}"
                )
    return [
        f"{name} differs on {len(examples)} calls, e.g. {examples[0]}"
        for name, examples in differing.items()
    ]


def _call_differences(sip: list[dict], expected: gencapture.Expected, limit: int = 10) -> list[str]:
    """The first few calls that differ, to show where a count mismatch comes from."""
    seen = {r.get("call_id"): r for r in sip}
    lines = []
    truth_ids = set()
    for call in expected.call_records:
        truth_ids.add(call["call_id"])
        record = seen.get(call["call_id"])
        if record is None:
            lines.append(f"  call {call['call_id']} ({call['disposition']}): no record")
            continue
        if record.get("disposition") != call["disposition"]:
            lines.append(
                f"  call {call['call_id']}: disposition {record.get('disposition')!r}, "
                f"ground truth {call['disposition']!r}"
            )
        media = {_stream_key(m): m for m in record.get("media") or [] if isinstance(m, dict)}
        for truth in call["media"]:
            got = media.get(_stream_key(truth))
            if got is None:
                lines.append(f"  call {call['call_id']}: stream {_stream_key(truth)} missing")
            elif (got.get("packets"), got.get("lost")) != (truth["packets"], truth["lost"]):
                lines.append(
                    f"  call {call['call_id']}: stream ssrc {truth['ssrc']:#010x} "
                    f"packets/lost {got.get('packets')}/{got.get('lost')}, "
                    f"ground truth {truth['packets']}/{truth['lost']}"
                )
        if len(lines) >= limit:
            break
    unknown = [cid for cid in seen if cid not in truth_ids]
    if unknown and len(lines) < limit:
        lines.append(f"  {len(unknown)} records for calls not in the capture, e.g. {unknown[0]!r}")
    return lines[:limit]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- reporting -------------------------------------------------------------------------


def _tool_version(argv: list[str]) -> str | None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else None


def machine_info() -> dict:
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _summarise(runs: list[Run]) -> dict:
    walls = [r.wall_s for r in runs]
    return {
        "best_s": min(walls),
        "median_s": statistics.median(walls),
        "cpu_best_s": min(r.cpu_s for r in runs),
        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
    }


def save_results(out_dir: Path, name: str, results: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{name}-{stamp}.json"
    text = json.dumps(results, indent=2, default=str) + "\n"
    path.write_text(text)
    (out_dir / f"{name}-latest.json").write_text(text)
    return path


def _print_verdict(label: str, verdict: Verdict) -> None:
    for warning in verdict.warnings:
        print(f"warning: {label}: {warning}", file=sys.stderr)
    if not verdict.ok:
        bar = "!" * 78
        print(f"\n{bar}\nWRONG RESULTS: {label} disagrees with the ground truth", file=sys.stderr)
        for failure in verdict.failures:
            print(f"  {failure}", file=sys.stderr)
        print(f"{bar}\n", file=sys.stderr)


# -- the two modes ---------------------------------------------------------------------


def obtain_capture(args: argparse.Namespace) -> tuple[Path, gencapture.Expected | None, int]:
    if args.capture:
        capture = Path(args.capture)
        if not capture.exists():
            raise UsageProblem(f"{capture}: no such file")
        sidecar = gencapture.sidecar_path(capture)
        expected = gencapture.Expected.load(sidecar) if sidecar.exists() else None
        packets = expected.packets if expected else count_packets(capture)
        if packets is None:
            raise UsageProblem(f"{capture}: not a pcap or pcapng file")
        return capture, expected, packets
    capture, expected = cached_capture(
        args.out_dir,
        packets=args.packets,
        calls_concurrent=args.calls_concurrent,
        seed=args.seed,
        mean_hold_s=args.mean_hold or None,
    )
    return capture, expected, expected.packets


def speed(args: argparse.Namespace) -> int:
    tshark = shutil.which(args.tshark)
    if tshark is None:
        raise UsageProblem(f"tshark not found: {args.tshark}")
    voiplog = voiplog_command(args.voiplog_cmd)
    if not args.capture and args.packets < MIN_BENCH_PACKETS and not args.allow_small:
        raise UsageProblem(
            f"--packets {args.packets}: the benchmark needs at least {MIN_BENCH_PACKETS} "
            "(or --allow-small for a smoke run)"
        )
    capture, expected, packets = obtain_capture(args)
    if packets < MIN_BENCH_PACKETS and not args.allow_small:
        raise UsageProblem(
            f"{capture}: {packets} packets; the benchmark needs at least "
            f"{MIN_BENCH_PACKETS} (or --allow-small for a smoke run)"
        )
    work = args.out_dir / "runs"
    work.mkdir(parents=True, exist_ok=True)
    jsonl = work / "voiplog-replay.jsonl"
    tshark_out = work / "tshark-stats.txt"
    warm_page_cache(capture)

    runs: dict[str, list[Run]] = {"voiplog": [], "tshark": []}
    digests: list[str] = []
    verdict = None
    tshark_view = None
    for rep in range(args.repeat):
        run = run_measured("voiplog", replay_argv(voiplog, capture, jsonl), jsonl)
        print(f"  run {rep + 1}/{args.repeat} voiplog {run.wall_s:.2f} s", file=sys.stderr)
        if run.exit_code != 0:
            print(f"voiplog exited {run.exit_code}:\n{run.stderr_tail}", file=sys.stderr)
            return EXIT_FAILED
        runs["voiplog"].append(run)
        digests.append(_file_digest(jsonl))
        if rep == 0 and expected is not None:
            verdict = check_records(jsonl, expected)
            _print_verdict("voiplog", verdict)
        run = run_measured("tshark", tshark_argv(tshark, capture), tshark_out)
        print(f"  run {rep + 1}/{args.repeat} tshark  {run.wall_s:.2f} s", file=sys.stderr)
        if run.exit_code != 0:
            print(f"tshark exited {run.exit_code}:\n{run.stderr_tail}", file=sys.stderr)
            return EXIT_USAGE
        runs["tshark"].append(run)
        if rep == 0:
            tshark_view = tshark_stats.parse(tshark_out.read_text(errors="replace"))

    failures: list[str] = []
    if expected is None:
        print(
            f"warning: {capture} has no {gencapture.sidecar_path(capture).name}: "
            "voiplog's records are NOT checked",
            file=sys.stderr,
        )
    elif verdict is not None and not verdict.ok:
        failures.append("voiplog's records disagree with the ground truth")
    if len(set(digests)) > 1:
        failures.append("voiplog's JSONL differs between runs of the same capture")
        print("WRONG RESULTS: replaying the same capture gave different JSONL", file=sys.stderr)
    tshark_problems = (
        tshark_stats.disagreements(tshark_view, expected) if expected and tshark_view else []
    )
    for problem in tshark_problems:
        print(f"warning: tshark and the ground truth differ: {problem}", file=sys.stderr)

    summary = {tool: _summarise(tool_runs) for tool, tool_runs in runs.items()}
    ratio_best = summary["tshark"]["best_s"] / summary["voiplog"]["best_s"]
    ratio_median = summary["tshark"]["median_s"] / summary["voiplog"]["median_s"]
    ratio_cpu = summary["tshark"]["cpu_best_s"] / max(summary["voiplog"]["cpu_best_s"], 1e-9)
    if ratio_best < args.min_ratio:
        failures.append(f"tshark/voiplog time ratio {ratio_best:.2f} < {args.min_ratio}")

    print()
    print(f"capture: `{capture}` ({packets} packets, {args.repeat} runs each, best of)")
    print()
    print("| tool | packets | wall s (best) | wall s (median) | CPU s | packets/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tool in ("voiplog", "tshark"):
        s = summary[tool]
        print(
            f"| {tool} | {packets} | {s['best_s']:.2f} | {s['median_s']:.2f} | "
            f"{s['cpu_best_s']:.2f} | {packets / s['best_s']:,.0f} | {s['peak_rss_mb']:.1f} |"
        )
    print()
    print(
        f"tshark_time / voiplog_time: **{ratio_best:.2f}** best-of "
        f"(median {ratio_median:.2f}, CPU {ratio_cpu:.2f}); required >= {args.min_ratio}"
    )
    if verdict is not None:
        state = "agree" if verdict.ok else "DISAGREE"
        print(f"voiplog records vs ground truth: {state}")
    print()

    results = {
        "benchmark": "replay_vs_tshark",
        "when": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "versions": {
            "tshark": _tool_version([tshark, "--version"]),
            "voiplog": _tool_version([*voiplog, "--version"]),
        },
        "commands": {
            "voiplog": replay_argv(voiplog, capture, jsonl),
            "tshark": tshark_argv(tshark, capture),
        },
        "capture": {
            "path": str(capture),
            "packets": packets,
            "bytes": capture.stat().st_size,
            "generator": expected.generator if expected else None,
        },
        "runs": {tool: [asdict(r) for r in tool_runs] for tool, tool_runs in runs.items()},
        "summary": summary,
        "ratio": {"best": ratio_best, "median": ratio_median, "cpu": ratio_cpu},
        "min_ratio": args.min_ratio,
        "correctness": {
            "checked": verdict is not None,
            "ok": verdict.ok if verdict else None,
            "failures": verdict.failures if verdict else [],
            "warnings": verdict.warnings if verdict else [],
            "voiplog": verdict.summary if verdict else None,
            "deterministic_output": len(set(digests)) == 1,
            "tshark_disagreements": tshark_problems,
        },
        "failures": failures,
        "passed": not failures,
    }
    path = save_results(args.out_dir, "replay_vs_tshark", results)
    print(f"results: {path}", file=sys.stderr)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def memory(args: argparse.Namespace) -> int:
    if args.capture:
        raise UsageProblem("--memory-check generates its own pair of captures; drop --capture")
    voiplog = voiplog_command(args.voiplog_cmd)
    base, base_truth = cached_capture(
        args.out_dir,
        packets=args.packets,
        calls_concurrent=args.calls_concurrent,
        seed=args.seed,
        mean_hold_s=args.mean_hold or None,
    )
    # Same call shapes (mean hold) and concurrency: only the length of the capture grows.
    hold = base_truth.generator["mean_hold_s"]
    double, double_truth = cached_capture(
        args.out_dir,
        packets=2 * args.packets,
        calls_concurrent=args.calls_concurrent,
        seed=args.seed,
        mean_hold_s=hold,
    )
    work = args.out_dir / "runs"
    work.mkdir(parents=True, exist_ok=True)
    measured = {}
    failures: list[str] = []
    for label, capture, truth in (("base", base, base_truth), ("double", double, double_truth)):
        warm_page_cache(capture)
        jsonl = work / f"voiplog-memory-{label}.jsonl"
        runs = []
        for rep in range(args.repeat):
            run = run_measured(
                "voiplog", replay_argv(voiplog, capture, jsonl), jsonl, sample_anon=True
            )
            print(
                f"  {label} run {rep + 1}/{args.repeat}: {run.wall_s:.2f} s, "
                f"peak RSS {run.peak_rss_mb:.1f} MB, anonymous {run.peak_anon_mb} MB",
                file=sys.stderr,
            )
            if run.exit_code != 0:
                print(f"voiplog exited {run.exit_code}:\n{run.stderr_tail}", file=sys.stderr)
                return EXIT_FAILED
            runs.append(run)
        verdict = check_records(jsonl, truth)
        _print_verdict(f"voiplog on the {label} capture", verdict)
        if not verdict.ok:
            failures.append(f"voiplog's records on the {label} capture disagree with ground truth")
        measured[label] = {
            "capture": str(capture),
            "packets": truth.packets,
            "calls": truth.calls,
            "calls_peak_concurrent": truth.calls_peak_concurrent,
            "peak_rss_mb": statistics.median(r.peak_rss_mb for r in runs),
            "peak_anon_mb": (
                statistics.median(r.peak_anon_mb for r in runs)
                if all(r.peak_anon_mb is not None for r in runs)
                else None
            ),
            "runs": [asdict(r) for r in runs],
            "correct": verdict.ok,
        }
    key = "peak_anon_mb" if args.memory_metric == "anon" else "peak_rss_mb"
    if measured["base"][key] is None or measured["double"][key] is None:
        raise UsageProblem("--memory-metric anon needs /proc (Linux)")
    rss_base = measured["base"][key]
    rss_double = measured["double"][key]
    growth = (rss_double - rss_base) / rss_base * 100
    metric = "peak RSS" if args.memory_metric == "rss" else "peak anonymous RSS"
    if growth > args.max_growth:
        failures.append(f"{metric} grew {growth:.1f} % > {args.max_growth} %")

    def mb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    print()
    print("| capture | packets | calls | peak concurrent | peak RSS MB | peak anonymous MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label in ("base", "double"):
        m = measured[label]
        print(
            f"| {label} | {m['packets']} | {m['calls']} | {m['calls_peak_concurrent']} | "
            f"{mb(m['peak_rss_mb'])} | {mb(m['peak_anon_mb'])} |"
        )
    print()
    print(
        f"{metric}: {rss_base:.1f} MB -> {rss_double:.1f} MB: **{growth:+.1f} %** "
        f"(allowed: at most +{args.max_growth} %)"
    )
    print()
    results = {
        "benchmark": "replay_memory",
        "when": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "command": replay_argv(voiplog, Path("CAPTURE"), Path("OUT")),
        "captures": measured,
        "metric": args.memory_metric,
        "growth_percent": growth,
        "max_growth_percent": args.max_growth,
        "failures": failures,
        "passed": not failures,
    }
    path = save_results(args.out_dir, "replay_memory", results)
    print(f"results: {path}", file=sys.stderr)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time voiplog replay against tshark on one capture (see bench/README.md)."
    )
    parser.add_argument("--capture", help="use this pcap instead of generating one")
    parser.add_argument(
        "--packets", type=int, default=2_000_000, help="generated capture size (default 2M)"
    )
    parser.add_argument("--calls-concurrent", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--mean-hold",
        type=float,
        default=60.0,
        help="mean answered-call hold in seconds (default 60; 0 scales it to the capture)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool")
    parser.add_argument("--min-ratio", type=float, default=2.0, help="least tshark/voiplog time")
    parser.add_argument(
        "--memory-check",
        action="store_true",
        help="compare voiplog's peak RSS on the capture and on one twice as long",
    )
    parser.add_argument(
        "--max-growth", type=float, default=10.0, help="memory check: allowed RSS growth, %%"
    )
    parser.add_argument(
        "--memory-metric",
        choices=("rss", "anon"),
        default="rss",
        help="memory check: gate on peak RSS (default) or on peak anonymous RSS, which "
        "leaves out pages of a memory-mapped capture",
    )
    parser.add_argument("--tshark", default="tshark")
    parser.add_argument(
        "--voiplog-cmd", help='command that starts voiplog (default: "python -m voiplog")'
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument(
        "--allow-small",
        action="store_true",
        help=f"accept captures under {MIN_BENCH_PACKETS} packets (smoke runs only)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.packets < 1 or args.calls_concurrent < 1:
        parser.error("--packets and --calls-concurrent must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return memory(args) if args.memory_check else speed(args)
    except UsageProblem as problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
