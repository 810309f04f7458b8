"""`voiplog run` restarted while SIPp calls with RTP go on: each call is written once,
by the second daemon, with its real end and its media, flagged `restarted`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from bench.netns import CALLEE_IP, CALLER_IP
from tests.live.conftest import ANSWER_PORT
from tests.pcapwriter import write_pcap
from tests.sipcraft import rtp_packet, udp_frame

pytestmark = pytest.mark.live

CALLS = 6
RTP_PACKETS = 400  # 8 s of 20 ms G.711 A-law each way, outliving the restart
CONFIG = """
pop = "lab"
[calls]
linger_s = 1
"""


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_calls_go_on_across_a_restart(lab, stop):
    """SIGTERM saves the calls at the stop; after SIGKILL the last checkpoint has them."""
    frames = [
        (1_700_000_000_000_000 + i * 20_000,
         udp_frame(CALLER_IP, 4000, CALLEE_IP, 4002, rtp_packet(i, i * 160, 0x1234, pt=8)))
        for i in range(RTP_PACKETS)
    ]  # fmt: skip
    write_pcap(lab.workdir / "rtp.pcap", frames)
    config = CONFIG + "[daemon]\ncheckpoint_interval_s = 1\n"
    first = lab.start_daemon(config)
    lab.callee("uas_answer.xml", ANSWER_PORT, CALLS)
    time.sleep(0.3)
    caller = _sipp_calls(lab, CALLS, hold_ms=10_000, timeout_s=40)
    time.sleep(3)  # every call answered, media flowing, far from its BYE
    second, gap_s = _restart(lab, first, stop, config, f"saved {CALLS} open calls")
    second.wait_for_log(rf"resumed {CALLS} open calls")
    assert caller.wait(timeout=40) == 0
    records = second.wait_for_records(CALLS, timeout=10)
    assert second.terminate() == 0

    assert len(records) == CALLS
    assert len({r["call_id"] for r in records}) == CALLS
    lost_in_gap = []
    for record in records:
        assert record["disposition"] == "answered" and record["final_status"] == 200
        assert record["ended_by"] == "caller"  # its BYE, seen by the second daemon
        assert {"restarted"} <= set(record["flags"])
        assert not {"shutdown", "no_bye", "timeout"} & set(record["flags"])
        (gap,) = record["restart_gaps"]
        assert record["answered_at"] < gap["start"] < gap["end"] < record["ended_at"]
        assert 9.5 < record["duration_s"] < 11
        # One stream each way, from before and after the gap: every packet SIPp
        # played is either counted or, for those sent in the gap, counted lost.
        assert sorted(m["src_ip"] for m in record["media"]) == [CALLER_IP, CALLEE_IP]
        for stream in record["media"]:
            assert stream["packets"] + stream["lost"] == RTP_PACKETS
            assert 0 < stream["lost"] < RTP_PACKETS - 100
            lost_in_gap.append(stream["lost"])
    # The gap is how long no daemon captured, plus, after SIGKILL, the time
    # since the last checkpoint.
    assert max(lost_in_gap) * 0.02 < gap_s + 1.5
    print(f"{stop}: restart took {gap_s:.1f} s; lost per stream in the gap: {sorted(lost_in_gap)}")


def test_state_of_another_config_is_refused_and_kept(lab):
    first = lab.start_daemon(CONFIG)
    assert first.terminate() == 0
    state = lab.workdir / "state" / "calls" / "lab.json"
    assert state.exists()  # saved even with no call open
    second = lab.start_daemon(CONFIG.replace("linger_s = 1", "linger_s = 2"), name="second")
    second.wait_for_log(r"open calls not resumed: .*lab\.json: saved under another")
    assert not state.exists()
    assert len(list(state.parent.glob("lab.json.refused-*"))) == 1
    assert second.terminate() == 0


# Media without signalling, from real sockets: plain RTP both ways, and a
# Telegram-style app call (a peer tag, then ciphertext) to a reflector port.
SENDER = textwrap.dedent(
    """
    import os, socket, struct, sys, time
    kind, local, local_port, far, far_port, count, ssrc, sending = sys.argv[1:9]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, int(local_port)))
    tag = bytes(b % 255 for b in os.urandom(16))
    start = time.monotonic()
    for i in range(int(count)):
        if kind == "rtp":
            datagram = struct.pack("!BBHII", 0x80, 8, i, i * 160, int(ssrc)) + bytes(160)
        elif i < 3:
            datagram = tag + b"\\xff" * 12 + struct.pack("<i", -2) + os.urandom(8)
        else:
            datagram = tag + os.urandom(16) + os.urandom(16 * (5 + i % 4))
        sock.sendto(datagram, (far, int(far_port)))
        if i == 174:  # 3.5 s of media sent: its session is in a checkpoint by now
            open(sending, "w").close()
        time.sleep(max(0.0, start + (i + 1) * 0.02 - time.monotonic()))
    """
)
MEDIA_PACKETS = 400  # 8 s at 50 a second each way


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_media_sessions_without_signalling_go_on_across_a_restart(lab, stop):
    config = (
        f'pop = "lab"\n[[subscriber_networks]]\ncidr = "{CALLER_IP}/32"\n'
        "[media_sessions]\nidle_gap_s = 2\napp_join_gap_s = 1\n"
        "[daemon]\ncheckpoint_interval_s = 1\n"
    )
    first = lab.start_daemon(config)
    script = lab.workdir / "media_sender.py"
    script.write_text(SENDER)
    sides = [
        ("rtp", lab.pair.caller_ns, CALLER_IP, 30000, CALLEE_IP, 30002, 0x1111),
        ("rtp", lab.pair.callee_ns, CALLEE_IP, 30002, CALLER_IP, 30000, 0x2222),
        ("app", lab.pair.caller_ns, CALLER_IP, 40000, CALLEE_IP, 596, 0),
        ("app", lab.pair.callee_ns, CALLEE_IP, 596, CALLER_IP, 40000, 0),
    ]
    senders, markers = [], []
    for kind, ns, local, local_port, far, far_port, ssrc in sides:
        markers.append(lab.workdir / f"sending-{local_port}")
        argv = [kind, local, str(local_port), far, str(far_port), str(MEDIA_PACKETS), str(ssrc), str(markers[-1])]  # fmt: skip
        senders.append(
            subprocess.Popen(
                lab.pair.command(ns, sys.executable, str(script), *argv),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        lab.procs.append(senders[-1])
    # Each side 3.5 s into its media (a fixed wait was too short when the senders were
    # slow to start on a loaded machine).
    deadline = time.monotonic() + 20
    while not all(marker.exists() for marker in markers):
        assert time.monotonic() < deadline, [m.name for m in markers if not m.exists()]
        time.sleep(0.05)
    second, gap_s = _restart(lab, first, stop, config, "and 2 media sessions")
    second.wait_for_log(r"resumed .* and 2 media sessions")
    for proc in senders:
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    # Between the same two addresses as the app call, the plain RTP is taken
    # as part of that call (voice beside an app's named flows): one record.
    (call,) = second.wait_for_records(1, timeout=20)
    assert second.terminate() == 0

    assert call["disposition"] == "app_call" and call["app"]["name"] == "telegram"
    assert "restarted" in call["flags"] and "shutdown" not in call["flags"]
    (gap,) = call["restart_gaps"]
    assert call["started_at"] < gap["start"] < gap["end"] < call["ended_at"]
    assert 7 < call["duration_s"] < 9.5
    flows = {f["dst_port"]: f for f in call["app_flows"]}
    assert sorted(flows) == [596, 30002]
    assert 0 < MEDIA_PACKETS - flows[596]["packets_out"] < (gap_s + 1.5) / 0.02
    assert len(call["media"]) == 2
    for stream in call["media"]:
        # Every RTP packet sent is counted, or counted lost if sent in the gap.
        assert stream["packets"] + stream["lost"] == MEDIA_PACKETS
        assert 0 < stream["lost"] * 0.02 < gap_s + 1.5
    lost = [m["lost"] for m in call["media"]]
    print(f"{stop}: restart took {gap_s:.1f} s; RTP lost in the gap: {lost}")


def test_calls_ended_after_the_last_checkpoint_are_not_written_twice(lab):
    """SIGKILL after calls ended (and were written) but before the next checkpoint:
    the state still holds them open; the next run drops the copies it would make."""
    calls = 4
    config = (
        'pop = "lab"\n[calls]\nlinger_s = 1\nidle_timeout_s = 8\n'
        "[daemon]\ncheckpoint_interval_s = 6\n"
    )
    first = lab.start_daemon(config)
    lab.callee("uas_answer.xml", ANSWER_PORT, calls)
    time.sleep(0.3)
    caller = _sipp_calls(lab, calls, hold_ms=7_000, timeout_s=30)
    assert caller.wait(timeout=30) == 0
    # Open at the checkpoint 6 s in, ended at about 7.5 s, written a second later.
    written = first.wait_for_records(calls, timeout=10)
    time.sleep(0.5)  # the tick that put them on disk also logged their uids
    first.proc.kill()
    first.proc.wait()
    second = lab.start_daemon(config, name="second")
    second.wait_for_log(rf"resumed {calls} open calls")
    second.wait_for_log(rf"{calls} records were written after that state was saved")
    # Their deadlines passed during the restart: the copies come at once, dropped.
    for record in written:
        second.wait_for_log(rf"record {record['uid']} was written before the restart")
    assert second.terminate() == 0
    assert second.records() == []
    assert "saved 0 open calls" in second.err.read_text()
    assert [r["ended_by"] for r in written] == ["caller"] * calls, written[0]


def _sipp_calls(lab, calls: int, hold_ms: int, timeout_s: int) -> subprocess.Popen:
    """SIPp placing `calls` calls of `hold_ms` to the callee at 10 a second."""
    caller = subprocess.Popen(
        lab.pair.command(
            lab.pair.caller_ns, "sipp", f"{CALLEE_IP}:{ANSWER_PORT}", "-sf", "uac.xml",
            "-i", CALLER_IP, "-p", "6060", "-mi", CALLER_IP, "-s", "bob", "-m", str(calls),
            "-r", "10", "-d", str(hold_ms), "-nostdin", "-timeout", f"{timeout_s}s",
            "-timeout_error",
        ),
        cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(caller)
    return caller


def _restart(lab, first, stop: str, config: str, saved: str):
    """Stop `first` (SIGTERM: its log must say `saved`; SIGKILL: no word),
    start a second daemon; (second, seconds since the stop began)."""
    stopped = time.monotonic()
    if stop == "sigterm":
        assert first.terminate(timeout=10) == 0
        assert saved in first.err.read_text()
    else:
        first.proc.kill()
        first.proc.wait()
    assert first.records() == []
    second = lab.start_daemon(config, name="second")
    return second, time.monotonic() - stopped
