"""The AF_PACKET ring reader on real interfaces: VLAN tags, several interfaces, filter swaps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from tests.live.conftest import ROOT

pytestmark = pytest.mark.live

# Runs inside the callee namespace: captures on the veth end and on loopback while
# the caller sends, then reports what it saw as JSON.
READER = textwrap.dedent(
    """
    import json, socket, struct, sys, time
    sys.path.insert(0, sys.argv[1])
    from voiplog.capture.bpf import build_filter
    from voiplog.capture.live import LiveCapture, RingSettings

    def only(ports):
        return lambda linktype: build_filter(link_header=14, sip_ports=ports)

    def frames(cap, seconds):
        out = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out += cap.read(0.1)
        return out

    def summary(batch):
        seen = []
        for ts, linktype, frame in batch:
            ethertype, = struct.unpack_from(">H", frame, 12)
            vlan = None
            ip = 14
            if ethertype == 0x8100:
                vlan = struct.unpack_from(">H", frame, 14)[0] & 0xFFF
                ethertype, = struct.unpack_from(">H", frame, 16)
                ip = 18
            if ethertype != 0x0800 or frame[ip + 9] != 17:
                continue
            dst = socket.inet_ntoa(frame[ip + 16 : ip + 20])
            dport, = struct.unpack_from(">H", frame, ip + 22)
            seen.append([linktype, vlan, dst, dport, ts > 1_600_000_000_000_000])
        return seen

    cap = LiveCapture(["vlb", "lo", "vlb"], RingSettings(ring_bytes=4 << 20), only([5060]))
    send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    print("ready", flush=True)
    sys.stdin.readline()  # the caller has sent phase one
    for _ in range(3):
        send.sendto(b"OPTIONS sip:lo SIP/2.0\\r\\n\\r\\n", ("127.0.0.1", 5060))
    first = summary(frames(cap, 1.0))
    cap.set_filter(only([5070]))
    print("swapped", flush=True)
    sys.stdin.readline()  # the caller has sent phase two
    second = summary(frames(cap, 1.0))
    names = [c.name for c in cap.counters]
    cap.close()
    print(json.dumps({"first": first, "second": second, "interfaces": names}), flush=True)
    """
)


def _send(lab, ns, *packets):
    code = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    for payload, address, port in packets:
        code += f"s.sendto({payload!r}, ({address!r}, {port}))\n"
    subprocess.run(lab.pair.command(ns, sys.executable, "-c", code), check=True, timeout=20)


def _send_raw(lab, ns, ifname, *frames):
    """Ethernet frames written as they are onto `ifname` (802.1Q tags included: this
    kernel may have no VLAN interfaces, but the receiving end strips the tag as a
    NIC would, and hands it to packet sockets beside the frame)."""
    code = "import socket\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
    code += f"s.bind(({ifname!r}, 0))\n"
    for frame in frames:
        code += f"s.send(bytes.fromhex({frame.hex()!r}))\n"
    subprocess.run(lab.pair.command(ns, sys.executable, "-c", code), check=True, timeout=20)


def _tagged(vlan, src, dst, sport, dport, payload):
    return bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / Dot1Q(vlan=vlan)
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / payload
    )


def test_vlan_tags_loopback_and_filter_swap(lab):
    pair = lab.pair
    script = lab.workdir / "reader.py"
    script.write_text(READER)
    reader = subprocess.Popen(
        pair.command(pair.callee_ns, sys.executable, str(script), str(ROOT)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lab.procs.append(reader)
    assert reader.stdout.readline().strip() == "ready"
    sip = b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    _send(
        lab, pair.caller_ns,
        (sip, "192.0.2.2", 5060), (sip, "192.0.2.2", 5060),
        (b"\x12\x34" + bytes(20), "192.0.2.2", 5353),  # neither SIP nor RTP: filtered out
        (sip, "192.0.2.2", 5070),  # not a SIP port yet
    )  # fmt: skip
    _send_raw(
        lab, pair.caller_ns, pair.caller_if,
        _tagged(7, "198.51.100.1", "198.51.100.2", 5060, 5060, sip),
    )  # fmt: skip
    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "swapped"
    _send(lab, pair.caller_ns, (sip, "192.0.2.2", 5060), (sip, "192.0.2.2", 5070))
    reader.stdin.write("\n")
    reader.stdin.flush()
    report = json.loads(reader.stdout.readline())
    assert reader.wait(10) == 0

    assert report["interfaces"] == [pair.callee_if, "lo"]  # named twice, opened once
    first = sorted((tuple(x) for x in report["first"]), key=str)
    assert first == sorted(
        [
            (1, None, "192.0.2.2", 5060, True),
            (1, None, "192.0.2.2", 5060, True),
            (1, 7, "198.51.100.2", 5060, True),  # the tag put back as it was sent
            # Loopback: each packet once, though the kernel shows it going out and in.
            (1, None, "127.0.0.1", 5060, True),
            (1, None, "127.0.0.1", 5060, True),
            (1, None, "127.0.0.1", 5060, True),
        ],
        key=str,
    )
    assert [tuple(x) for x in report["second"]] == [(1, None, "192.0.2.2", 5070, True)]


def test_vlan_frames_make_a_call_record(lab):
    """A SIP call tagged on the wire reaches the pipeline with its tag and is recorded."""
    pair = lab.pair
    daemon = lab.start_daemon('pop = "lab"\n[calls]\nlinger_s = 0\n')
    invite = (
        b"INVITE sip:bob@198.51.100.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@198.51.100.1>;tag=a1\r\nTo: <sip:bob@198.51.100.2>\r\n"
        b"Call-ID: vlan-call-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    busy = (
        b"SIP/2.0 486 Busy Here\r\n"
        b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@198.51.100.1>;tag=a1\r\nTo: <sip:bob@198.51.100.2>;tag=b1\r\n"
        b"Call-ID: vlan-call-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    _send_raw(
        lab, pair.caller_ns, pair.caller_if,
        _tagged(9, "198.51.100.1", "198.51.100.2", 5060, 5060, invite),
        _tagged(9, "198.51.100.2", "198.51.100.1", 5060, 5060, busy),
    )  # fmt: skip
    (record,) = daemon.wait_for_records(1, timeout=8)
    assert daemon.terminate() == 0
    assert record["call_id"] == "vlan-call-1" and record["disposition"] == "busy"
    assert record["caller_ip"] == "198.51.100.1"
