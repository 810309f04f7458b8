"""App-call benchmark: what the application classifier (nDPI) costs, and what it finds.

1. The SIP+RTP benchmark capture of `replay_vs_tshark.py` (generated and cached
   the same way), and its copy without SIP (every RTP flow then goes to the flow
   classifier, and its first datagrams to nDPI), replayed with
   ``app_classifier = "builtin"`` and ``"ndpi"`` alternately: the rate with nDPI
   may fall by at most ``--max-slowdown`` (10 %) on the SIP+RTP capture.
2. An app-heavy capture: calls of every app that tests/appcraft.py crafts (relayed,
   switched to peer-to-peer, muted, IPv6) among traffic that is no call (QUIC,
   DNS, NTP, WireGuard, cloud gaming, chat and voice messages over TLS, keepalives,
   unanswered calls). Its replay rate with nDPI is reported with the share of
   packets that reached nDPI, and its records are checked: every call found, the
   app named, no call record from the rest.

    python bench/app_calls.py                       # 600k-packet SIP+RTP capture, 3 runs each
    python bench/app_calls.py --packets 2000000 --calls 400

Exit status: 0 when the slowdown is within bounds, at least 95 % of the crafted
calls are found and 90 % named right, and no trap gives a record; 1 otherwise;
2 when libndpi is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

try:
    from bench import media_sessions as ms
    from bench import replay_vs_tshark as rvt
except ModuleNotFoundError:  # run as a script: bench/ itself is on sys.path
    import media_sessions as ms  # type: ignore[no-redef]
    import replay_vs_tshark as rvt  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = """
[[subscriber_networks]]
cidr = "100.64.0.0/10"
[[subscriber_networks]]
cidr = "10.0.0.0/8"
[[subscriber_networks]]
cidr = "2001:db8::/32"
"""


def app_mix(out_dir: Path, calls: int, traps: int, seed: int):
    """The app-heavy capture (cached by its parameters) and the crafted calls in it."""
    sys.path.insert(0, str(ROOT))
    from tests import appcraft

    frames, crafted = appcraft.mix(seed, calls=calls, traps=traps, spread_s=240.0)
    path = out_dir / "captures" / f"app-mix-{calls}-{traps}-{seed}.pcap"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        appcraft.write_pcap(path, frames)
    return path, crafted


def configs(out_dir: Path) -> dict[str, Path]:
    made = {}
    for name in ("builtin", "ndpi"):
        path = out_dir / f"app-calls-{name}.toml"
        path.write_text(f'{SUBSCRIBERS}\n[media_sessions]\napp_classifier = "{name}"\n')
        made[name] = path
    return made


def timed(base: list[str], capture: Path, config: Path, jsonl: Path) -> rvt.Run:
    argv = [*rvt.replay_argv(base, capture, jsonl), "--config", str(config)]
    return rvt.run_measured("voiplog", argv, jsonl)


def in_process(capture: Path, config: Path):
    """Replay once in this process: the records and the pipeline's counters."""
    from voiplog.apps import open_app_classifier
    from voiplog.capture import open_capture
    from voiplog.cli._common import load_pipeline_parts
    from voiplog.wiring import build_pipeline

    parts = load_pipeline_parts(str(config))
    records = []
    apps = open_app_classifier(parts.flow_settings)
    pipeline = build_pipeline(parts, records.append, apps=apps.classifier)
    with open_capture(str(capture)) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    apps.classifier.close()
    return records, pipeline.stats


def score(records, crafted) -> dict:
    calls = [c for c in crafted if c.is_call]
    by_subscriber: dict[str, list] = {}
    for r in records:
        if r.transport == "udp":
            by_subscriber.setdefault(r.subscriber_ip, []).append(r)
    found = sum(1 for c in calls if by_subscriber.get(c.subscriber_ip))
    named = sum(
        1
        for c in calls
        if any(
            (r.extra.get("app") or {}).get("name") == c.app
            for r in by_subscriber.get(c.subscriber_ip, [])
        )
    )
    one = sum(1 for c in calls if len(by_subscriber.get(c.subscriber_ip, [])) == 1)
    traps = [c for c in crafted if not c.is_call]
    false = sum(len(by_subscriber.get(c.subscriber_ip, [])) for c in traps)
    missed_by_app: dict[str, int] = {}
    unnamed_by_app: dict[str, int] = {}
    for c in calls:
        mine = by_subscriber.get(c.subscriber_ip, [])
        if not mine:
            missed_by_app[c.app] = missed_by_app.get(c.app, 0) + 1
        elif not any((r.extra.get("app") or {}).get("name") == c.app for r in mine):
            unnamed_by_app[c.app] = unnamed_by_app.get(c.app, 0) + 1
    return {
        "calls": len(calls),
        "found": found,
        "named": named,
        "one_record": one,
        "traps": len(traps),
        "trap_records": false,
        "missed_by_app": missed_by_app,
        "unnamed_by_app": unnamed_by_app,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=600_000)
    parser.add_argument("--calls-concurrent", type=int, default=300)
    parser.add_argument("--mean-hold", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=280, help="app calls in the app mix")
    parser.add_argument("--traps", type=int, default=120, help="non-call traffic in the app mix")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-slowdown", type=float, default=0.10)
    parser.add_argument("--min-found", type=float, default=0.95, help="share of calls found")
    parser.add_argument("--min-named", type=float, default=0.90, help="share named right")
    parser.add_argument("--voiplog-cmd", default=None)
    parser.add_argument("--out-dir", type=Path, default=rvt.DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)

    from voiplog.ndpi import NdpiUnavailable, load

    try:
        with load() as classifier:
            release = classifier.name
    except NdpiUnavailable as exc:
        print(f"app_calls: {exc}")
        return 2

    capture, _expected = rvt.cached_capture(
        args.out_dir,
        packets=args.packets,
        calls_concurrent=args.calls_concurrent,
        seed=args.seed,
        mean_hold_s=args.mean_hold or None,
    )
    no_sip = capture.with_name(capture.stem + "-no-sip.pcap")
    if not no_sip.exists() or no_sip.stat().st_mtime < capture.stat().st_mtime:
        ms.strip_sip(capture, no_sip)
    started = time.perf_counter()
    mix, crafted = app_mix(args.out_dir, args.calls, args.traps, args.seed)
    print(f"app mix: {mix.name} ({time.perf_counter() - started:.1f} s to craft)")
    made = configs(args.out_dir)
    runs_dir = args.out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = rvt.voiplog_command(args.voiplog_cmd)
    captures = {"SIP+RTP": capture, "RTP without SIP": no_sip, "app mix": mix}
    packets = {}
    for name, path in captures.items():
        rvt.warm_page_cache(path)
        packets[name] = rvt.count_packets(path)
    runs: dict[tuple[str, str], list] = {}
    for i in range(args.repeat):
        for name, path in captures.items():
            for classifier_name, config in made.items():
                jsonl = runs_dir / f"app-calls-{classifier_name}.jsonl"
                run = timed(base, path, config, jsonl)
                if run.exit_code:
                    print(f"{name}/{classifier_name}: voiplog failed:\n{run.stderr_tail}")
                    return 1
                runs.setdefault((name, classifier_name), []).append(run)
                print(f"  run {i + 1}/{args.repeat} {name} {classifier_name}: {run.wall_s:.2f} s")

    records, stats = in_process(mix, made["ndpi"])
    found = score(records, crafted)
    _records, sip_stats = in_process(capture, made["ndpi"])

    print(f"\n{release}; {rvt.machine_info()}\n")
    print("| capture | packets | classifier | wall s (best) | packets/s (best) |")
    print("|---|---:|---|---:|---:|")
    best = {}
    for (name, classifier_name), measured in runs.items():
        wall = min(r.wall_s for r in measured)
        best[(name, classifier_name)] = packets[name] / wall
        print(
            f"| {name} | {packets[name]:,} | {classifier_name} | {wall:.2f} | "
            f"{packets[name] / wall:,.0f} |"
        )
    slowdown = 1 - best[("SIP+RTP", "ndpi")] / best[("SIP+RTP", "builtin")]
    print(f"\nSIP+RTP: nDPI costs {slowdown:.1%} of the rate (at most {args.max_slowdown:.0%})")
    share = sip_stats.app_classifier_packets / max(sip_stats.packets, 1)
    print(f"SIP+RTP: {sip_stats.app_classifier_packets:,} packets reached nDPI ({share:.3%})")
    share = stats.app_classifier_packets / max(stats.packets, 1)
    print(
        f"app mix: {stats.app_classifier_packets:,} of {stats.packets:,} packets reached nDPI "
        f"({share:.2%})"
    )
    print(f"app mix: {json.dumps(found)}")
    ok = slowdown <= args.max_slowdown
    if (
        found["found"] < args.min_found * found["calls"]
        or found["named"] < args.min_named * found["calls"]
        or found["trap_records"]
    ):
        ok = False
    print(
        f"app mix: {found['found'] / found['calls']:.1%} of the calls found "
        f"(at least {args.min_found:.0%}), {found['named'] / found['calls']:.1%} named "
        f"right (at least {args.min_named:.0%}), {found['trap_records']} records from "
        f"{found['traps']} captures of no call"
    )
    rvt.save_results(
        args.out_dir,
        "app_calls",
        {
            "release": release,
            "slowdown": slowdown,
            "found": found,
            "rates": {f"{n}/{c}": r for (n, c), r in best.items()},
        },
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
