"""A real HEP sender: Kamailio (Debian's package) proxying SIPp calls, its `siptrace`
module mirroring every message it receives and sends as HEP v3 (capture id and
password set) to `voiplog run` in the other namespace, over UDP and over TCP.

The SIP stays on the loopback of the proxy's namespace, where voiplog (capturing on
its own namespace's interface) cannot see it: every record comes from the HEP feed."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter

import pytest

from bench.netns import CALLEE_IP, CALLER_IP

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        shutil.which("kamailio") is None, reason="needs kamailio (Debian: kamailio)"
    ),
]

CALLS = 5
REFUSED = 3

KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
tcp_children=2
auto_aliases=no
listen=udp:127.0.0.1:5060
listen=tcp:127.0.0.1:5060
listen={send}:{proxy_ip}:5090

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "siptrace.so"

modparam("siptrace", "duplicate_uri", "sip:{collector}:9060;transport={send}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2001)
modparam("siptrace", "auth_key", "lab-secret")
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_mode", 1)
modparam("siptrace", "send_sock_addr", "sip:{proxy_ip}:5090;transport={send}")

request_route {{
    # Requests are routed by their user part, the port of the SIPp that answers.
    if (has_totag()) {{
        if (is_method("ACK") && t_check_trans()) {{
            exit;  # the ACK of a failure: tm acknowledges downstream itself
        }}
        if (!loose_route()) {{
            $du = "sip:127.0.0.1:" + $rU;
        }}
        t_relay();
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    $du = "sip:127.0.0.1:" + $rU;
    t_relay();
}}
"""


def kamailio(lab, send: str) -> subprocess.Popen:
    cfg = lab.workdir / f"kamailio-{send}.cfg"
    cfg.write_text(KAMAILIO_CFG.format(send=send, proxy_ip=CALLER_IP, collector=CALLEE_IP))
    runtime = lab.workdir / f"kamailio-{send}"
    runtime.mkdir()
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr[-3000:]
    log = lab.workdir / f"kamailio-{send}.log"
    with log.open("w") as err:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            lab.pair.command(
                lab.pair.caller_ns, "kamailio", "-DD", "-E", "-f", str(cfg), "-Y", str(runtime),
                "-P", str(runtime / "kamailio.pid"), "-m", "64", "-M", "8",
            ),
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    lab.procs.append(proc)
    time.sleep(1.0)
    assert proc.poll() is None, log.read_text()[-3000:]
    return proc


def sipp(lab, *argv: str, background: bool = False):
    cmd = lab.pair.command(lab.pair.caller_ns, "sipp", *argv, "-nostdin")
    if background:
        proc = subprocess.Popen(
            cmd, cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        lab.procs.append(proc)
        return proc
    return subprocess.run(cmd, cwd=lab.workdir, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("send", ["udp", "tcp"])
def test_kamailio_siptrace_feeds_voiplog(lab, send):
    config = f"""
pop = "lab"
[calls]
linger_s = 1
[hep]
listen = ["{send}:{CALLEE_IP}:9060"]
auth_key = "lab-secret"
node_ids = [2001]
"""
    daemon = lab.start_daemon(config, name=f"hep-{send}")
    kamailio(lab, send)
    # Everything in one namespace: each SIPp gets its own media ports.
    sipp(lab, "-sf", "uas_answer.xml", "-i", "127.0.0.1", "-p", "5070", "-mi", "127.0.0.1",
         "-mp", "30000", "-m", str(CALLS), "-bg", background=True)  # fmt: skip
    sipp(lab, "-sf", "uas_busy.xml", "-i", "127.0.0.1", "-p", "5071", "-mi", "127.0.0.1",
         "-mp", "32000", "-m", str(REFUSED), "-bg", background=True)  # fmt: skip
    time.sleep(0.5)
    for port, count in (("5070", CALLS), ("5071", REFUSED)):
        result = sipp(
            lab, "127.0.0.1:5060", "-sf", "uac.xml", "-i", "127.0.0.1", "-p", str(6000 + int(port) % 10),
            "-mi", "127.0.0.1", "-mp", str(34000 + 2000 * (int(port) % 10)), "-s", port, "-m", str(count), "-r", "10", "-d", "300",
            "-timeout", "30s", "-timeout_error",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = daemon.wait_for_records(CALLS + REFUSED, timeout=10)
    assert daemon.terminate() == 0
    assert len(records) == CALLS + REFUSED, records
    assert Counter(r["disposition"] for r in records) == {"answered": CALLS, "busy": REFUSED}
    assert len({r["call_id"] for r in records}) == CALLS + REFUSED
    for record in records:
        assert record["source"] == {"type": "hep", "node_id": 2001}
        assert record["transport"] == "udp"  # the SIP's own transport, not HEP's
        assert (record["caller_ip"], record["callee_ip"]) == ("127.0.0.1", "127.0.0.1")
        # The hop the caller sent to: SIPp's port (6000 answered, 6001 refused) to the proxy.
        assert record["callee_port"] == 5060
        assert record["caller_port"] == (6000 if record["disposition"] == "answered" else 6001)
        assert record["final_status"] == (200 if record["disposition"] == "answered" else 486)
        if record["disposition"] == "answered":
            assert record["ended_by"] == "caller"
