"""`voiplog run` capturing SIPp calls on a veth pair and, at once, receiving HEP over UDP
and TCP from a sender in the other namespace: every call gets its record, those of the
HEP feed say so, and garbage sent to the HEP port does not stop the daemon."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.netns import CALLEE_IP, CALLER_IP
from tests.live.conftest import ANSWER_PORT
from tests.sipcraft import make_dialog
from voiplog.packet import decode
from voiplog.packet.hep import HepMessage, encode_hep3

pytestmark = pytest.mark.live

SENDER = """
import pathlib, socket, struct, sys, time
udp_file, tcp_file, host = sys.argv[1:4]
def packets(path):
    data = pathlib.Path(path).read_bytes()
    out = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b"garbage that is no HEP", (host, 9060))
for packet in packets(udp_file):
    udp.sendto(packet, (host, 9060))
    time.sleep(0.01)
tcp = socket.create_connection((host, 9060))
stream = b"".join(packets(tcp_file))
for i in range(0, len(stream), 100):  # cut anywhere, as TCP may
    tcp.sendall(stream[i : i + 100])
    time.sleep(0.002)
tcp.close()
"""


def hep_calls(n: int, key: bytes, proto: int) -> bytes:
    """The SIP of one answered call from a proxy's point of view, as length-prefixed
    HEP v3 packets stamped with the time they are made."""
    dialog = make_dialog(n, caller_ip="10.9.0.10", callee_ip="10.9.1.20")
    now = time.time_ns() // 1000
    dialog.basic_answered(now, talk_s=0.2, rtp=False)
    out = b""
    for ts, frame in sorted(dialog.frames, key=lambda f: f[0]):
        _, src, sport, dst, dport, payload = decode(1, frame)
        msg = HepMessage(3, proto, src, sport, dst, dport, ts, 1, payload, 77, key)
        packet = encode_hep3(msg)
        out += len(packet).to_bytes(4, "big") + packet
    return out


def send_hep(lab, udp_call: int, tcp_call: int) -> None:
    """From the caller's namespace: a garbage datagram, then the HEP of one call
    over UDP and of another over TCP, to the callee's port 9060."""
    (lab.workdir / "udp.bin").write_bytes(hep_calls(udp_call, b"lab-secret", 17))
    (lab.workdir / "tcp.bin").write_bytes(hep_calls(tcp_call, b"lab-secret", 6))
    sender = lab.workdir / "sender.py"
    sender.write_text(SENDER)
    subprocess.run(
        lab.pair.command(
            lab.pair.caller_ns, sys.executable, str(sender),
            str(lab.workdir / "udp.bin"), str(lab.workdir / "tcp.bin"), CALLEE_IP,
        ),
        check=True, timeout=30,
    )  # fmt: skip


def test_capture_and_hep_listener_at_once(lab):
    config = f"""
pop = "lab"
[calls]
linger_s = 1
[hep]
listen = ["udp:{CALLEE_IP}:9060", "tcp:{CALLEE_IP}:9060"]
auth_key = "lab-secret"
node_ids = [77]
"""
    daemon = lab.start_daemon(config)
    daemon.wait_for_log("receiving HEP on udp:192.0.2.2:9060, tcp:192.0.2.2:9060")
    lab.callee("uas_answer.xml", ANSWER_PORT, 2)
    time.sleep(0.3)
    answered = lab.call(ANSWER_PORT, 2, hold_ms=500, rate=10)
    send_hep(lab, 71, 72)
    records = daemon.wait_for_records(4, timeout=10)
    assert daemon.terminate() == 0
    assert answered["successful"] == 2
    by_source = {}
    for record in records:
        by_source.setdefault(bool(record.get("source")), []).append(record)
    captured, fed = by_source[False], by_source[True]
    assert len(captured) == 2 and len(fed) == 2
    assert all(r["caller_ip"] == CALLER_IP and r["callee_ip"] == CALLEE_IP for r in captured)
    assert sorted(r["call_id"] for r in fed) == ["call-71@craft.example", "call-72@craft.example"]
    for record in fed:
        assert record["source"] == {"type": "hep", "node_id": 77}
        assert record["disposition"] == "answered" and record["final_status"] == 200
        assert (record["caller_ip"], record["callee_ip"]) == ("10.9.0.10", "10.9.1.20")
        assert record["ended_by"] == "caller"
    transports = {r["call_id"]: r["transport"] for r in fed}
    assert transports == {"call-71@craft.example": "udp", "call-72@craft.example": "tcp"}


SCRAPE = """
import sys, urllib.request
url = f"http://{sys.argv[1]}:9464/metrics"
sys.stdout.write(urllib.request.urlopen(url, timeout=5).read().decode())
"""


def test_hep_alone_without_a_capture_interface(lab):
    """A POP whose proxies mirror their SIP as HEP needs no mirror port: `run`
    with hep.listen and no interface records the calls of the feed."""
    config = f"""
pop = "lab"
[calls]
linger_s = 1
[hep]
listen = ["udp:{CALLEE_IP}:9060", "tcp:{CALLEE_IP}:9060"]
auth_key = "lab-secret"
[metrics]
address = "{CALLEE_IP}:9464"
"""
    daemon = lab.start_daemon(config, interface=False)
    daemon.wait_for_log("capturing on no interface \\(HEP only\\)")
    send_hep(lab, 81, 82)
    records = daemon.wait_for_records(2, timeout=10)
    time.sleep(1.5)  # the metrics are published once a second
    scraped = subprocess.run(
        lab.pair.command(lab.pair.caller_ns, sys.executable, "-c", SCRAPE, CALLEE_IP),
        check=True, timeout=30, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert daemon.terminate() == 0
    assert sorted(r["call_id"] for r in records) == [
        "call-81@craft.example",
        "call-82@craft.example",
    ]
    values = dict(line.rsplit(" ", 1) for line in scraped.splitlines() if line and line[0] != "#")
    # Every SIP message came by HEP; the sender's garbage datagram is no HEP.
    assert float(values['voiplog_hep_messages_total{payload="sip"}']) >= 12
    assert (
        values['voiplog_hep_messages_total{payload="sip"}'] == values["voiplog_sip_messages_total"]
    )
    assert float(values['voiplog_parse_errors_total{kind="hep.bad_version"}']) == 1
    assert all(r["source"] == {"type": "hep", "node_id": 77} for r in records)
    assert all(r["disposition"] == "answered" and r["ended_by"] == "caller" for r in records)
