"""The shipped systemd units: `systemd-analyze verify` says nothing, exposure stays low."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
INSTANCES = ["voiplog@pop1.service", "voiplog-purge@pop1.service", "voiplog-purge@pop1.timer"]
# systemd-analyze security's exposure scale: 0 (locked down) .. 10 (unprotected).
MAX_EXPOSURE = {"voiplog@pop1.service": 2.5, "voiplog-purge@pop1.service": 2.0}

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian: systemd)"
)


@pytest.fixture
def unit_dir(tmp_path):
    """The units as shipped, with ExecStart pointing at an executable that exists here
    (verify checks that it does; everything else is byte for byte the shipped file)."""
    stub = tmp_path / "bin" / "voiplog"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = tmp_path / "units"
    out.mkdir()
    for unit in UNITS.iterdir():
        text = unit.read_text().replace("/usr/bin/voiplog", str(stub))
        (out / unit.name).write_text(text)
    return out


def test_units_shipped():
    assert sorted(p.name for p in UNITS.iterdir()) == [
        "voiplog-purge@.service",
        "voiplog-purge@.timer",
        "voiplog@.service",
    ]


def test_verify_without_any_warning(unit_dir):
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{name}" for name in INSTANCES)],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("name", sorted(MAX_EXPOSURE))
def test_security_exposure_below_threshold(unit_dir, name):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", f"./{name}"],
        cwd=unit_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE[name], result.stdout


def test_capture_service_holds_only_capture_capabilities():
    text = (UNITS / "voiplog@.service").read_text()
    assert "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN\n" in text
    assert "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n" in text
    for needed in ("Type=notify", "WatchdogSec=", "ProtectSystem=strict", "StateDirectory="):
        assert needed in text
    assert "User=root" not in text
