"""The README's first command on a clean machine: no DSN, records in the embedded Postgres."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import psycopg2
import pytest

from voiplog.store.embedded import EmbeddedPostgres
from voiplog.store.read import iter_records

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _first_command() -> str:
    readme = (ROOT / "README.md").read_text()
    return re.search(r"```sh\n(.+?)\n```", readme, re.S).group(1).strip()


def _clean_copy(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())


def test_readme_first_command_stores_records_in_the_embedded_postgres(tmp_path):
    command = _first_command()
    assert "replay" in command and "--store none" not in command
    checkout, home = tmp_path / "voiplog", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    _clean_copy(checkout)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOIPLOG_", "XDG_"))}
    env["HOME"] = str(home)
    env.setdefault("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    result = subprocess.run(
        ["sh", "-c", command], cwd=checkout, env=env, capture_output=True, timeout=900
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(printed) == 5

    data_dir = home / ".local" / "share" / "voiplog" / "postgres"
    assert (data_dir / "data" / "PG_VERSION").exists()
    if os.geteuid() == 0:
        # Run as root: nothing was opened up to other users.
        for path in (data_dir, data_dir / "data"):
            assert path.stat().st_mode & 0o077 == 0, path
            assert path.stat().st_uid == 0, path
    # The server was stopped at the end; start it again to look inside.
    with EmbeddedPostgres(data_dir) as server, psycopg2.connect(server.dsn) as connection:
        stored = list(iter_records(connection))
    assert sorted(stored, key=lambda r: r["uid"]) == sorted(printed, key=lambda r: r["uid"])
