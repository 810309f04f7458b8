"""`voiplog run` on a veth pair carrying an app call whose media shows no RTP header.

A Telegram-style call (the reflector's framing: a peer tag, then its special
packets or ciphertext) is sent with real sockets from the caller namespace to
the callee namespace and back, at 50 datagrams a second each way for 4 s. The
kernel filter's default app-call mode must let it through, nDPI must name it,
and the daemon must write one app-call record for it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bench.netns import CALLEE_IP, CALLER_IP
from voiplog.ndpi import NdpiUnavailable, load

pytestmark = pytest.mark.live

CALLER_PORT = 40000
REFLECTOR_PORT = 596  # Telegram's reflectors listen on UDP 500-600
SECONDS = 4
RATE = 50

# One side of the call: the first datagrams are the reflector's special packets
# (twelve 0xFF bytes after the peer tag), the rest msg_key plus ciphertext.
SENDER = textwrap.dedent(
    """
    import os, socket, struct, sys, time
    local, local_port, far, far_port, seconds, rate = sys.argv[1:7]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, int(local_port)))
    tag = bytes(b % 255 for b in os.urandom(16))
    start = time.monotonic()
    count = int(float(seconds) * int(rate))
    for i in range(count):
        if i < 3:
            datagram = tag + b"\\xff" * 12 + struct.pack("<i", -2) + os.urandom(8)
        else:
            datagram = tag + os.urandom(16) + os.urandom(16 * (5 + i % 4))
        sock.sendto(datagram, (far, int(far_port)))
        time.sleep(max(0.0, start + (i + 1) / int(rate) - time.monotonic()))
    """
)


@pytest.fixture(scope="module")
def ndpi():
    try:
        with load() as classifier:
            return classifier.name
    except NdpiUnavailable as exc:
        pytest.skip(f"libndpi: {exc}")


def test_an_app_call_without_rtp_headers_is_captured_and_named(lab, ndpi):
    # The caller is the subscriber: its end is the call's, whichever side sends first.
    daemon = lab.start_daemon(
        f'pop = "lab"\n[[subscriber_networks]]\ncidr = "{CALLER_IP}/32"\n'
        "[media_sessions]\nidle_gap_s = 2\napp_join_gap_s = 1\n"
    )
    script = lab.workdir / "sender.py"
    script.write_text(SENDER)
    sides = [
        (lab.pair.callee_ns, CALLEE_IP, REFLECTOR_PORT, CALLER_IP, CALLER_PORT),
        (lab.pair.caller_ns, CALLER_IP, CALLER_PORT, CALLEE_IP, REFLECTOR_PORT),
    ]
    procs = []
    for ns, local, local_port, far, far_port in sides:
        argv = [str(local), str(local_port), str(far), str(far_port), str(SECONDS), str(RATE)]
        procs.append(
            subprocess.Popen(
                lab.pair.command(ns, sys.executable, str(script), *argv),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        lab.procs.append(procs[-1])
    for proc in procs:
        assert proc.wait(timeout=SECONDS + 10) == 0, proc.stderr.read()
    # Idle for idle_gap_s, then the join gap: the daemon writes the call on its clock.
    (record,) = daemon.wait_for_records(1, timeout=15)
    assert daemon.terminate() == 0
    assert record["disposition"] == "app_call" and record["kind"] == "encrypted"
    assert record["app"]["name"] == "telegram"
    assert record["app"]["basis"].startswith("ndpi:Telegram/")
    assert (record["caller_ip"], record["caller_port"]) == (CALLER_IP, CALLER_PORT)
    assert record["subscriber_ip"] == CALLER_IP and record["direction"] == "outbound"
    (flow,) = record["app_flows"]
    assert (flow["dst_ip"], flow["dst_port"]) == (CALLEE_IP, REFLECTOR_PORT)
    sent = SECONDS * RATE
    assert flow["packets_out"] == flow["packets_in"] == sent
    assert SECONDS - 0.5 <= record["duration_s"] <= SECONDS + 1
