"""Leases and CGNAT port blocks in Postgres: DDL, imports that merge renewals, conflicts, loading."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner

from voiplog.cli.main import cli
from voiplog.enrich import CgnatIndex, LeaseIndex, parse_time, read_cgnat_csv, read_lease_rows

psycopg2 = pytest.importorskip("psycopg2")
from voiplog.store import migrate  # noqa: E402
from voiplog.store.database import make_engine  # noqa: E402
from voiplog.store.leases import (  # noqa: E402
    import_leases,
    import_port_blocks,
    load_leases,
    load_port_blocks,
)

pytestmark = pytest.mark.postgres

DSN = os.environ.get("VOIPLOG_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
T = parse_time("2024-05-01T10:00:00Z")
H = 3_600_000_000
HEADER = "network,subscriber_id,account,access_line,start,end\n"


@pytest.fixture
def dsn():
    name = f"voiplog_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(DSN, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"no Postgres at {DSN} ({exc}); scripts/test starts one")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(DSN)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    engine = make_engine(url)
    migrate.upgrade(engine)  # the lease tables come with the store's migrations
    engine.dispose()
    try:
        yield url
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def conn(dsn):
    connection = psycopg2.connect(dsn)
    yield connection
    connection.close()


def _rows(text, source="leases.csv"):
    return list(read_lease_rows((HEADER + text).splitlines(keepends=True), source))


def _stored(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT network::text, subscriber_id, lower(valid), upper(valid) FROM lease ORDER BY 1, 3"
        )
        return [(n, s, lo.isoformat(), hi.isoformat() if hi else None) for n, s, lo, hi in cur]


def test_renewals_merge_and_conflicts_name_file_and_line(conn):
    result = import_leases(
        conn,
        _rows(
            "100.64.0.1,alice,,,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n"
            "100.64.0.1,alice,,,2024-05-01T11:00:00Z,2024-05-01T12:00:00Z\n"  # renewal, touching
            "100.64.0.1,alice,,,2024-05-01T11:30:00Z,2024-05-01T12:30:00Z\n"  # renewal, overlapping
            "100.64.0.1,bob,,,2024-05-01T12:00:00Z,2024-05-01T13:00:00Z\n"  # conflict
            "100.64.0.1,bob,,,2024-05-01T12:30:00Z,\n"  # the next holder, from its end on
            "2001:db8:1200::/56,carol,,,2024-05-01T10:00:00+02:00,\n"
            "2001:db8:1200:5::/64,dave,,,2024-05-01T10:00:00Z,\n"  # inside carol's prefix
        ),
    )
    assert (result.inserted, result.merged) == (3, 2)
    assert len(result.conflicts) == 2
    assert result.conflicts[0].startswith(
        "leases.csv:5: 100.64.0.1 of bob from 2024-05-01T12:00:00"
    )
    assert "held by alice" in result.conflicts[0]
    assert result.conflicts[1].startswith("leases.csv:8: 2001:db8:1200:5::/64 of dave")
    assert _stored(conn) == [
        ("100.64.0.1/32", "alice", "2024-05-01T10:00:00+00:00", "2024-05-01T12:30:00+00:00"),
        ("100.64.0.1/32", "bob", "2024-05-01T12:30:00+00:00", None),
        ("2001:db8:1200::/56", "carol", "2024-05-01T08:00:00+00:00", None),
    ]
    # Importing the same file again changes nothing but merges.
    again = import_leases(
        conn, _rows("100.64.0.1,alice,,,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n")
    )
    assert (again.inserted, again.merged, again.conflicts) == (0, 1, [])
    assert len(_stored(conn)) == 3


def test_the_exclusion_constraint_holds_on_its_own(conn):
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lease (network, valid, subscriber_id, source) VALUES"
            " ('100.64.0.0/30', tstzrange('2024-05-01 10:00Z', '2024-05-01 11:00Z'), 'a', 't')"
        )
        with pytest.raises(psycopg2.errors.ExclusionViolation):
            cur.execute(
                "INSERT INTO lease (network, valid, subscriber_id, source) VALUES"
                " ('100.64.0.2/32', tstzrange('2024-05-01 10:59Z', NULL), 'b', 't')"
            )
    conn.rollback()


def test_load_into_the_index(conn):
    import_leases(
        conn,
        _rows(
            "100.64.0.1,alice,acct-1,olt1,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n"
            "100.64.0.1,bob,,,2024-05-01T11:00:00Z,\n"
            "2001:db8:1200::/56,carol,,,2024-05-01T10:00:00Z,\n"
        ),
    )
    index = LeaseIndex()
    assert load_leases(conn, index) == 3
    alice = index.lookup("100.64.0.1", T + H - 1)
    assert (alice.subscriber_id, alice.account, alice.access_line) == ("alice", "acct-1", "olt1")
    assert index.lookup("100.64.0.1", T + H).subscriber_id == "bob"
    assert index.lookup("2001:db8:1200:7::1", T).subscriber_id == "carol"


def test_port_blocks(conn):
    lines = [
        "public_ip,port_start,port_end,private_ip,start,end\n",
        "203.0.113.7,1024,2047,100.64.0.1,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n",
        "203.0.113.7,1024,2047,100.64.0.1,2024-05-01T11:00:00Z,\n",  # renewal
        "203.0.113.7,2047,3071,100.64.0.2,2024-05-01T10:30:00Z,\n",  # overlaps port 2047
        "203.0.113.7,2048,3071,100.64.0.2,2024-05-01T10:30:00Z,\n",
    ]
    blocks = [(block, f":{line}") for block, line in read_cgnat_csv(lines, "nat.csv")]
    result = import_port_blocks(conn, blocks)
    assert (result.inserted, result.merged) == (2, 1)
    (conflict,) = result.conflicts
    assert conflict.startswith(
        "nat.csv:4: 203.0.113.7 ports 2047-3071 for 100.64.0.2 overlaps ports 1024-2047"
    )
    index = CgnatIndex()
    assert load_port_blocks(conn, index) == 2
    assert index.lookup("203.0.113.7", 2047, T + 5 * H).private_ip == "100.64.0.1"
    assert index.lookup("203.0.113.7", 2048, T + H).private_ip == "100.64.0.2"
    assert index.lookup("203.0.113.7", 2048, T) is None


def test_leases_import_command(dsn, tmp_path):
    good = tmp_path / "leases.csv"
    good.write_text(
        HEADER
        + "100.64.0.1,alice,,,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n"
        + "100.64.0.1,bob,,,2024-05-01T10:30:00Z,\n"
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["leases", "import", str(good), "--dsn", dsn])
    assert result.exit_code == 1, result.output
    assert f"conflict: {good}:3: 100.64.0.1 of bob" in result.output
    assert f"{good}: 1 leases added, 0 merged into stored ones, 1 conflicts" in result.output

    naive = tmp_path / "naive.jsonl"
    naive.write_text(
        '{"network": "100.64.0.9", "subscriber_id": "x", "start": "2024-05-01T10:00:00"}\n'
    )
    result = runner.invoke(cli, ["leases", "import", str(naive)], env={"VOIPLOG_DATABASE_URL": dsn})
    assert result.exit_code == 2
    assert f"{naive}:1: start: '2024-05-01T10:00:00' has no UTC offset" in result.output

    # Without --dsn the store is the POP config's, as for replay and the daemon.
    config = tmp_path / "pop.toml"
    config.write_text(f'pop = "ams1"\n[store]\ndatabase_url = "{dsn}"\n')
    more = tmp_path / "more.csv"
    more.write_text(HEADER + "100.64.0.2,carol,,,2024-05-01T10:00:00Z,\n")
    result = runner.invoke(
        cli, ["leases", "import", str(more), "--config", str(config)],
        env={"VOIPLOG_DATABASE_URL": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"{more}: 1 leases added" in result.output

    # lookup finds imported leases through the database
    result = runner.invoke(
        cli, ["lookup", "--ip", "100.64.0.1", "--at", "2024-05-01T10:59:59Z", "--dsn", dsn]
    )
    assert result.exit_code == 0, result.output
    assert '"subscriber_id": "alice"' in result.output


def test_ipfix_nat_log_import_command(dsn, tmp_path):
    from tests.enrich.test_cgnat import TEMPLATE_ID, _event, _message, _set, _template

    log = tmp_path / "nat.ipfix"
    log.write_bytes(
        _message(
            [_template(), _set(TEMPLATE_ID, _event(T, 16, "100.64.0.1", "203.0.113.7", 1024, 2047))]
        )
        + _message([_set(TEMPLATE_ID, _event(T + H, 17, "100.64.0.1", "203.0.113.7", 1024, 2047))])
    )
    result = CliRunner().invoke(cli, ["leases", "import", "--cgnat", str(log), "--dsn", dsn])
    assert result.exit_code == 0, result.output
    assert f"{log}: 1 port blocks added" in result.output
    leases = tmp_path / "l.csv"
    leases.write_text(HEADER + "100.64.0.1,alice,,,2024-05-01T09:00:00Z,\n")
    assert CliRunner().invoke(cli, ["leases", "import", str(leases), "--dsn", dsn]).exit_code == 0
    result = CliRunner().invoke(
        cli,
        [
            "lookup",
            "--ip",
            "203.0.113.7",
            "--port",
            "1500",
            "--at",
            "2024-05-01T10:59:59Z",
            "--dsn",
            dsn,
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        '"private_ip": "100.64.0.1"' in result.output
        and '"subscriber_id": "alice"' in result.output
    )
    result = CliRunner().invoke(
        cli,
        [
            "lookup",
            "--ip",
            "203.0.113.7",
            "--port",
            "1500",
            "--at",
            "2024-05-01T11:00:00Z",
            "--dsn",
            dsn,
        ],
    )
    assert result.exit_code == 1


def test_leases_import_into_a_database_never_migrated_names_the_fix(scratch_dsn, tmp_path):
    leases = tmp_path / "leases.csv"
    leases.write_text(HEADER + "100.64.0.1,alice,,,2024-05-01T10:00:00Z,\n")
    result = CliRunner().invoke(cli, ["leases", "import", str(leases), "--dsn", scratch_dsn])
    assert result.exit_code == 2, result.output
    assert "has no voiplog schema; run `voiplog db upgrade` first" in result.output
    assert "relation" not in result.output


def test_leases_from_database_reads_the_configs_store(dsn, conn, tmp_path, monkeypatch):
    from voiplog.cli._common import load_pipeline_parts

    lines = [HEADER, "100.64.0.5,dora,,,2024-05-01T09:00:00Z,\n"]
    import_leases(conn, list(read_lease_rows(lines, "leases.csv")))
    monkeypatch.delenv("VOIPLOG_DATABASE_URL", raising=False)
    config = tmp_path / "pop.toml"
    config.write_text(
        f'pop = "ams1"\n[store]\ndatabase_url = "{dsn}"\n'
        "[enrichment]\nleases_from_database = true\n"
    )
    enricher = load_pipeline_parts(str(config)).enricher
    assert enricher.resolve("100.64.0.5", None, T).lease.subscriber_id == "dora"
