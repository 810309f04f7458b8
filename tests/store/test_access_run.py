"""Lawful-access requests end to end on a real Postgres: life cycle, selectors, audit.

Records span three closed day partitions (indexed as the writer leaves them)
and are searched by every selector kind among decoys; after a purge, the
same questions are answered from held records.
"""

from __future__ import annotations

import datetime as dt
import time

import psycopg2
import pytest

from tests.store._records import call, registration
from tests.store.conftest import query
from tests.store.test_access_schema import people  # noqa: F401  (fixture)
from voiplog.store import access, purge
from voiplog.store import audit as trail
from voiplog.store.database import connect, make_engine
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.datetime.now(dt.UTC).date()
DAYS = [TODAY - dt.timedelta(days=k) for k in (5, 4, 3)]
TARGET = "+912212345678"


def at(day: int, clock: str) -> str:
    return f"{DAYS[day].isoformat()}T{clock}:00Z"


WINDOW = (at(0, "00:00"), f"{(DAYS[2] + dt.timedelta(days=1)).isoformat()}T00:00:00Z")


def _app(name: str) -> dict:
    return {
        "app": {"name": name, "confidence": 0.9, "basis": "ndpi"},
        "app_flows": [
            {"src_ip": "100.64.0.99", "src_port": 50000, "dst_ip": "157.240.1.1", "dst_port": 3478}
        ],
    }


def _subscriber(name: str) -> dict:
    return {"id": f"sub-{name}", "account": f"acc-{name}", "access_line": f"line-{name}", "pop": "t", "location": {"site": name}}  # fmt: skip


CALLS = [
    # number: as caller, as callee in national form, in the Request-URI only
    dict(n=1, start=at(0, "10:00"), caller=TARGET),
    dict(n=2, start=at(1, "11:00"), callee="02212345678"),
    dict(
        n=3,
        start=at(2, "09:00"),
        callee="+919999999999",
        request_uri="sip:00912212345678@example.net;user=phone",
    ),
    dict(n=4, start=at(0, "12:00"), caller="+912212345679"),
    dict(n=5, start=at(1, "12:00"), callee="2212345670"),
    dict(n=6, start=at(2, "12:00")),
    # addresses
    dict(n=7, start=at(0, "14:00"), caller_ip="198.51.100.77"),
    dict(n=8, start=at(0, "14:05"), caller_ip="198.51.100.78"),
    dict(n=9, start=at(1, "14:00"), caller_ip="2001:db8::77"),
    dict(n=10, start=at(1, "14:05"), caller_ip="2001:db8::78"),
    # a shared CGNAT address: the port and the time tell subscribers apart
    dict(n=11, start=at(2, "14:00"), caller_ip="203.0.113.45", caller_port=40312),
    dict(n=12, start=at(2, "14:00"), caller_ip="203.0.113.45", caller_port=40313),
    dict(n=13, start=at(2, "10:00"), caller_ip="203.0.113.45", caller_port=40312),
    # subscriber, account, access line; Call-ID
    dict(n=14, start=at(1, "16:00"), subscriber=_subscriber("target")),
    dict(n=15, start=at(2, "16:00"), call_id="target-call@example.net"),
    # app calls
    dict(
        n=16,
        start=at(0, "18:00"),
        kind="encrypted",
        disposition="app_call",
        subscriber=_subscriber("app"),
        extra=_app("whatsapp"),
    ),
    dict(
        n=17,
        start=at(0, "18:05"),
        kind="encrypted",
        disposition="app_call",
        subscriber=_subscriber("app"),
        extra=_app("telegram"),
    ),
    dict(
        n=18,
        start=at(0, "18:10"),
        kind="encrypted",
        disposition="app_call",
        subscriber=_subscriber("other"),
        extra=_app("whatsapp"),
    ),
]
REGISTRATIONS = [
    dict(
        n=0, start=f"{(DAYS[0] - dt.timedelta(days=1)).isoformat()}T23:00:00Z", user="912212345678"
    ),
    dict(n=1, start=at(0, "09:00"), user=TARGET),
    dict(n=2, start=at(1, "09:00"), user="+912212345679"),
]


def _call_id(n: int) -> str:
    return f"call-{n}@test"


def fill(dsn: str, tmp_path) -> None:
    writer = StoreWriter(dsn, Spool(tmp_path / "spool", fsync="never"), today=lambda: TODAY)
    with writer:
        for spec in CALLS:
            spec = dict(spec)
            n, start = spec.pop("n"), spec.pop("start")
            if "call_id" not in spec:
                spec["call_id"] = _call_id(n)
            writer.put(call(start, n, **spec))
        for spec in REGISTRATIONS:
            writer.put_dict(registration(spec["start"], spec["n"], user=spec["user"]))
    assert writer.records_rejected == 0
    query(dsn, "SELECT voiplog_index_uri_users(%s)", (TODAY,))
    query(
        dsn,
        "INSERT INTO cgnat_block (public_ip, port, private_ip, valid, source) VALUES "
        "('203.0.113.45', '[40000,41000)', '100.64.7.1', tstzrange(now() - interval '30 days', NULL), 't')",
    )


class Officer:
    """One person's connection, calling the access functions as the CLI does."""

    def __init__(self, dsn: str, name: str) -> None:
        self.connection = connect(dsn)
        self.name = name

    def add(self, selectors: list[dict], window=WINDOW, broad=False, region="IN", **fields) -> int:
        spec = access.build_spec(
            {
                "case": "K-7",
                "agency": "Police",
                "officer.name": "Meier",
                "legal_basis": "s. 100g",
                "authorisation.reference": "AZ 7",
                "authorisation.valid_until": "2999-01-01",
                "window.from": window[0],
                "window.to": window[1],
                "selectors": selectors,
                "broad": broad,
                "region": region,
            }
            | fields
        )
        request_id = access.register(self.connection, spec, self.name, "test-host")
        self.connection.commit()
        return request_id

    def decide(self, request_id: int, decision: str, **kwargs) -> str | None:
        refusal = access.decide(self.connection, request_id, decision, self.name, "test-host", **kwargs)  # fmt: skip
        self.connection.commit()
        return refusal

    def run(self, request_id: int, **kwargs) -> access.RunResult:
        result = access.run(self.connection, request_id, self.name, "test-host", retention_days=180, **kwargs)  # fmt: skip
        self.connection.commit()
        return result

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def officers(people):  # noqa: F811
    made = {person: Officer(dsn, person) for person, dsn in people.items()}
    yield made
    for officer in made.values():
        officer.close()


def ask(officers, selectors: list[dict], **kwargs) -> set[str]:
    """Call-IDs (registrations as reg:<call_id>) that a request with `selectors` returns."""
    request_id = officers["requester"].add(selectors, **kwargs)
    assert officers["approver"].decide(request_id, "approve", broad_seen=kwargs.get("broad", False)) is None  # fmt: skip
    result = officers["requester"].run(request_id)
    assert result.ok, result.reason
    found = set()
    for record in result.records:
        prefix = "reg:" if record["kind"] == "registration" else ""
        found.add(prefix + record["call_id"] + ("" if record["stored_in"] != "held_record" else " (held)"))  # fmt: skip
    return found


def _audit_count(dsn) -> int:
    return query(dsn, "SELECT count(*) FROM audit_event")[0][0]


def test_every_selector_finds_exactly_its_records_among_decoys(officers, store_dsn, tmp_path):
    fill(store_dsn, tmp_path)
    number = {"type": "number", "value": "022 1234 5678"}
    assert ask(officers, [number | {"role": "any"}]) == {
        _call_id(1), _call_id(2), _call_id(3), "reg:reg-0@test", "reg:reg-1@test",
    }  # fmt: skip
    assert ask(officers, [number | {"role": "caller"}]) == {_call_id(1), "reg:reg-0@test", "reg:reg-1@test"}  # fmt: skip
    assert ask(officers, [number | {"role": "callee"}]) == {_call_id(2), _call_id(3), "reg:reg-0@test", "reg:reg-1@test"}  # fmt: skip
    # The other spellings of one number find the same.
    for spelling in ("+91 22 1234 5678", "00912212345678", "02212345678"):
        assert _call_id(2) in ask(officers, [{"type": "number", "value": spelling}])
    assert ask(officers, [{"type": "ip", "value": "198.51.100.77"}]) == {_call_id(7)}
    assert ask(officers, [{"type": "ip", "value": "2001:db8:0::77"}]) == {_call_id(9)}
    assert ask(officers, [{"type": "ip", "value": "203.0.113.45", "port": 40312, "at": at(2, "14:00").replace(":00Z", ":30Z")}]) == {_call_id(11)}  # fmt: skip
    assert ask(officers, [{"type": "ip", "value": "198.51.100.76/31"}], broad=True) == {_call_id(7)}  # fmt: skip
    assert ask(officers, [{"type": "subscriber", "value": "sub-target"}]) == {_call_id(14)}
    assert ask(officers, [{"type": "account", "value": "acc-target"}]) == {_call_id(14)}
    assert ask(officers, [{"type": "access_line", "value": "line-target"}]) == {_call_id(14)}
    assert ask(officers, [{"type": "call_id", "value": "target-call@example.net"}]) == {"target-call@example.net"}  # fmt: skip
    assert ask(officers, [{"type": "app", "value": "WhatsApp"}, {"type": "subscriber", "value": "sub-app"}]) == {_call_id(16)}  # fmt: skip
    assert ask(officers, [{"type": "app", "value": "whatsapp"}], broad=True) == {_call_id(16), _call_id(18)}  # fmt: skip
    # The records come back as the contract has them.
    request_id = officers["requester"].add([{"type": "subscriber", "value": "sub-target"}])
    officers["approver"].decide(request_id, "approve")
    (record,) = officers["requester"].run(request_id).records
    assert record["started_at"] == f"{DAYS[1].isoformat()}T16:00:00.014000Z"
    assert record["subscriber"]["location"] == {"site": "target"}
    assert record["media"][0]["first_at"].endswith("Z") and record["media"][0]["ssrc"] == 0xDEADBEEF


def test_shared_addresses_and_prefixes_need_port_time_or_a_broad_request(officers, store_dsn, tmp_path):  # fmt: skip
    fill(store_dsn, tmp_path)
    with pytest.raises(psycopg2.errors.InvalidParameterValue, match="shared \\(CGNAT\\) address"):
        officers["requester"].add([{"type": "ip", "value": "203.0.113.45"}])
    officers["requester"].connection.rollback()
    with pytest.raises(access.RequestError, match="only in a request marked broad"):
        officers["requester"].add([{"type": "ip", "value": "10.0.0.0/8"}])
    with pytest.raises(access.RequestError, match="app name alone"):
        officers["requester"].add([{"type": "app", "value": "zoom"}])
    request_id = officers["requester"].add([{"type": "ip", "value": "203.0.113.45"}], broad=True)
    refusal = officers["approver"].decide(request_id, "approve")
    assert "must be approved as broad" in refusal
    assert officers["approver"].decide(request_id, "approve", broad_seen=True) is None
    assert officers["requester"].run(request_id, count_only=True).status["records"] == 3


def test_held_records_are_found_after_a_purge(officers, store_dsn, tmp_path):
    fill(store_dsn, tmp_path)
    window = (at(0, "00:00"), at(1, "00:00"))
    query(
        store_dsn,
        "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) VALUES "
        "('K-7', 'number', %s, %s, %s, 't'), ('K-7', 'subscriber', 'sub-app', %s, %s, 't'), "
        "('K-7', 'ip', '198.51.100.77', %s, %s, 't')",
        (TARGET, *window, *window, *window),
    )
    engine = make_engine(store_dsn)
    cutoff = dt.datetime.combine(DAYS[1], dt.time(), tzinfo=dt.UTC)
    done = purge.execute(engine, purge.make_plan(engine, cutoff), "tester")
    engine.dispose()
    assert done.to_hold == 5  # calls 1, 7, 16, 17 and registration 1
    assert query(store_dsn, "SELECT count(*) FROM cdr WHERE started_at < %s", (cutoff,)) == [(0,)]  # fmt: skip
    number = {"type": "number", "value": "02212345678"}
    assert ask(officers, [number]) == {
        _call_id(1) + " (held)", "reg:reg-1@test (held)", _call_id(2), _call_id(3),
    }  # fmt: skip
    assert ask(officers, [{"type": "ip", "value": "198.51.100.77"}]) == {_call_id(7) + " (held)"}
    assert ask(officers, [{"type": "app", "value": "whatsapp"}, {"type": "subscriber", "value": "sub-app"}]) == {_call_id(16) + " (held)"}  # fmt: skip
    # The hold and the purge are in the audit trail too.
    actions = [a for (a,) in query(store_dsn, "SELECT action FROM audit_event WHERE action NOT LIKE 'request.%%' ORDER BY seq")]  # fmt: skip
    # The held copies the purge took are audited by their hashes, before the purge row.
    held = [a for a in actions if a == "held_record.insert"]
    assert held and actions == ["hold.add", "hold.add", "hold.add", *held, "purge"]


def test_the_life_cycle_with_one_audit_row_per_action(officers, store_dsn, tmp_path):
    fill(store_dsn, tmp_path)
    requester, approver = officers["requester"], officers["approver"]
    steps = []

    def step(expected_action, outcome, thunk):
        before = _audit_count(store_dsn)
        value = thunk()
        rows = query(store_dsn, "SELECT action, event->>'outcome' FROM audit_event WHERE seq > %s", (before,))  # fmt: skip
        assert rows == [(expected_action, outcome)], (expected_action, rows)
        steps.append(expected_action)
        return value

    # The registrar may be an approver too; still not of their own request.
    query(store_dsn, f"GRANT voiplog_approver TO {requester.connection.info.user}")
    selectors = [{"type": "number", "value": TARGET}]
    request_id = step("request.add", "ok", lambda: requester.add(selectors, max_records=2))
    assert query(store_dsn, "SELECT state FROM access_request WHERE id = %s", (request_id,)) == [("awaiting_approval",)]  # fmt: skip
    assert not step("request.run", "denied", lambda: requester.run(request_id)).ok
    assert "cannot also approve" in step("request.approve", "denied", lambda: requester.decide(request_id, "approve"))  # fmt: skip
    assert step("request.approve", "ok", lambda: approver.decide(request_id, "approve")) is None
    counted = step("request.count", "ok", lambda: requester.run(request_id, count_only=True))
    assert counted.status["records"] == 5 and counted.records == []
    ran = step("request.run", "ok", lambda: requester.run(request_id))
    assert len(ran.records) == 2 and ran.status["truncated"] is True  # cut at max_records
    assert ran.status["state"] == "disclosed"
    outside = (at(0, "00:00").replace(DAYS[0].isoformat(), (DAYS[0] - dt.timedelta(days=1)).isoformat()), None)  # fmt: skip
    refused = step("request.run", "denied", lambda: requester.run(request_id, narrow_from=access.parse_moment(outside[0], "from")))  # fmt: skip
    assert "outside the approved window" in refused.reason
    narrowed = step("request.run", "ok", lambda: requester.run(request_id, narrow_from=access.parse_moment(at(2, "00:00"), "from")))  # fmt: skip
    assert [r["call_id"] for r in narrowed.records] == [_call_id(3)]
    assert step("request.cancel", "ok", lambda: requester.decide(request_id, "cancel", reason="case closed")) is None  # fmt: skip
    assert "cancelled, not approved" in step("request.run", "denied", lambda: requester.run(request_id)).reason  # fmt: skip

    # Rejected: with a reason, and never approvable afterwards.
    other = step("request.add", "ok", lambda: requester.add(selectors))
    assert step("request.reject", "ok", lambda: approver.decide(other, "reject", reason="no order attached")) is None  # fmt: skip
    assert "rejected, not awaiting" in step("request.approve", "denied", lambda: approver.decide(other, "approve"))  # fmt: skip
    assert query(store_dsn, "SELECT state, close_reason FROM access_request WHERE id = %s", (other,)) == [("rejected", "no order attached")]  # fmt: skip

    # Expired: the authorisation runs out between approval and run.
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    brief = step("request.add", "ok", lambda: requester.add(selectors, **{"authorisation.valid_until": until}))  # fmt: skip
    step("request.approve", "ok", lambda: approver.decide(brief, "approve"))
    time.sleep(2.2)
    expired = step("request.run", "denied", lambda: requester.run(brief))
    assert "expired" in expired.reason and expired.status["state"] == "expired"

    # A run refused by Postgres itself (no privilege) is reported and audited.
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        approver.run(request_id)
    approver.connection.rollback()
    step("request.run", "denied", lambda: (access.report_denied(approver.connection, "request.run", request_id, "permission denied", "approver", "h"), approver.connection.commit()))  # fmt: skip

    # Every row names the request, case, role and OS user; none holds record data.
    for (event,) in query(store_dsn, "SELECT event FROM audit_event WHERE action LIKE 'request.%%'"):  # fmt: skip
        assert event["request_id"] and event["case_ref"] == "K-7" and event["db_role"].startswith("vl_")  # fmt: skip
        assert "caller" not in str(event) or "role" in str(event)  # selectors may say role caller
        assert _call_id(1) not in str(event)
    verdict = trail.verify(officers["auditor"].connection)
    assert verdict.ok, verdict.message


def test_a_row_altered_by_a_superuser_is_named_by_verify(officers, store_dsn):
    requester, approver = officers["requester"], officers["approver"]
    request_id = requester.add([{"type": "call_id", "value": "x@y"}])
    approver.decide(request_id, "approve")
    requester.run(request_id)
    head, _ = trail.checkpoint(officers["auditor"].connection)
    assert head.seq == 3 and trail.verify(officers["auditor"].connection, head).ok
    # A superuser can switch the triggers off for a session; the chain still tells.
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE audit_event SET event = jsonb_set(event, '{os_user}', '\"someone-else\"') WHERE seq = 3")  # fmt: skip
    connection.close()
    verdict = trail.verify(officers["auditor"].connection)
    assert not verdict.ok and verdict.first_bad == 3
    assert verdict.message.startswith("audit row 3 ") and "altered" in verdict.message
    # A row removed, and the rest rewritten to hide it: the checkpoint tells.
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("DELETE FROM audit_event WHERE seq = 2")
    connection.close()
    assert "audit row 2 is missing" in trail.verify(officers["auditor"].connection).message
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("DELETE FROM audit_event WHERE seq = 3")
    connection.close()
    assert trail.verify(officers["auditor"].connection).ok  # a cut chain looks whole...
    verdict = trail.verify(officers["auditor"].connection, head)
    assert not verdict.ok and "before checkpoint 3" in verdict.message  # ...but not to a checkpoint


def test_pruning_keeps_the_chain_verifiable_from_a_checkpoint(officers, store_dsn):
    requester = officers["requester"]
    for _ in range(3):
        requester.add([{"type": "call_id", "value": "x@y"}])
    head, _ = trail.checkpoint(officers["auditor"].connection)
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        # The rows are made old (triggers off, as only a superuser can) and
        # rehashed, so that the chain is whole and the rows past retention.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SELECT seq, at, prev_hash, event FROM audit_event ORDER BY seq")
        prev = trail.GENESIS
        for seq, moment, _, event in cursor.fetchall():
            moment -= dt.timedelta(days=400)
            cursor.execute("SELECT voiplog_audit_hash(%s, %s, %s, %s::jsonb)", (seq, moment, prev, psycopg2.extras.Json(event)))  # fmt: skip
            digest = cursor.fetchone()[0]
            cursor.execute("UPDATE audit_event SET at = %s, prev_hash = %s, hash = %s WHERE seq = %s", (moment, prev, digest, seq))  # fmt: skip
            prev = digest
    connection.close()
    head = trail.Checkpoint(head.seq, prev)
    assert trail.verify(officers["auditor"].connection, head).ok
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    # As the admin runs it: `audit prune`, keeping store.audit_retention_days (365).
    pruned = CliRunner().invoke(
        cli, ["audit", "prune"], env={"VOIPLOG_DATABASE_URL": officers["admin"].connection.dsn}
    )
    assert pruned.exit_code == 0, pruned.output
    assert pruned.stdout == "2 audit entries older than 365 days removed\n"  # the newest stays
    assert query(store_dsn, "SELECT seq, action FROM audit_event ORDER BY seq") == [(3, "request.add"), (4, "audit.prune")]  # fmt: skip
    assert trail.verify(officers["auditor"].connection, trail.Checkpoint(2, query(store_dsn, "SELECT prev_hash FROM audit_event WHERE seq = 3")[0][0])).ok  # fmt: skip
    assert trail.verify(officers["auditor"].connection, head).ok
