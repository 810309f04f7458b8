"""App calls in real captures: what voiplog finds and names, and at what rate.

The captures are nDPI's own test set (real WhatsApp, Signal, Telegram, Zoom,
Teams, Messenger, Snapchat and KakaoTalk calls, and some 250 captures of
traffic that is no call), fetched by `scripts/fetch-app-captures`. Which of
them hold calls, how many and of which app is the table of
tests/conformance/test_app_captures.py, counted flow by flow.

Each capture is replayed in this process as a new user would (no POP config),
with ``app_classifier = "ndpi"`` and then ``"builtin"``; reported: the calls
found (a record for each), named right, and as exactly one record each, the call
records from captures of no call, the replay rate over the whole set and the
share of its packets that reached nDPI.

    python bench/app_captures.py [--captures DIR]

Exit status: 0 when, with nDPI, at least 95 % of the calls are found, 90 %
named right and no capture of no call gives a call record; 1 otherwise; 2 when
the captures or libndpi are missing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def replay(capture: Path, settings, apps):
    """The records of one capture, and the pipeline's counters."""
    from voiplog.capture import open_capture
    from voiplog.pipeline import Pipeline

    records: list = []
    pipeline = Pipeline(records.append, flow_settings=settings, apps=apps)
    with open_capture(str(capture)) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    return [r.to_dict() for r in records], pipeline.stats


def score(captures: Path, classifier: str) -> dict:
    from tests.conformance.test_app_captures import CALLS, app_calls
    from voiplog.apps import open_app_classifier
    from voiplog.flows import FlowSettings

    settings = FlowSettings(app_classifier=classifier)
    apps = open_app_classifier(settings).classifier  # one for every capture, as a daemon has
    calls = found = named = one = 0
    false: dict[str, int] = {}
    missed: dict[str, str] = {}
    packets = to_ndpi = 0
    seconds = 0.0
    names = sorted(
        p.name
        for p in captures.iterdir()
        if p.is_file() and not p.name.startswith((".", "COPYING"))
    )
    for name in names:
        began = time.perf_counter()
        records, stats = replay(captures / name, settings, apps)
        seconds += time.perf_counter() - began
        packets += stats.packets
        to_ndpi += stats.app_classifier_packets
        records = app_calls(records)
        if name not in CALLS:
            if records:
                false[name] = len(records)
            continue
        _subscriber, app, expected = CALLS[name]
        calls += len(expected)
        found += min(len(records), len(expected))
        named += min(
            sum(1 for r in records if (r.get("app") or {}).get("name") == app), len(expected)
        )
        one += len(records) == len(expected)
        if len(records) != len(expected) or any(
            (r.get("app") or {}).get("name") != app for r in records
        ):
            missed[name] = (
                f"{len(records)} records for {len(expected)} calls, named "
                f"{sorted({(r.get('app') or {}).get('name') or '-' for r in records})}"
            )
    if apps is not None:
        apps.close()
    return {
        "classifier": classifier,
        "captures": len(names),
        "calls": calls,
        "found": found,
        "named": named,
        "captures_with_exact_records": one,
        "captures_with_calls": sum(1 for n in names if n in CALLS),
        "false_records": false,
        "differences": missed,
        "packets": packets,
        "packets_per_s": round(packets / seconds) if seconds else None,
        "ndpi_packets": to_ndpi,
    }


def main(argv: list[str] | None = None) -> int:
    from tests.conformance.test_app_captures import CAPTURES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captures", type=Path, default=CAPTURES)
    args = parser.parse_args(argv)
    if not (args.captures / ".complete").is_file():
        print(
            f"no app captures in {args.captures}: run scripts/fetch-app-captures", file=sys.stderr
        )
        return 2
    from voiplog.ndpi import NdpiUnavailable, load

    try:
        load().close()
    except NdpiUnavailable as exc:
        print(f"libndpi: {exc}", file=sys.stderr)
        return 2
    results = [score(args.captures, name) for name in ("ndpi", "builtin")]
    print("| classifier | calls | found | named right | false records | packets/s | to nDPI |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        share = r["ndpi_packets"] / r["packets"] if r["packets"] else 0
        print(
            f"| {r['classifier']} | {r['calls']} | {r['found']} ({r['found'] / r['calls']:.0%}) "
            f"| {r['named']} ({r['named'] / r['calls']:.0%}) "
            f"| {sum(r['false_records'].values())} of {r['captures'] - r['captures_with_calls']} "
            f"captures | {r['packets_per_s']:,} | {share:.2%} |"
        )
    for r in results:
        print(json.dumps(r, sort_keys=True))
    ndpi = results[0]
    ok = (
        ndpi["found"] >= 0.95 * ndpi["calls"]
        and ndpi["named"] >= 0.90 * ndpi["calls"]
        and not ndpi["false_records"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
