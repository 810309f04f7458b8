"""Live capture rate: the highest packet rate into a veth at which `voiplog run` drops nothing.

Realistic SIP + two-way G.711 RTP (bench/gencapture.py: 300 concurrent calls) is
replayed by tcpreplay from one network namespace into a veth pair; `voiplog run
--store none` captures on the other end, in the other namespace, with its
default ring (64 MiB, 1 MiB blocks). Each trial sends at one fixed rate for
`--seconds` (30 by default, looping over the capture), then stops the daemon
with SIGTERM and reads, from its closing log lines, the packets its ring
received, the packets the kernel dropped for want of ring space, and the
packets the interface missed. A rate passes when there was no drop of either
kind and tcpreplay reached at least 98 % of it.

Rates are tried in ascending order until one fails; then the gap between the
last pass and the first failure is halved `--refine` times. The result line
gives the highest passing rate. Each trial also reports the daemon's own CPU
time per packet, a figure that holds whatever else the machine is running, and
the load average when it started: on a shared machine the rate a daemon keeps
up with depends on the CPU it is given. Needs root, iproute2 and tcpreplay (Debian:
tcpreplay). Traffic stays inside the two namespaces made for the run
(TEST-NET-1 addresses), and each namespace is deleted at the end.

    python bench/live_rate.py                      # 100k..400k packets/s, 30 s each
    python bench/live_rate.py --rates 200000 --seconds 30
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.netns import available, veth_pair  # noqa: E402

CONFIG = """
pop = "bench"
[daemon]
status_interval_s = 5
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trial(pair, capture: Path, rate: int, seconds: int, workdir: Path, nice: int) -> dict:
    cfg = workdir / "bench.toml"
    cfg.write_text(CONFIG)
    err = workdir / f"daemon-{rate}.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    niceness = ["nice", "-n", str(nice)] if nice else []
    daemon = subprocess.Popen(
        pair.command(
            pair.callee_ns, *niceness, sys.executable, "-m", "voiplog", "run", "--config", str(cfg),
            "--interface", pair.callee_if, "--store", "none", "--jsonl", str(workdir / "out.jsonl"),
        ),
        cwd=ROOT, env=env, stderr=err.open("w"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "capturing on" not in err.read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon did not start:\n{err.read_text()}")
            time.sleep(0.1)
        load = os.getloadavg()[0]
        cpu_before = _cpu_seconds(daemon.pid)
        sender = subprocess.run(
            pair.command(
                pair.caller_ns, *niceness, "tcpreplay", "-q", "-K", "-i", pair.caller_if,
                f"--pps={rate}", f"--duration={seconds}", "--loop=0", str(capture),
            ),
            capture_output=True, text=True, timeout=seconds + 120,
        )  # fmt: skip
        time.sleep(1.0)
        cpu = _cpu_seconds(daemon.pid) - cpu_before
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    log = err.read_text()
    match = re.search(
        r"(\d+) packets received, (\d+) dropped in the ring, (\d+) missed by the interface", log
    )
    if match is None:
        raise SystemExit(f"no capture counters in the daemon's log:\n{log}")
    received, dropped, missed = map(int, match.groups())
    sent = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", sender.stdout)
    if sent is None:
        raise SystemExit(f"tcpreplay said:\n{sender.stdout}\n{sender.stderr}")
    sent_packets, sent_seconds = int(sent.group(1)), float(sent.group(2))
    return {
        "rate": rate,
        "sent": sent_packets,
        "sent_pps": sent_packets / sent_seconds if sent_seconds else 0.0,
        "seconds": sent_seconds,
        "received": received,
        "dropped": dropped,
        "missed": missed,
        "cpu_us_per_packet": cpu / received * 1e6 if received else 0.0,
        "load": load,
    }


def passed(result: dict) -> bool:
    return (
        result["dropped"] == 0
        and result["missed"] == 0
        and result["sent_pps"] >= 0.98 * result["rate"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100000,150000,200000,250000,300000,400000")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--refine", type=int, default=2, help="halvings after the first failure")
    parser.add_argument("--capture", type=Path, help="pcap to replay (default: generated)")
    parser.add_argument("--packets", type=int, default=1_000_000, help="size of the generated one")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the daemon and the sender under `nice -n N` (e.g. -10: ahead of other work)",
    )
    args = parser.parse_args()
    reason = available()
    if reason is None and shutil.which("tcpreplay") is None:
        reason = "needs tcpreplay (Debian: tcpreplay)"
    if reason:
        print(f"live_rate: {reason}", file=sys.stderr)
        return 2
    rates = sorted(int(r) for r in args.rates.split(","))
    with tempfile.TemporaryDirectory(prefix="voiplog-live-rate-") as tmp:
        workdir = Path(tmp)
        capture = args.capture
        if capture is None:
            from bench.gencapture import generate

            capture = workdir / "traffic.pcap"
            generate(capture, calls_concurrent=300, packets=args.packets, seed=1)
        print(f"{'rate':>9} {'sent/s':>9} {'seconds':>7} {'received':>10} {'ring drops':>10} "
              f"{'if missed':>9} {'cpu µs/pkt':>10} {'load':>5}  verdict")  # fmt: skip
        best = 0
        first_failure = None
        with veth_pair("vlr") as pair:

            def run(rate: int) -> bool:
                result = trial(pair, capture, rate, args.seconds, workdir, args.nice)
                ok = passed(result)
                print(
                    f"{rate:>9,} {result['sent_pps']:>9,.0f} {result['seconds']:>7.1f} "
                    f"{result['received']:>10,} {result['dropped']:>10,} {result['missed']:>9,} "
                    f"{result['cpu_us_per_packet']:>10.2f} {result['load']:>5.1f}  "
                    f"{'pass' if ok else 'FAIL'}",
                    flush=True,
                )
                return ok

            for rate in rates:
                if run(rate):
                    best = rate
                else:
                    first_failure = rate
                    break
            if first_failure is not None:
                low, high = best, first_failure
                for _ in range(args.refine):
                    middle = (low + high) // 2
                    if middle in (low, high):
                        break
                    if run(middle):
                        low = best = middle
                    else:
                        high = middle
        print(f"highest rate with zero drops for {args.seconds} s: {best:,} packets/s")
        print(
            "cpu µs/pkt: the daemon's own CPU time (user + system) per packet received; "
            "load: 1-minute load average when the trial started (2 cores)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
