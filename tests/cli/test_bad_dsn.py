"""A database URL libpq cannot read: one line naming where it came from, exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from voiplog.cli.main import cli

BAD = "postgresql://writer:s3cret@[bad"


@pytest.mark.parametrize(
    "argv",
    [
        ["hold", "list"],
        ["purge", "--dry-run"],
        ["db", "current"],
        ["replay", "voiplog/data/sample-calls.pcap", "--store", "db"],
    ],
)
def test_a_malformed_database_url_in_the_environment(monkeypatch, argv):
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", BAD)
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("voiplog: VOIPLOG_DATABASE_URL: not a PostgreSQL connection URL")
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_a_malformed_database_url_in_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("VOIPLOG_DATABASE_URL", raising=False)
    config = tmp_path / "pop.toml"
    config.write_text('pop = "ams1"\n[store]\ndatabase_url = "host=db port=notaport x"\n')
    result = CliRunner().invoke(cli, ["hold", "list", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("voiplog: store.database_url: not a PostgreSQL connection")


def test_lookup_without_any_lease_source_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("VOIPLOG_DATABASE_URL", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))  # no embedded store made before
    result = CliRunner().invoke(
        cli, ["lookup", "--ip", "100.64.0.1", "--at", "2024-05-01T10:00:00Z"]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("voiplog: lookup: no lease source:")
    assert result.stdout == ""  # no "lease": null to be read as "held by nobody"


def test_lookup_against_an_unreachable_database_is_a_runtime_failure(monkeypatch):
    # Nothing listens on port 1 of this host: refused at once.
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["lookup", "--ip", "100.64.0.1", "--at", "2024-05-01"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("voiplog: database: cannot connect:")
