"""The Dockerfile's build context: a wheel builds from exactly what it copies.

No registry for base images is reachable here, so the image itself is not
built; what can break it without Docker (a file the build needs and the
Dockerfile does not copy) is checked by assembling the same context and
building the wheel from it, as the image's `pip install .` does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _copied(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY in the build stage that builds the wheel."""
    copies = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            copies.append((words[1:-1], words[-1]))
    return copies


def test_a_wheel_builds_from_the_files_the_dockerfile_copies(tmp_path):
    context = tmp_path / "src"
    context.mkdir()
    for sources, destination in _copied(ROOT / "Dockerfile"):
        for source in sources:
            path = ROOT / source
            # "COPY a b ./" puts each source under its own name; "COPY dir ./dir" renames.
            target = context / path.name if destination in ("./", ".") else context / destination
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("voiplog-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "voiplog/cli/main.py" in names
    assert any(n.startswith("voiplog/migrations/versions/0001") for n in names)
    assert any(n.startswith("voiplog/store/sql/") for n in names)
