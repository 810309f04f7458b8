"""`voiplog run` refuses bad configuration with exit 2 and a message naming the key."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(tmp_path, config: str | None, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "voiplog", "run", "--store", "none"]
    cmd += ["--jsonl", str(tmp_path / "out.jsonl")]
    if config is not None:
        path = tmp_path / "pop.toml"
        path.write_text(config)
        cmd += ["--config", str(path)]
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ('[capture]\nsnaplen = "large"\n', "capture.snaplen"),
        ("[capture]\nblock_kb = 100\n", "capture.block_kb"),
        ('[capture]\ninterfaces = ["has space "]\n', "capture.interfaces"),
        ('[metrics]\naddress = "nowhere"\n', "metrics.address"),
        ('[daemon]\nlog_level = "loud"\n', "daemon.log_level"),
        ("[capture]\nsnaplne = 100\n", "capture.snaplne"),
        ("[calls]\nlinger_s = -1\n", "calls.linger_s"),
    ],
)
def test_broken_config_exits_2_naming_the_key(tmp_path, config, key):
    result = run(tmp_path, config, "--interface", "lo")
    assert result.returncode == 2, result.stderr
    assert f"pop.toml: {key}: " in result.stderr


def test_not_toml(tmp_path):
    result = run(tmp_path, "[capture\n", "--interface", "lo")
    assert result.returncode == 2
    assert "pop.toml: not valid TOML" in result.stderr


def test_no_interface(tmp_path):
    result = run(tmp_path, 'pop = "x"\n')
    assert result.returncode == 2
    assert "capture.interfaces: no interface to capture on" in result.stderr


def test_unknown_interface(tmp_path):
    result = run(tmp_path, '[capture]\ninterfaces = ["nosuchif0"]\n')
    assert result.returncode == 2
    assert "capture.interfaces: no such interface: nosuchif0" in result.stderr


def test_unknown_interface_on_the_command_line(tmp_path):
    result = run(tmp_path, 'pop = "x"\n', "--interface", "nosuchif1")
    assert result.returncode == 2
    assert "--interface: no such interface: nosuchif1" in result.stderr


@pytest.mark.skipif(ctypes.util.find_library("pcap") is None, reason="needs libpcap")
def test_bad_extra_filter(tmp_path):
    result = run(tmp_path, '[capture]\nextra_filter = "udp prt 1"\n', "--interface", "lo")
    assert result.returncode == 2
    assert "capture.extra_filter: cannot compile 'udp prt 1'" in result.stderr


def test_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "voiplog", "run", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    for option in ("--config", "--interface", "--store", "--jsonl"):
        assert option in result.stdout
