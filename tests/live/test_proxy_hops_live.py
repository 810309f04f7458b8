"""One call at two hops, from a real stateful proxy: Kamailio (Debian's package)
record-routing, asking for digest credentials, forking in parallel, timing
branches out and relaying failures, with SIPp on both sides. Its `siptrace`
module mirrors every message it receives and sends as HEP v3 to `voiplog run`,
so each call is seen on the caller's hop and on the callee's, under one Call-ID.

The records say what the caller experienced: a call challenged with 407 and
answered is not forked; the proxy's own 408 is a 408, not a fork and not a
cancel; a 503 from the callee that the proxy relayed as 500 is a 500; two
branches that both ring are a fork."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from bench.netns import CALLEE_IP, CALLER_IP

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        shutil.which("kamailio") is None, reason="needs kamailio (Debian: kamailio)"
    ),
]

CALLS = 2  # of each kind

# Requests are routed by the user part: auth (challenged, then to the answering
# callee), fork (to two callees at once: one rings and answers after a second,
# the other rings until cancelled), timeout (a callee that only rings: the
# proxy's INVITE timer fires after 2 s) and fail (a callee answering 503).
KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:5060
listen=udp:{proxy_ip}:5090

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "corex.so"
loadmodule "maxfwd.so"
loadmodule "auth.so"
loadmodule "siptrace.so"

modparam("tm", "fr_inv_timer", 2000)
modparam("siptrace", "duplicate_uri", "sip:{collector}:9060")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2002)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_mode", 1)
modparam("siptrace", "send_sock_addr", "sip:{proxy_ip}:5090")

request_route {{
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        # Record-routed requests follow their Route.
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            # The ACK of a failure: tm's to absorb, or of the stateless 407.
            t_check_trans();
            exit;
        }}
        if (uri != myself) {{
            t_relay();  # to the callee's Contact
            exit;
        }}
        # A caller that kept no route (uac.xml) sends them to the proxy: to
        # the branch that answered.
        if ($rU == "fork") {{
            $du = "sip:127.0.0.1:5071";
            t_relay();
            exit;
        }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
    }}
    if ($rU == "auth") {{
        if (!pv_proxy_authenticate("lab.example", "secret", "0")) {{
            proxy_challenge("lab.example", "0");
            exit;
        }}
        consume_credentials();
        $du = "sip:127.0.0.1:5070";
    }} else if ($rU == "fork") {{
        $ru = "sip:bob@127.0.0.1:5071";
        append_branch("sip:bob@127.0.0.1:5072");
    }} else if ($rU == "timeout") {{
        $du = "sip:127.0.0.1:5073";
    }} else if ($rU == "fail") {{
        $du = "sip:127.0.0.1:5074";
    }}
    t_relay();
}}
"""


def _kamailio(lab) -> None:
    cfg = lab.workdir / "kamailio.cfg"
    cfg.write_text(KAMAILIO_CFG.format(proxy_ip=CALLER_IP, collector=CALLEE_IP))
    runtime = lab.workdir / "kamailio"
    runtime.mkdir()
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr[-3000:]
    log = lab.workdir / "kamailio.log"
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


def _sipp(lab, *argv: str, background: bool = False):
    cmd = lab.pair.command(lab.pair.caller_ns, "sipp", *argv, "-nostdin")
    if background:
        proc = subprocess.Popen(
            cmd, cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        lab.procs.append(proc)
        return proc
    return subprocess.run(cmd, cwd=lab.workdir, capture_output=True, text=True, timeout=60)


def _callee(lab, scenario: str, port: int, media_port: int) -> None:
    _sipp(lab, "-sf", scenario, "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
          "-mp", str(media_port), "-m", str(CALLS), "-bg", background=True)  # fmt: skip


def _call(lab, service: str, scenario: str, port: int, *extra: str) -> None:
    result = _sipp(
        lab, "127.0.0.1:5060", "-sf", scenario, "-i", "127.0.0.1", "-p", str(port),
        "-mi", "127.0.0.1", "-mp", str(port + 30000), "-s", service, "-m", str(CALLS),
        "-r", "5", "-d", "300", "-timeout", "30s", "-timeout_error", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_proxy_seen_on_both_sides(lab):
    config = f"""
pop = "lab"
[calls]
linger_s = 1
[hep]
listen = ["udp:{CALLEE_IP}:9060"]
node_ids = [2002]
"""
    daemon = lab.start_daemon(config, name="proxy-hops")
    _kamailio(lab)
    _callee(lab, "uas_answer.xml", 5070, 40000)
    _callee(lab, "uas_answer_late.xml", 5071, 42000)
    _callee(lab, "uas_ring.xml", 5072, 44000)
    _callee(lab, "uas_ring.xml", 5073, 46000)
    _callee(lab, "uas_unavailable.xml", 5074, 48000)
    time.sleep(0.5)
    _call(lab, "auth", "uac_auth.xml", 6000, "-au", "alice", "-ap", "secret")
    _call(lab, "fork", "uac.xml", 6001)
    _call(lab, "timeout", "uac_refused.xml", 6002)
    _call(lab, "fail", "uac_refused.xml", 6003)
    records = daemon.wait_for_records(4 * CALLS, timeout=15)
    assert daemon.terminate() == 0
    by_kind: dict[int, list[dict]] = {}
    for record in records:
        assert record["source"]["node_id"] == 2002
        # The hop nearest the caller: SIPp's port to the proxy.
        assert (record["caller_port"], record["callee_port"]) in {
            (port, 5060) for port in (6000, 6001, 6002, 6003)
        }, record
        by_kind.setdefault(record["caller_port"], []).append(record)
    assert {port: len(found) for port, found in by_kind.items()} == {
        6000: CALLS,
        6001: CALLS,
        6002: CALLS,
        6003: CALLS,
    }, records
    for record in by_kind[6000]:  # challenged, then answered
        assert record["disposition"] == "answered"
        assert "auth_challenged" in record["flags"] and "forked" not in record["flags"]
        assert "invite_forwarded" in record["flags"]
    for record in by_kind[6001]:  # two branches rang, one answered
        assert record["disposition"] == "answered"
        assert "forked" in record["flags"]
    for record in by_kind[6002]:  # the proxy's INVITE timer
        assert (record["final_status"], record["disposition"]) == (408, "no_answer")
        assert record["ended_by"] == "callee"
        assert "forked" not in record["flags"]
    for record in by_kind[6003]:  # 503 from the callee, relayed to the caller as 500
        assert (record["final_status"], record["disposition"]) == (500, "failed")
        assert "forked" not in record["flags"]
    for record in records:  # one Call-ID a call: no B2BUA legs to link
        assert record["session_uid"] == record["uid"] and record["session_link"] is None
