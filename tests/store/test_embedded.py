"""The README's first command on a clean machine: no DSN, records in the embedded Postgres."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
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
    if os.geteuid() == 0:
        # Run as root, the embedded server needs a uid of its own (see embedded.py).
        env["VOIPLOG_EMBEDDED_UID"] = str(server_uid := _free_uid())
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
        # Run as root: the cluster is the server's uid's alone, opened up to no one else.
        for path in (data_dir, data_dir / "data"):
            assert path.stat().st_mode & 0o077 == 0, path
            assert path.stat().st_uid == server_uid, path
    # The server was stopped at the end; start it again to look inside.
    with EmbeddedPostgres(data_dir) as server, psycopg2.connect(server.dsn) as connection:
        stored = list(iter_records(connection))
    assert sorted(stored, key=lambda r: r["uid"]) == sorted(printed, key=lambda r: r["uid"])


def _free_uid() -> int:
    """A uid no account and no process has: the embedded server's own."""
    import pwd

    used = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("Uid:"):
                    used.update(int(n) for n in line.split()[1:])
    for uid in range(61_200, 62_000):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            if uid not in used:
                return uid
    pytest.skip("no free uid for the embedded server between 61200 and 62000")


def _needs_root_and_binaries() -> None:
    from voiplog.store.embedded import find_binaries
    from voiplog.store.errors import EmbeddedPostgresError

    if os.geteuid() != 0:
        pytest.skip("the embedded server's own uid is chosen only when voiplog runs as root")
    try:
        find_binaries()
    except EmbeddedPostgresError as exc:
        pytest.skip(f"no Postgres binaries for the embedded server: {exc}")


def test_run_as_root_the_server_is_an_unprivileged_uid_that_cannot_read_roots_files(
    tmp_path, monkeypatch
):
    _needs_root_and_binaries()
    uid = _free_uid()
    monkeypatch.setenv("VOIPLOG_EMBEDDED_UID", str(uid))
    # Root's files, where any uid may look: a 0600 file and a 0700 directory.
    open_dir = Path(tempfile.mkdtemp(prefix="voiplog-test-"))
    try:
        os.chmod(open_dir, 0o755)
        secret = open_dir / "secret"
        secret.write_text("root only\n")
        os.chmod(secret, 0o600)
        closed = open_dir / "closed"
        closed.mkdir(mode=0o700)
        # The cluster lies under tmp_path, which only root may enter.
        data_dir = tmp_path / "home" / "postgres"
        with EmbeddedPostgres(data_dir) as server:
            connection = psycopg2.connect(server.dsn)
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('is_superuser')")
                assert cursor.fetchone() == ("on",)  # the database's superuser, not the host's
                with pytest.raises(psycopg2.Error, match="Permission denied"):
                    cursor.execute("SELECT pg_read_file(%s)", (str(secret),))
                with pytest.raises(psycopg2.Error, match="Permission denied"):
                    cursor.execute(f"COPY (SELECT 1) TO '{closed / 'x'}'")
            connection.close()
            pid = int((server.pgdata / "postmaster.pid").read_text().split()[0])
            status = Path(f"/proc/{pid}/status").read_text()
            uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
            assert uids == [str(uid)] * 4
            assert not (closed / "x").exists()
        for path in (data_dir, data_dir / "data"):
            assert path.stat().st_uid == uid and path.stat().st_mode & 0o077 == 0, path
        # Started again without the variable: the cluster's owner is the uid.
        monkeypatch.delenv("VOIPLOG_EMBEDDED_UID")
        with EmbeddedPostgres(data_dir) as server:
            connection = psycopg2.connect(server.dsn)
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            connection.close()
    finally:
        shutil.rmtree(open_dir, ignore_errors=True)


def test_run_as_root_with_no_uid_for_the_server_it_refuses_and_says_what_to_configure(
    tmp_path, monkeypatch
):
    import voiplog.store.embedded as embedded
    from voiplog.store.errors import EmbeddedPostgresError

    _needs_root_and_binaries()
    monkeypatch.delenv("VOIPLOG_EMBEDDED_UID", raising=False)
    monkeypatch.setattr(embedded, "SUBUID", tmp_path / "subuid")  # no range for root
    with pytest.raises(EmbeddedPostgresError) as refused:
        EmbeddedPostgres(tmp_path / "postgres").start()
    message = str(refused.value)
    assert "VOIPLOG_EMBEDDED_UID" in message and "database_url" in message
    assert "usermod --add-subuids" in message
    assert not (tmp_path / "postgres" / "data").exists()
    (tmp_path / "subuid").write_text("root:231072:65536\n")
    assert embedded.server_uid(tmp_path / "postgres") == 231072
