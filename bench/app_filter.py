"""App-call kernel filter modes: what each lets through of an edge link's traffic, and at what cost.

A deterministic synthetic edge mix (70 % QUIC on UDP 443, 10 % DNS, 5 % other UDP,
10 % TCP, 5 % VoIP and app-call UDP; 30 % of the bulk over IPv6) is judged by the
filter of each `[capture] app_call_filter` mode twice:

- by the classic-BPF interpreter (`voiplog.capture.bpf.run`): the share of
  packets and bytes each mode keeps, overall and by traffic class;
- by the kernel: each program is attached to voiplog's own AF_PACKET ring reader
  (`voiplog.capture.live`, as `voiplog run` uses it) on one end of a veth pair
  (`bench/netns.py`), while a raw socket in the other namespace sends the same
  frames, a bounded number at a fixed rate. The frames are addressed to no one
  (PACKET_OTHERHOST), so the IP stack drops them at once and what is measured is
  the capture path: the sender's CPU time (its system time includes the veth's
  receive softirq, where the filter runs, on this kernel without IRQ time
  accounting), the reader's CPU time, and packets received against sent. "no
  capture" runs without a reader, as the baseline; "accept all" attaches a
  one-instruction program that keeps everything.

    python bench/app_filter.py                         # 200,000 packets, 100,000/s, 3 runs
    python bench/app_filter.py --packets 400000 --rate 150000 --repeat 5
    python bench/app_filter.py --no-kernel             # shares only (no root needed)

Needs root and iproute2 for the kernel part. The namespaces (TEST-NET-1 addresses,
nothing routed outside them) and every process started are removed at the end,
also after an error.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.netns import available, veth_pair  # noqa: E402
from voiplog.capture.bpf import APP_CALL_FILTERS, Insn, build_filter, run  # noqa: E402

SIP_PORTS = (5060,)
UDP_PORTS = (1813, 3478, 3479, 4789, 5349)  # the configuration's defaults
TCP_PORTS = (5349,)
ACCEPT_ALL = (Insn(0x06, 0, 0, 65535),)  # ret #65535

# Traffic classes of the mix and their shares of packets.
MIX = (("quic", 0.70), ("dns", 0.10), ("other udp", 0.05), ("tcp", 0.10), ("calls", 0.05))

_ETH = struct.Struct(">6s6sH")
_IPV4 = struct.Struct(">BBHHHBBH4s4s")
_IPV6 = struct.Struct(">IHBB16s16s")
_UDP = struct.Struct(">HHHH")
_TCP = struct.Struct(">HHIIBBHHH")
# Locally administered MACs that no interface has: the receiver sees the frames as
# PACKET_OTHERHOST and its IP stack discards them unread.
_DST_MAC = bytes.fromhex("020000aa0002")
_SRC_MAC = bytes.fromhex("020000aa0001")


def _ip(rng: random.Random, v6: bool, proto: int, body: bytes, upstream: bool) -> bytes:
    # Subscribers in 100.64.0.0/10 (or 2001:db8:1::/48), servers in TEST-NET-3 (2001:db8:2::/48).
    if v6:
        sub = bytes.fromhex("20010db80001") + rng.randbytes(10)
        srv = bytes.fromhex("20010db80002") + rng.randbytes(10)
        src, dst = (sub, srv) if upstream else (srv, sub)
        return _ETH.pack(_DST_MAC, _SRC_MAC, 0x86DD) + _IPV6.pack(
            0x60000000, len(body), proto, 64, src, dst
        ) + body  # fmt: skip
    sub = bytes([100, 64 + rng.randrange(64), rng.randrange(256), 1 + rng.randrange(254)])
    srv = bytes([203, 0, 113, 1 + rng.randrange(254)])
    src, dst = (sub, srv) if upstream else (srv, sub)
    header = _IPV4.pack(
        0x45, 0, 20 + len(body), rng.randrange(65536), 0x4000, 64, proto, 0, src, dst
    )
    return _ETH.pack(_DST_MAC, _SRC_MAC, 0x0800) + header + body


def _udp(rng, v6, client_port, server_port, payload, upstream=None) -> bytes:
    if upstream is None:
        upstream = rng.random() < 0.5
    sport, dport = (client_port, server_port) if upstream else (server_port, client_port)
    body = _UDP.pack(sport, dport, 8 + len(payload), 0) + payload
    return _ip(rng, v6, 17, body, upstream)


def _ephemeral(rng: random.Random) -> int:
    # Linux/Android's range, or Windows/Apple's.
    return rng.randint(32768, 60999) if rng.random() < 0.6 else rng.randint(49152, 65535)


def _quic(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.3
    upstream = rng.random() < 0.3
    size = rng.randint(30, 80) if upstream else rng.randint(1150, 1350)
    if rng.random() < 0.9:  # 1-RTT: 0b01 then spin, reserved, key phase, packet number length
        head = bytes([0x40 | rng.randrange(64)]) + rng.randbytes(20)
    else:  # long header with version 1
        head = bytes([0xC0 | rng.randrange(64)]) + b"\x00\x00\x00\x01\x08" + rng.randbytes(8)
    payload = head + rng.randbytes(max(0, size - len(head)))
    return _udp(rng, v6, _ephemeral(rng), 443, payload, upstream)


def _dns(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.3
    query = rng.random() < 0.5
    flags = b"\x01\x00" if query else b"\x81\x80"
    payload = rng.randbytes(2) + flags + rng.randbytes(rng.randint(28, 60 if query else 250))
    return _udp(rng, v6, _ephemeral(rng), 53, payload, query)


def _other_udp(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.3
    pick = rng.random()
    if pick < 0.10:  # NTP client mode
        return _udp(rng, v6, 123, 123, b"\x23" + rng.randbytes(47))
    if pick < 0.20:  # SSDP, mDNS
        port = rng.choice((1900, 5353))
        return _udp(rng, v6, port, port, rng.randbytes(rng.randint(100, 300)))
    if pick < 0.50:  # WireGuard transport data on its usual port
        payload = b"\x04\x00\x00\x00" + rng.randbytes(rng.randint(60, 1300))
        return _udp(rng, v6, _ephemeral(rng), 51820, payload)
    # Games, P2P, VPNs on arbitrary high ports: opaque payloads.
    return _udp(
        rng, v6, _ephemeral(rng), rng.randint(10000, 65535), rng.randbytes(rng.randint(40, 1200))
    )


def _calls(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.1
    pick = rng.random()
    client = _ephemeral(rng)
    if pick < 0.40:  # SIP-less RTP or SRTP (G.711, Opus)
        payload = bytes([0x80, rng.choice((0, 8, 111))]) + rng.randbytes(rng.choice((170, 90)))
        return _udp(rng, v6, client, rng.randint(10000, 60000), payload)
    if pick < 0.43:  # SIP
        return _udp(rng, v6, 5060, 5060, b"OPTIONS sip:a@b SIP/2.0\r\n" + rng.randbytes(300))
    if pick < 0.53:  # STUN binding request (ICE) between two clients
        payload = b"\x00\x01\x00\x50\x21\x12\xa4\x42" + rng.randbytes(92)
        return _udp(rng, v6, client, _ephemeral(rng), payload)
    if pick < 0.63:  # TURN ChannelData on a relay's allocated port
        data = rng.randbytes(rng.randint(60, 200))
        payload = bytes([0x40, rng.randrange(256)]) + struct.pack(">H", len(data)) + data
        return _udp(rng, v6, client, rng.randint(49152, 65535), payload)
    if pick < 0.65:  # DTLS handshake (WebRTC)
        payload = b"\x16\xfe\xfd" + bytes(8) + b"\x00\xb0" + rng.randbytes(176)
        return _udp(rng, v6, client, _ephemeral(rng), payload)
    if pick < 0.80:  # Zoom media on its own header
        return _udp(rng, v6, client, 8801, b"\x05" + rng.randbytes(rng.randint(80, 1000)))
    if pick < 0.90:  # Telegram call server, MTProto-encrypted datagrams
        return _udp(rng, v6, client, 1400, rng.randbytes(rng.randint(80, 300)))
    if pick < 0.95:  # Viber
        return _udp(rng, v6, client, 5242, rng.randbytes(rng.randint(80, 300)))
    # IMO-like: encrypted datagrams on an unlisted port
    return _udp(rng, v6, client, rng.randint(10000, 30000), rng.randbytes(rng.randint(80, 300)))


def _tcp(rng: random.Random) -> bytes:
    v6 = rng.random() < 0.3
    upstream = rng.random() < 0.4
    size = rng.randint(0, 40) if upstream else rng.choice((0, rng.randint(500, 1400)))
    client, server = _ephemeral(rng), rng.choice((443, 443, 443, 80))
    sport, dport = (client, server) if upstream else (server, client)
    body = _TCP.pack(sport, dport, rng.getrandbits(32), rng.getrandbits(32), 0x50, 0x10, 502, 0, 0)
    return _ip(rng, v6, 6, body + rng.randbytes(size), upstream)


_MAKERS = {"quic": _quic, "dns": _dns, "other udp": _other_udp, "tcp": _tcp, "calls": _calls}


def edge_mix(count: int, seed: int = 1) -> list[tuple[str, bytes]]:
    """`count` frames of the mix, the same for the same arguments."""
    rng = random.Random(seed)
    names = [name for name, _ in MIX]
    weights = [share for _, share in MIX]
    return [(name, _MAKERS[name](rng)) for name in rng.choices(names, weights, k=count)]


def programs() -> dict[str, tuple]:
    return {
        mode: build_filter(
            link_header=14,
            sip_ports=SIP_PORTS,
            udp_ports=UDP_PORTS,
            tcp_ports=TCP_PORTS,
            app_calls=mode,
        )
        for mode in APP_CALL_FILTERS
    }


def shares(mix: list[tuple[str, bytes]], progs: dict[str, tuple]) -> None:
    total_packets = len(mix)
    total_bytes = sum(len(frame) for _, frame in mix)
    by_class = Counter(name for name, _ in mix)
    classes = [name for name, _ in MIX]
    print(f"\nShare kept, by the interpreter, of {total_packets:,} distinct frames "
          f"({total_bytes / total_packets:.0f} bytes on average):")  # fmt: skip
    print(f"{'mode':<11} {'program':>7} {'packets':>8} {'bytes':>7}  "
          + " ".join(f"{name:>9}" for name in classes))  # fmt: skip
    for mode, program in progs.items():
        kept = [(name, frame) for name, frame in mix if run(program, frame)]
        kept_by_class = Counter(name for name, _ in kept)
        print(
            f"{mode:<11} {len(program):>7} {len(kept) / total_packets:>8.1%} "
            f"{sum(len(f) for _, f in kept) / total_bytes:>7.1%}  "
            + " ".join(f"{kept_by_class[name] / by_class[name]:>9.1%}" for name in classes)
        )


_RECEIVER = """
import os, pickle, signal, sys, time
sys.path.insert(0, sys.argv[1])
from voiplog.capture.bpf import Insn
from voiplog.capture.live import LiveCapture, RingSettings
program = tuple(Insn(*i) for i in pickle.loads(bytes.fromhex(sys.argv[3])))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
cap = LiveCapture([sys.argv[2]], RingSettings(), lambda linktype: program)
t0 = time.process_time()
print("ready", flush=True)
frames = 0
while not stop:
    frames += sum(1 for _ in cap.read(0.05))
frames += sum(1 for _ in cap.read(0))
cap.update_counters(interface=False)
c = cap.counters[0]
print(frames, c.received, c.dropped, time.process_time() - t0, flush=True)
"""

_SENDER = """
import os, socket, struct, sys, time
frames = []
with open(sys.argv[2], "rb") as f:
    data = f.read()
offset = 0
while offset < len(data):
    (size,) = struct.unpack_from(">H", data, offset)
    frames.append(data[offset + 2 : offset + 2 + size])
    offset += 2 + size
count, rate = int(sys.argv[3]), int(sys.argv[4])
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
sock.bind((sys.argv[1], 0))
send = sock.send
burst = 500
t0 = time.process_time()
start = time.monotonic()
sent = 0
while sent < count:
    n = min(burst, count - sent)
    for i in range(sent, sent + n):
        send(frames[i % len(frames)])
    sent += n
    ahead = start + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
elapsed = time.monotonic() - start
print(sent, elapsed, time.process_time() - t0, flush=True)
"""


def _trial(pair, workdir: Path, frames_file: Path, program, args) -> dict:
    import pickle

    receiver = None
    if program is not None:
        code = pickle.dumps([(i.code, i.jt, i.jf, i.k) for i in program]).hex()
        script = workdir / "receiver.py"
        script.write_text(_RECEIVER)
        receiver = subprocess.Popen(
            pair.command(pair.callee_ns, sys.executable, str(script), str(ROOT), pair.callee_if, code),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    try:
        if receiver is not None and receiver.stdout.readline().strip() != "ready":
            raise SystemExit("app_filter: the capture reader did not start")
        sender_script = workdir / "sender.py"
        sender_script.write_text(_SENDER)
        out = subprocess.run(
            pair.command(
                pair.caller_ns, sys.executable, str(sender_script), pair.caller_if,
                str(frames_file), str(args.packets), str(args.rate),
            ),
            capture_output=True, text=True, check=True, timeout=args.packets / args.rate * 10 + 60,
        ).stdout.split()  # fmt: skip
        sent, elapsed, sender_cpu = int(out[0]), float(out[1]), float(out[2])
        result = {"sent": sent, "seconds": elapsed, "sender_cpu": sender_cpu}
        if receiver is not None:
            time.sleep(0.3)  # the last block's timeout
            receiver.send_signal(signal.SIGTERM)
            frames, received, dropped, cpu = receiver.communicate(timeout=30)[0].split()
            result.update(frames=int(frames), received=int(received), dropped=int(dropped),
                          reader_cpu=float(cpu))  # fmt: skip
        else:
            result.update(frames=0, received=0, dropped=0, reader_cpu=0.0)
        return result
    finally:
        if receiver is not None and receiver.poll() is None:
            receiver.kill()
            receiver.wait()


def kernel(mix: list[tuple[str, bytes]], progs: dict[str, tuple], args) -> None:
    candidates = {"no capture": None, "accept all": ACCEPT_ALL, **progs}
    with tempfile.TemporaryDirectory(prefix="voiplog-app-filter-") as tmp:
        workdir = Path(tmp)
        frames_file = workdir / "frames.bin"
        frames_file.write_bytes(b"".join(struct.pack(">H", len(f)) + f for _, f in mix))
        results: dict[str, list[dict]] = {name: [] for name in candidates}
        with veth_pair("vaf") as pair:
            for _ in range(args.repeat):  # interleaved, so that drifting load hits every mode
                for name, program in candidates.items():
                    results[name].append(_trial(pair, workdir, frames_file, program, args))
    load = os.getloadavg()[0]
    print(f"\nKernel: {args.packets:,} frames sent at {args.rate:,}/s into a veth, "
          f"median of {args.repeat} runs (load {load:.1f} at the end):")  # fmt: skip
    print(f"{'mode':<11} {'sent':>8} {'received':>9} {'kept':>6} {'ring drops':>10} "
          f"{'reader µs/sent':>14} {'sender µs/pkt':>13} {'Δ sender':>9}")  # fmt: skip
    base = statistics.median(r["sender_cpu"] / r["sent"] for r in results["no capture"]) * 1e6
    for name, runs in results.items():
        sent = statistics.median(r["sent"] for r in runs)
        received = statistics.median(r["received"] for r in runs)
        dropped = statistics.median(r["dropped"] for r in runs)
        reader = statistics.median(r["reader_cpu"] / r["sent"] for r in runs) * 1e6
        sender = statistics.median(r["sender_cpu"] / r["sent"] for r in runs) * 1e6
        print(
            f"{name:<11} {sent:>8,.0f} {received:>9,.0f} {received / sent:>6.1%} {dropped:>10,.0f} "
            f"{reader:>14.3f} {sender:>13.3f} {sender - base:>+9.3f}"
        )
    print(
        "reader µs/sent: the ring reader's CPU time (user + system) per frame sent; sender "
        "µs/pkt: the sending process's CPU time per frame, which holds the veth's receive "
        "path, the filter and the copy into the ring; Δ sender: against no capture socket"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000, help="frames sent per run")
    parser.add_argument("--distinct", type=int, default=20_000, help="distinct frames in the mix")
    parser.add_argument("--rate", type=int, default=100_000, help="frames per second sent")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-kernel", action="store_true", help="interpreter shares only")
    args = parser.parse_args()
    mix = edge_mix(args.distinct, args.seed)
    progs = programs()
    shares(mix, progs)
    if args.no_kernel:
        return 0
    if reason := available():
        print(f"app_filter: kernel part skipped: {reason}", file=sys.stderr)
        return 2
    kernel(mix, progs, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
