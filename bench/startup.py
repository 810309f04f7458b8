"""Start-up: how long `voiplog --help`, `voiplog replay --help` and a one-packet
`voiplog replay --store none` take, wall time from the process start to its exit.

The one-packet replay reads a capture of one SIP OPTIONS and writes its JSON
line: its whole run bounds the time to the first packet (targets: each help under
0.15 s, the first packet read within 0.3 s). It runs without a config and with
a POP config (default: ``config/example-pop.toml``, nDPI on, as a POP runs it).

Python compiles each module it imports unless its bytecode is cached. An
installed voiplog has it cached (pip compiles at install time, and a service
writes it at its first start): the bench caches it in a scratch
PYTHONPYCACHEPREFIX (the tree stays clean), warmed by one run of each command.
A checkout run with PYTHONDONTWRITEBYTECODE=1 compiles voiplog's modules at
every start instead, about 0.1 s more.

    python bench/startup.py [--runs 7] [--config FILE]

Exit status 1 when a median misses its target, 2 when voiplog cannot be run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP_TARGET_S = 0.15
FIRST_PACKET_TARGET_S = 0.3


def one_packet_capture(path: Path) -> None:
    """A pcap of one SIP OPTIONS over UDP/IPv4 (documentation addresses)."""
    sip = (
        b"OPTIONS sip:a@192.0.2.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-startup\r\n"
        b"From: <sip:b@192.0.2.1>;tag=1\r\nTo: <sip:a@192.0.2.2>\r\n"
        b"Call-ID: startup-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    udp = struct.pack(">HHHH", 5060, 5060, 8 + len(sip), 0) + sip
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([192, 0, 2, 1]),
        bytes([192, 0, 2, 2]),
    )  # fmt: skip
    frame = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + udp
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame))
    path.write_bytes(header + record + frame)


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()[-400:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (default 7)")
    parser.add_argument(
        "--config", type=Path, default=ROOT / "config" / "example-pop.toml", help="POP config"
    )
    args = parser.parse_args()
    voiplog = [sys.executable, "-m", "voiplog"]
    with tempfile.TemporaryDirectory(prefix="voiplog-startup-") as scratch:
        capture = Path(scratch) / "one.pcap"
        one_packet_capture(capture)
        commands = {
            "voiplog --help": ([*voiplog, "--help"], HELP_TARGET_S),
            "voiplog replay --help": ([*voiplog, "replay", "--help"], HELP_TARGET_S),
            "replay of one packet, no config": (
                [*voiplog, "replay", "--store", "none", str(capture)],
                FIRST_PACKET_TARGET_S,
            ),
            f"replay of one packet, --config {args.config.name}": (
                [*voiplog, "replay", "--config", str(args.config), "--store", "none", str(capture)],
                FIRST_PACKET_TARGET_S,
            ),
        }
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(scratch) / "pyc")
        for argv, _ in commands.values():
            timed(argv, env)  # writes the bytecode
        missed = []
        print(f"{'command (wall time, s)':<48} {'min':>7} {'median':>7} {'max':>7}  target")
        for name, (argv, target) in commands.items():
            times = [timed(argv, env) for _ in range(args.runs)]
            median = statistics.median(times)
            if median > target:
                missed.append(name)
            print(
                f"{name:<48} {min(times):7.3f} {median:7.3f} {max(times):7.3f}"
                f"  {target:g} {'ok' if median <= target else 'MISSED'}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
