"""`scripts/install` into a temporary root: its own environment, units that point at it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/opt/voiplog"
INSTANCES = ["voiplog@pop1.service", "voiplog-purge@pop1.service", "voiplog-purge@pop1.timer"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    result = subprocess.run(
        [str(ROOT / "scripts" / "install"), "--root", str(root), "--prefix", PREFIX],
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result.stdout


def test_the_environment_runs_voiplog(installed):
    root, said = installed
    voiplog = root / PREFIX.lstrip("/") / "bin" / "voiplog"
    version = subprocess.run([str(voiplog), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("voiplog, version ")
    assert f"installed in {root}{PREFIX}" in said
    example = root / "etc" / "voiplog" / "example-pop.toml"
    checked = subprocess.run(
        [str(voiplog), "config", "check", str(example)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


def test_the_units_point_at_the_environment(installed):
    root, _ = installed
    units = root / "etc" / "systemd" / "system"
    assert sorted(p.name for p in units.iterdir()) == sorted(
        p.name for p in (ROOT / "systemd").iterdir()
    )
    for unit in units.iterdir():
        text = unit.read_text()
        assert "/usr/bin/voiplog" not in text
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                assert line.startswith(f"ExecStart={PREFIX}/bin/voiplog "), line


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_installed_units_verify_without_a_warning(installed, tmp_path):
    root, _ = installed
    # verify checks the executables on this host: point them into the temporary root.
    for unit in (root / "etc" / "systemd" / "system").iterdir():
        text = unit.read_text().replace(f"{PREFIX}/bin/", f"{root}{PREFIX}/bin/")
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(f"./{name}" for name in INSTANCES)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


def test_a_relative_prefix_is_refused_before_anything_is_installed(tmp_path):
    root = tmp_path / "root"
    config = root / "etc" / "voiplog" / "example-pop.toml"
    config.parent.mkdir(parents=True)
    config.write_text("# the operator's own\n")
    result = subprocess.run(
        [str(ROOT / "scripts" / "install"), "--root", str(root), "--prefix", "opt/voiplog"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2 and "--prefix must be an absolute path" in result.stderr
    assert config.read_text() == "# the operator's own\n"
    assert sorted(p.name for p in root.iterdir()) == ["etc"]
