"""`voiplog db where` names the store a config resolves to; `db shell` opens psql on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from voiplog.cli.main import cli


def test_where_names_the_store_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.delenv("VOIPLOG_DATABASE_URL", raising=False)
    runner = CliRunner()
    embedded = runner.invoke(cli, ["db", "where"])
    assert embedded.exit_code == 0
    assert embedded.stdout.startswith(f"the embedded store in {tmp_path / 'state' / 'postgres'}")
    assert "(not made yet)" in embedded.stdout

    monkeypatch.setenv("VOIPLOG_DATABASE_URL", "postgresql://w:pw@db.example:5433/cdr")
    from_env = runner.invoke(cli, ["db", "where"])
    assert from_env.stdout == "database w@db.example:5433/cdr (VOIPLOG_DATABASE_URL)\n"
    assert "pw" not in from_env.stdout

    config = tmp_path / "pop.toml"
    config.write_text('pop = "a"\n[store]\ndatabase_url = "host=cdr.example dbname=cdr user=x"\n')
    from_config = runner.invoke(cli, ["db", "where", "--config", str(config)])
    assert (
        from_config.stdout == f"database x@cdr.example:5432/cdr (store.database_url of {config})\n"
    )


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql (Debian: postgresql-client)")
def test_shell_opens_psql_on_the_store(store_dsn):
    result = subprocess.run(
        [sys.executable, "-m", "voiplog", "db", "shell"],
        input="SELECT 40 + 2 AS answer;\n",
        env={**os.environ, "VOIPLOG_DATABASE_URL": store_dsn},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert " 42" in result.stdout
