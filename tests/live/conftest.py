"""Live capture tests: network namespaces, a veth pair, SIPp on both ends, `voiplog run`.

Marked `live`; skipped unless run as root with iproute2 and SIPp (Debian:
sip-tester) installed. Every test bounds its calls in number and time, and the
namespaces are deleted after each test, also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.netns import CALLEE_IP, CALLER_IP, available, veth_pair
from tests.pcapwriter import write_pcap
from tests.sipcraft import rtp_packet, udp_frame

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
RTP_PACKETS = 50  # in the capture each side plays: 1 s of 20 ms G.711 A-law
ANSWER_PORT = 5060
BUSY_PORT = 5070


def _why_not() -> str | None:
    reason = available()
    if reason is None and shutil.which("sipp") is None:
        reason = "needs SIPp (Debian: sip-tester)"
    return reason


def pytest_collection_modifyitems(config, items):
    reason = _why_not()
    for item in items:
        if "tests/live/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.live)
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"live capture test {reason}"))


class Daemon:
    """`voiplog run` inside a namespace, its records and its standard error."""

    def __init__(self, proc: subprocess.Popen, out: Path, err: Path) -> None:
        self.proc = proc
        self.out = out
        self.err = err

    def wait_for_log(self, pattern: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.err.read_text()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"daemon never logged {pattern!r}:\n{self.err.read_text()}")

    def wait_for_records(self, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.records()) < count:
            time.sleep(0.1)
        return self.records()

    def records(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def terminate(self, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


class Lab:
    """A veth pair between a caller namespace and a callee namespace, with helpers."""

    def __init__(self, pair, workdir: Path) -> None:
        self.pair = pair
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.daemons: list[Daemon] = []
        frames = [
            (1_700_000_000_000_000 + i * 20_000,
             udp_frame(CALLER_IP, 4000, CALLEE_IP, 4002, rtp_packet(i, i * 160, 0x1234, pt=8)))
            for i in range(RTP_PACKETS)
        ]  # fmt: skip
        write_pcap(workdir / "rtp.pcap", frames)
        for scenario in SCENARIOS.glob("*.xml"):
            shutil.copy(scenario, workdir / scenario.name)

    def start_daemon(
        self,
        config: str,
        *,
        env: dict | None = None,
        name: str = "daemon",
        args=(),
        ready_timeout: float = 10,
        interface: bool = True,
    ) -> Daemon:
        cfg = self.workdir / f"{name}.toml"
        cfg.write_text(config)
        out = self.workdir / f"{name}.jsonl"
        err = self.workdir / f"{name}.err"
        cmd = self.pair.command(
            self.pair.callee_ns, sys.executable, "-m", "voiplog", "run",
            "--config", str(cfg),
            *(("--interface", self.pair.callee_if) if interface else ()),
            "--store", "none", "--jsonl", str(out), *args,
        )  # fmt: skip
        environ = {**os.environ, **(env or {})}
        environ["PYTHONPATH"] = str(ROOT)
        # Open calls saved at a stop stay with this test's daemons.
        environ.setdefault("STATE_DIRECTORY", str(self.workdir / "state"))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stderr=err.open("w"))
        daemon = Daemon(proc, out, err)
        self.daemons.append(daemon)
        daemon.wait_for_log("capturing on", timeout=ready_timeout)
        return daemon

    def callee(self, scenario: str, port: int, calls: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            self.pair.command(
                self.pair.callee_ns, "sipp", "-sf", scenario, "-i", CALLEE_IP,
                "-p", str(port), "-mi", CALLEE_IP, "-m", str(calls), "-bg", "-nostdin",
            ),
            cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def call(
        self, port: int, calls: int, *, hold_ms: int = 1500, rate: int = 10, timeout_s: int = 30
    ) -> dict:
        """Place `calls` calls to the callee on `port`; SIPp's own statistics."""
        stats = self.workdir / f"uac-{port}-{time.monotonic_ns()}.csv"
        result = subprocess.run(
            self.pair.command(
                self.pair.caller_ns, "sipp", f"{CALLEE_IP}:{port}", "-sf", "uac.xml",
                "-i", CALLER_IP, "-p", str(port + 1000), "-mi", CALLER_IP, "-s", "bob",
                "-m", str(calls), "-r", str(rate), "-d", str(hold_ms), "-nostdin",
                "-timeout", f"{timeout_s}s", "-timeout_error", "-trace_stat", "-stf", str(stats),
            ),
            cwd=self.workdir, capture_output=True, text=True, timeout=timeout_s + 10,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return _sipp_stats(stats, result.stderr)

    def close(self) -> None:
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        # SIPp -bg forks: end the callees left in the namespaces by their pids.
        for ns in (self.pair.caller_ns, self.pair.callee_ns):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def _sipp_stats(csv_path: Path, stderr: str) -> dict:
    """Calls and RTP packets as SIPp counted them: its statistics file and what it
    said about the capture it plays."""
    rows = [line.split(";") for line in csv_path.read_text().splitlines() if line.strip()]
    header, last = rows[0], rows[-1]
    values = dict(zip(header, last, strict=False))
    played = [int(n) for n in re.findall(r"npkts (\d+)", stderr)]
    return {
        "successful": int(values["SuccessfulCall(C)"]),
        "failed": int(values["FailedCall(C)"]),
        "created": int(values["TotalCallCreated"]),
        "rtp_packets_per_play": played[0] if played else None,
    }


@pytest.fixture
def lab(tmp_path):
    with veth_pair("vlt") as pair:
        lab = Lab(pair, tmp_path)
        try:
            yield lab
        finally:
            lab.close()


class NotifyListener:
    """A NOTIFY_SOCKET as systemd would offer it: a Unix datagram socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if line in message.split("\n"):
                    return message
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())
        raise AssertionError(f"no {line!r} among {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()
