"""Capture backends compared: CPU per packet of reading frames off a veth, nothing else.

voiplog's own AF_PACKET TPACKET_V3 ring reader (`voiplog.capture.live`) against
pcapy-ng's batch API (`next_batch`, libpcap underneath), each in its own process
turning every packet into the ``(ts_us, linktype, frame)`` tuple the pipeline
takes. tcpreplay sends the same capture at the same fixed rate to each in turn;
the figure is the reader's CPU time (user + system, start-up included) per packet.
pcapy-ng is optional: without it only the ring reader is measured.

    python bench/capture_backends.py [--rate 150000] [--seconds 10] [--capture FILE]

Needs root, iproute2 and tcpreplay. Traffic stays in two namespaces made for
the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.netns import available, veth_pair  # noqa: E402

_COMMON = f"""
import os, select, signal, struct, sys
sys.path.insert(0, {str(ROOT)!r})
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
"""

READERS = {
    "voiplog TPACKET_V3 ring": _COMMON
    + """
from voiplog.capture.bpf import build_filter
from voiplog.capture.live import LiveCapture, RingSettings
cap = LiveCapture([sys.argv[1]], RingSettings(),
                  lambda lt: build_filter(link_header=14, sip_ports=[5060]))
n = 0
print("ready", flush=True)
while not stop:
    n += sum(1 for _ in cap.read(0.2))  # each frame made, as the others make them
drops = sum(cap.update_counters().values())
t = os.times()
print(n, drops, t.user + t.system, flush=True)
""",
    "pcapy-ng next_batch": _COMMON
    + """
import pcapy
p = pcapy.create(sys.argv[1])
p.set_snaplen(65535); p.set_promisc(1); p.set_timeout(50); p.set_buffer_size(64 << 20)
p.activate()
p.setfilter("udp port 5060 or (udp and udp[8] & 0xc0 == 0x80)")
p.setnonblock(1)
fd = p.getfd()
records = struct.Struct("4I").iter_unpack
n = 0
print("ready", flush=True)
while not stop:
    data, meta = p.next_batch(4096)
    if not meta:
        select.select([fd], [], [], 0.2)
        continue
    out = [(sec * 1_000_000 + usec, 1, data[off : off + cap]) for sec, usec, off, cap in records(meta)]
    n += len(out)
_, drops, _ = p.stats()
t = os.times()
print(n, drops, t.user + t.system, flush=True)
""",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=150_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--capture", type=Path)
    args = parser.parse_args()
    if reason := available():
        print(f"capture_backends: {reason}", file=sys.stderr)
        return 2
    try:
        import pcapy  # noqa: F401
    except ImportError:
        del READERS["pcapy-ng next_batch"]
    with tempfile.TemporaryDirectory(prefix="voiplog-backends-") as tmp:
        capture = args.capture
        if capture is None:
            from bench.gencapture import generate

            capture = Path(tmp) / "traffic.pcap"
            generate(capture, calls_concurrent=300, packets=1_000_000, seed=1)
        print(f"{'backend':<26} {'packets':>10} {'drops':>7} {'cpu µs/pkt':>10} {'load':>5}")
        with veth_pair("vcb") as pair:
            for name, source in READERS.items():
                script = Path(tmp) / "reader.py"
                script.write_text(source)
                reader = subprocess.Popen(
                    pair.command(pair.callee_ns, sys.executable, str(script), pair.callee_if),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    reader.stdout.readline()
                    load = os.getloadavg()[0]
                    subprocess.run(
                        pair.command(
                            pair.caller_ns, "tcpreplay", "-q", "-K", "-i", pair.caller_if,
                            f"--pps={args.rate}", f"--duration={args.seconds}", "--loop=0",
                            str(capture),
                        ),
                        capture_output=True, check=True, timeout=args.seconds + 120,
                    )  # fmt: skip
                    time.sleep(0.5)
                    reader.send_signal(signal.SIGTERM)
                    packets, drops, cpu = reader.communicate(timeout=30)[0].split()
                finally:
                    if reader.poll() is None:
                        reader.kill()
                        reader.wait()
                per_packet = float(cpu) / max(int(packets), 1) * 1e6
                print(
                    f"{name:<26} {int(packets):>10,} {int(drops):>7,} {per_packet:>10.2f} {load:>5.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
