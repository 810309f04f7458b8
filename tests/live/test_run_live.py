"""`voiplog run` on a veth pair carrying SIPp calls: the records match SIPp's counts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.netns import CALLEE_IP, CALLER_IP
from tests.live.conftest import ANSWER_PORT, BUSY_PORT

pytestmark = pytest.mark.live

ANSWERED = 10
REFUSED = 6
CONFIG = """
pop = "lab"
[calls]
linger_s = 1
"""


def test_records_match_sipp_statistics(lab):
    daemon = lab.start_daemon(CONFIG)
    lab.callee("uas_answer.xml", ANSWER_PORT, ANSWERED)
    lab.callee("uas_busy.xml", BUSY_PORT, REFUSED)
    time.sleep(0.3)
    answered = lab.call(ANSWER_PORT, ANSWERED, hold_ms=1500, rate=10)
    refused = lab.call(BUSY_PORT, REFUSED, rate=10)
    # The calls have ended: the daemon closes them after linger_s on its own
    # clock, with no packet to drive it.
    records = daemon.wait_for_records(ANSWERED + REFUSED, timeout=8)
    assert daemon.terminate() == 0

    assert answered["created"] == answered["successful"] == ANSWERED
    assert refused["created"] == refused["successful"] == REFUSED
    assert len(records) == answered["created"] + refused["created"]
    assert Counter(r["disposition"] for r in records) == {
        "answered": answered["successful"],
        "busy": refused["successful"],
    }
    played = answered["rtp_packets_per_play"]
    assert played is not None
    for record in records:
        assert record["caller_ip"] == CALLER_IP and record["callee_ip"] == CALLEE_IP
        assert record["ended_by"] in ("caller", "callee")  # none left for shutdown
        assert "capture_loss" not in record["flags"]
        if record["disposition"] == "answered":
            assert record["final_status"] == 200 and record["ended_by"] == "caller"
            # One stream each way, every packet SIPp played, none lost.
            assert sorted(m["src_ip"] for m in record["media"]) == [CALLER_IP, CALLEE_IP]
            assert [m["packets"] for m in record["media"]] == [played, played]
            assert all(m["lost"] == 0 and m["codec"] == "PCMA" for m in record["media"])
        else:
            assert record["final_status"] == 486 and record["media"] == []
    assert len({r["call_id"] for r in records}) == len(records)


def test_sigterm_closes_open_calls_with_shutdown(lab):
    daemon = lab.start_daemon(CONFIG + "[daemon]\nresume_calls = false\n")
    lab.callee("uas_answer.xml", ANSWER_PORT, 1)
    time.sleep(0.3)
    caller = subprocess.Popen(
        lab.pair.command(
            lab.pair.caller_ns, "sipp", f"{CALLEE_IP}:{ANSWER_PORT}", "-sf", "uac.xml",
            "-i", CALLER_IP, "-p", "6060", "-mi", CALLER_IP, "-s", "bob", "-m", "1",
            "-d", "20000", "-nostdin", "-timeout", "25s",
        ),
        cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(caller)
    time.sleep(2.5)  # answered, media flowing, far from its BYE
    assert daemon.records() == []
    started = time.monotonic()
    assert daemon.terminate(timeout=10) == 0
    assert time.monotonic() - started < 10
    (record,) = daemon.records()
    assert record["disposition"] == "answered"
    assert record["ended_by"] == "shutdown"
    assert "shutdown" in record["flags"]
    assert len(record["media"]) == 2
    assert "stopped: 1 records written" in daemon.err.read_text()


def test_sighup_reloads_subscriber_networks_and_log_level(lab):
    daemon = lab.start_daemon(CONFIG)
    lab.callee("uas_busy.xml", BUSY_PORT, 2)
    time.sleep(0.3)
    lab.call(BUSY_PORT, 1)
    assert len(daemon.wait_for_records(1, timeout=8)) == 1
    cfg = lab.workdir / "daemon.toml"
    cfg.write_text(
        CONFIG
        + """
[daemon]
log_level = "debug"

[[subscriber_networks]]
cidr = "192.0.2.0/25"
site = "lab hall"
"""
    )
    daemon.proc.send_signal(1)  # SIGHUP
    daemon.wait_for_log("reloaded configuration: 1 subscriber networks, log level debug")
    lab.call(BUSY_PORT, 1)
    assert len(daemon.wait_for_records(2, timeout=8)) == 2
    assert daemon.proc.poll() is None  # a reload is no restart
    assert daemon.terminate() == 0
    first, second = daemon.records()
    assert first["subscriber_ip"] is None and first["direction"] is None
    assert second["subscriber_ip"] == CALLER_IP and second["direction"] == "internal"
    assert second["subscriber"]["location"]["site"] == "lab hall"


def test_broken_config_on_sighup_keeps_running(lab):
    daemon = lab.start_daemon(CONFIG)
    (lab.workdir / "daemon.toml").write_text("[calls]\nlinger_s = -4\n")
    daemon.proc.send_signal(1)
    daemon.wait_for_log(r"reload: configuration not changed: .*calls\.linger_s")
    assert daemon.proc.poll() is None
    assert daemon.terminate() == 0


def test_systemd_notifications_and_metrics(lab, notify_socket):
    daemon = lab.start_daemon(
        CONFIG + '[metrics]\naddress = "127.0.0.1:9464"\n[daemon]\nstatus_interval_s = 0.5\n',
        env={"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"},
    )
    ready = notify_socket.wait_for("READY=1")
    assert f"capturing on {lab.pair.callee_if}" in ready
    notify_socket.wait_for("WATCHDOG=1")
    lab.callee("uas_busy.xml", BUSY_PORT, 2)
    time.sleep(0.3)
    lab.call(BUSY_PORT, 2)
    deadline = time.monotonic() + 10  # records come out linger_s after the calls end
    metrics = _scrape(lab, 9464)
    while _value(metrics, "voiplog_records_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        metrics = _scrape(lab, 9464)
    assert _value(metrics, "voiplog_records_total") == 2
    assert _value(metrics, "voiplog_sip_messages_total") >= 8  # INVITE 100 486 ACK, twice
    assert _value(metrics, "voiplog_open_calls") == 0
    assert _value(metrics, 'voiplog_records_by_disposition_total{disposition="busy"}') == 2
    drops = f'voiplog_capture_drops_total{{interface="{lab.pair.callee_if}",where="ring"}}'
    assert _value(metrics, drops) == 0
    assert _value(metrics, "voiplog_spool_depth") == 0
    assert daemon.terminate() == 0
    notify_socket.wait_for("STOPPING=1")
    assert any("packets/s" in m for m in notify_socket.messages if "STATUS=" in m)
    assert sum(m.split("\n").count("WATCHDOG=1") for m in notify_socket.messages) >= 2


def _scrape(lab, port: int) -> str:
    result = subprocess.run(
        lab.pair.command(
            lab.pair.callee_ns, sys.executable, "-c",
            "import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{port}/metrics',timeout=5).read().decode())",
        ),
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return result.stdout


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{metrics}")


def test_drops_flag_the_records_they_overlap(lab):
    """A daemon that cannot keep up (stopped here, with a 1 MiB ring) loses packets;
    the call in progress meanwhile says so, the call that ended before does not."""
    daemon = lab.start_daemon(CONFIG + "[capture]\nring_mb = 1\nblock_kb = 128\n")
    lab.callee("uas_busy.xml", BUSY_PORT, 1)
    lab.callee("uas_answer.xml", ANSWER_PORT, 1)
    time.sleep(0.3)
    lab.call(BUSY_PORT, 1)
    assert len(daemon.wait_for_records(1, timeout=8)) == 1
    caller = subprocess.Popen(
        lab.pair.command(
            lab.pair.caller_ns, "sipp", f"{CALLEE_IP}:{ANSWER_PORT}", "-sf", "uac.xml",
            "-i", CALLER_IP, "-p", "6061", "-mi", CALLER_IP, "-s", "bob", "-m", "1",
            "-d", "4000", "-nostdin", "-timeout", "20s",
        ),
        cwd=lab.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lab.procs.append(caller)
    time.sleep(1.5)  # answered
    daemon.proc.send_signal(19)  # SIGSTOP: the ring fills and overflows
    try:
        subprocess.run(
            lab.pair.command(
                lab.pair.caller_ns, sys.executable, "-c",
                "import socket\n"
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                "for i in range(20000):\n"
                f"    s.sendto(b'\\x80\\x08' + bytes(170), ('{CALLEE_IP}', 40000))\n",
            ),
            check=True, timeout=30,
        )  # fmt: skip
    finally:
        daemon.proc.send_signal(18)  # SIGCONT
    assert caller.wait(20) == 0
    records = daemon.wait_for_records(2, timeout=15)
    daemon.wait_for_log(r"capture lost \d+ packets")
    assert daemon.terminate() == 0
    busy, answered = records
    assert busy["disposition"] == "busy" and "capture_loss" not in busy["flags"]
    assert answered["disposition"] == "answered" and "capture_loss" in answered["flags"]
    assert re.search(
        r"capture on vlb: \d+ packets received, [1-9]\d* dropped", daemon.err.read_text()
    )


def test_records_land_in_the_store_and_survive_sigterm(lab):
    """The default store with nothing configured: the embedded Postgres, kept in
    the service's state directory; SIGTERM leaves every record stored."""
    import psycopg2

    from voiplog.store.embedded import EmbeddedPostgres
    from voiplog.store.read import iter_records

    state = lab.workdir / "state"
    daemon = lab.start_daemon(
        CONFIG,
        # As root the embedded server runs as a uid of its own (see embedded.py).
        env={"STATE_DIRECTORY": str(state), "VOIPLOG_EMBEDDED_UID": "61999"},
        args=("--store", "db"),
        ready_timeout=60,  # the first start makes the embedded cluster
    )
    lab.callee("uas_answer.xml", ANSWER_PORT, 3)
    time.sleep(0.3)
    lab.call(ANSWER_PORT, 3, hold_ms=500, rate=10)
    records = daemon.wait_for_records(3, timeout=8)
    assert daemon.terminate(timeout=10) == 0
    assert len(records) == 3
    with EmbeddedPostgres(state / "postgres") as server, psycopg2.connect(server.dsn) as db:
        stored = list(iter_records(db))
        (pop,) = {row[0] for row in _rows(db, "SELECT pop FROM cdr")}
    assert sorted(stored, key=lambda r: r["uid"]) == sorted(records, key=lambda r: r["uid"])
    assert pop == "lab"


def _rows(connection, sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_radius_accounting_on_the_wire_names_the_subscriber_of_a_call(lab):
    """A BNG's RADIUS accounting seen on the captured link before a SIPp call:
    the call's record names the subscriber who held the caller's address."""
    config = (
        CONFIG
        + f"""
[[subscriber_networks]]
cidr = "{CALLER_IP}/32"
site = "lab"

[enrichment]
radius_ports = [1813]
"""
    )
    daemon = lab.start_daemon(config)
    send = (
        "import socket\n"
        "from tests.radiuscraft import accounting\n"
        "packet = accounting('Start', 'sess-1', User_Name='alice@isp', "
        f"Framed_IP_Address='{CALLER_IP}', Calling_Station_Id='line-7')\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(('{CALLER_IP}', 0))\n"
        f"s.sendto(packet, ('{CALLEE_IP}', 1813))\n"
    )
    result = subprocess.run(
        lab.pair.command(lab.pair.caller_ns, sys.executable, "-c", send),
        capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    time.sleep(0.3)
    lab.callee("uas_answer.xml", ANSWER_PORT, 1)
    time.sleep(0.3)
    lab.call(ANSWER_PORT, 1, hold_ms=500)
    (record,) = daemon.wait_for_records(1, timeout=8)
    assert daemon.terminate() == 0
    assert record["subscriber_ip"] == CALLER_IP
    assert record["subscriber"]["id"] == "alice@isp"
    assert record["subscriber"]["location"]["site"] == "lab"
