"""`voiplog run` restarted while SIPp calls with RTP go on: each call is written once,
by the second daemon, with its real end and its media, flagged `restarted`."""

from __future__ import annotations

import subprocess
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
    caller = subprocess.Popen(
        lab.pair.command(
            lab.pair.caller_ns, "sipp", f"{CALLEE_IP}:{ANSWER_PORT}", "-sf", "uac.xml",
            "-i", CALLER_IP, "-p", "6060", "-mi", CALLER_IP, "-s", "bob", "-m", str(CALLS),
            "-r", "10", "-d", "10000", "-nostdin", "-timeout", "40s", "-timeout_error",
        ),
        cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(caller)
    time.sleep(3)  # every call answered, media flowing, far from its BYE
    stopped = time.monotonic()
    if stop == "sigterm":
        assert first.terminate(timeout=10) == 0
        assert f"saved {CALLS} open calls" in first.err.read_text()
    else:
        first.proc.kill()
        first.proc.wait()
    assert first.records() == []
    second = lab.start_daemon(config, name="second")
    gap_s = time.monotonic() - stopped
    assert f"resumed {CALLS} open calls" in second.err.read_text()
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
