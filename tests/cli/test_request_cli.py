"""`voiplog request` and `voiplog audit` as officers use them, each person their own login."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from click.testing import CliRunner

from tests.store.conftest import query, scratch_dsn, store_dsn  # noqa: F401  (fixtures)
from tests.store.test_access_run import DAYS, TARGET, WINDOW, fill
from tests.store.test_access_schema import people  # noqa: F401  (fixture)
from voiplog.cli.main import cli

pytestmark = pytest.mark.postgres


def voiplog(dsn: str, *args: str, **env):
    result = CliRunner().invoke(cli, list(args), env={"VOIPLOG_DATABASE_URL": dsn, **env})
    return result


def _add(dsn, *extra):
    return voiplog(
        dsn, "request", "add", "--case", "K-9", "--agency", "State Police", "--officer", "Meier",
        "--rank", "KHK", "--legal-basis", "s. 100g", "--authorisation", "AG 4 Gs 1/26",
        "--valid-until", "2999-01-01", "--from", WINDOW[0], "--to", WINDOW[1], *extra,
    )  # fmt: skip


def test_a_request_from_registration_to_results(people, store_dsn, tmp_path):  # noqa: F811
    fill(store_dsn, tmp_path)
    requester, approver, auditor = people["requester"], people["approver"], people["auditor"]
    order = tmp_path / "order.pdf"
    order.write_bytes(b"%PDF order")
    result = _add(requester, "--number", "022 1234 5678", "--region", "IN", "--authorisation-doc", str(order))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("request 1: case K-9, awaiting approval")
    assert "value=022 1234 5678" in result.output and "+912212345678" in result.output

    result = voiplog(requester, "request", "approve", "1")
    assert result.exit_code == 1
    assert "approve refused" in result.output and "is not an approver" in result.output
    result = voiplog(requester, "request", "run", "1")
    assert result.exit_code == 1 and "run refused: the request is awaiting_approval" in result.output  # fmt: skip

    result = voiplog(approver, "request", "approve", "1")
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(b"%PDF order").hexdigest() in result.output  # shown before approval
    assert "request 1 approved" in result.output
    listing = voiplog(approver, "request", "list", "--state", "approved")
    assert listing.output.startswith("1\tapproved\tcase K-9")

    result = voiplog(requester, "request", "run", "1", "--count-only")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("request 1: 5 records")
    table = voiplog(requester, "request", "run", "1")
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split()[:3] == ["stored_in", "started_at", "kind"]
    assert TARGET in table.output
    out = tmp_path / "result.jsonl"
    result = voiplog(requester, "request", "run", "1", "--jsonl", str(out))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["call_id"] for r in records} == {"call-1@test", "call-2@test", "call-3@test", "reg-0@test", "reg-1@test"}  # fmt: skip
    assert all(r["started_at" if r["kind"] != "registration" else "requested_at"].endswith("Z") for r in records)  # fmt: skip
    sheet = tmp_path / "result.csv"
    assert voiplog(requester, "request", "run", "1", "--csv", str(sheet)).exit_code == 0
    rows = list(csv.DictReader(sheet.open()))
    assert len(rows) == 5 and rows[0]["stored_in"] in {"cdr", "registration"}
    show = voiplog(auditor, "request", "show", "1")
    assert "disclosed" in show.output.splitlines()[0]
    assert "approved" in show.output and "vl_approver_" in show.output

    # The auditor sees every step, who did it and where results went; never a record.
    trail = voiplog(auditor, "audit", "list", "--case", "K-9")
    actions = [line.split("\t")[2:4] for line in trail.output.splitlines()]
    assert actions == [
        ["request.add", "ok"], ["request.approve", "denied"], ["request.run", "denied"],
        ["request.approve", "ok"], ["request.count", "ok"], ["request.run", "ok"],
        ["request.run", "ok"], ["request.run", "ok"],
    ]  # fmt: skip
    assert str(out) in trail.output and "call-1@test" not in trail.output
    result = voiplog(auditor, "audit", "verify")
    assert result.exit_code == 0 and "audit trail intact: 8 rows" in result.output
    head = voiplog(auditor, "audit", "checkpoint").output.split("\t")[0]
    assert head.startswith("8:")
    assert voiplog(auditor, "audit", "verify", "--checkpoint", head).exit_code == 0
    review = voiplog(auditor, "audit", "review", "--sample", "0.25", "--seed", "1")
    assert review.output.startswith("2 of 8 entries drawn for review")
    # A requester cannot read the trail; the refusal is one line, exit 1.
    result = voiplog(requester, "audit", "list")
    assert result.exit_code == 1 and "permission denied for table audit_event" in result.output

    # Cancelled: runs refused from then on.
    assert voiplog(requester, "request", "cancel", "1", "--reason", "case closed").exit_code == 0
    result = voiplog(requester, "request", "run", "1")
    assert result.exit_code == 1 and "cancelled, not approved" in result.output

    # A run by a role that may not run leaves an audit row too.
    result = voiplog(approver, "request", "run", "1")
    assert result.exit_code == 1 and "refused by the database" in result.output
    assert query(store_dsn, "SELECT action, event->>'outcome' FROM audit_event ORDER BY seq DESC LIMIT 1") == [("request.run", "denied")]  # fmt: skip


def test_request_files_and_usage_errors(people, store_dsn, tmp_path):  # noqa: F811
    requester = people["requester"]
    request = tmp_path / "request.toml"
    (tmp_path / "order.pdf").write_bytes(b"order")
    request.write_text(
        f"""
case = "K-10"
agency = "Police"
legal_basis = "s. 100g"
region = "DE"
[officer]
name = "Meier"
[authorisation]
reference = "AZ 10"
document = "order.pdf"
valid_until = "2999-01-01T00:00:00Z"
[window]
from = "{DAYS[0].isoformat()}"
to = "{DAYS[2].isoformat()}"
[[selectors]]
type = "number"
value = "030 111 222"
role = "caller"
"""
    )
    result = voiplog(requester, "request", "add", "--file", str(request), "--subscriber", "sub-1")
    assert result.exit_code == 0, result.output
    assert query(
        store_dsn,
        "SELECT authorisation_sha256, selectors->0->>'value', selectors->1->>'type' FROM access_request",
    ) == [(hashlib.sha256(b"order").hexdigest(), "+4930111222", "subscriber")]
    usage = [
        (("--number", "12345"), "has no country code"),
        (("--number", "abc", "--region", "IN"), "not an E.164 number"),
        (("--ip", "10.0.0.0/8"), "only in a request marked broad"),
        (("--ip", "10.0.0.300"), "not an IP address"),
        (("--app", "whatsapp"), "app name alone"),
        (("--port", "5060", "--call-id", "x"), "--port and --at go with --ip"),
        (("--ip", "10.0.0.1", "--at", "2026-01-01T10:00:00"), "has no time zone"),
        ((), "no selector"),
    ]
    for args, message in usage:
        result = _add(requester, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    result = voiplog(requester, "request", "add", "--file", str(request), "--case", "")
    assert result.exit_code == 2 and "missing 'case'" in result.output
    result = voiplog(requester, "request", "show", "42")
    assert result.exit_code == 2 and "no such request" in result.output
    result = voiplog(requester, "request", "run", "1", "--jsonl", "a", "--csv", "b")
    assert result.exit_code == 2
