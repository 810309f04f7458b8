"""Migration 0005 and the rules Postgres itself enforces for lawful access.

The fixtures here (login roles for a requester, a second requester, an
approver, an auditor and an admin) are shared with the other access tests.
"""

from __future__ import annotations

import json
import uuid
from importlib import resources

import psycopg2
import pytest

from tests.store.conftest import _admin, query
from voiplog.store import migrate
from voiplog.store.database import make_engine

pytestmark = pytest.mark.postgres

PEOPLE = ("requester", "requester2", "approver", "auditor", "admin")
GROUP = {
    "requester": "voiplog_requester",
    "requester2": "voiplog_requester",
    "approver": "voiplog_approver",
    "auditor": "voiplog_auditor",
    "admin": "voiplog_admin",
}
RECORD_TABLES = ("cdr", "cdr_default", "registration", "registration_default", "held_record",
                 "legal_hold", "purge_log", "lease", "cgnat_block")  # fmt: skip


def as_role(dsn: str, user: str) -> str:
    params = psycopg2.extensions.parse_dsn(dsn)
    params["user"] = user
    return " ".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def people(store_dsn):
    """DSNs of login roles, one per person, in the voiplog group roles (roles.sql applied)."""
    script = resources.files("voiplog.store").joinpath("sql/roles.sql").read_text()
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        cursor.execute(script)
    connection.close()
    suffix = uuid.uuid4().hex[:8]
    logins = {person: f"vl_{person}_{suffix}" for person in PEOPLE}
    for person, login in logins.items():
        query(store_dsn, f"CREATE ROLE {login} LOGIN IN ROLE {GROUP[person]}")
    yield {person: as_role(store_dsn, login) for person, login in logins.items()}
    drop_logins(store_dsn, logins.values())


def drop_logins(store_dsn: str, logins) -> None:
    """End the sessions of test logins, drop what they own, and drop them."""
    logins = list(logins)
    admin = _admin()
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)",
            (logins,),
        )
    with psycopg2.connect(store_dsn) as connection, connection.cursor() as cursor:
        for login in logins:
            cursor.execute(f"DROP OWNED BY {login}")
    connection.close()
    with admin.cursor() as cursor:
        for login in logins:
            cursor.execute(f"DROP ROLE {login}")
    admin.close()


def run_sql(dsn: str, sql: str, params=()):
    """One statement in its own committed transaction; its rows."""
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


SELECTORS = [{"type": "call_id", "value": "abc@test"}]


def register(dsn: str, **changes) -> int:
    """A request registered directly through the SQL function, as the login of `dsn`."""
    fields = {
        "case_ref": "K-1", "agency": "Police", "officer_name": "Meier", "officer_rank": "KHK",
        "legal_basis": "s. 100g", "authorisation_ref": "AZ 1", "authorisation_sha256": None,
        "valid_from": "-infinity", "valid_until": "infinity", "window_from": "2026-03-01",
        "window_to": "2026-03-02", "selectors_entered": json.dumps(SELECTORS),
        "selectors": json.dumps(SELECTORS), "broad": False, "max_records": None,
        "delivery": None, "os_user": "tester", "client_host": "test-host",
    } | changes  # fmt: skip
    placeholders = ", ".join(f"%({k})s" for k in fields)
    ((request_id,),) = run_sql(dsn, f"SELECT voiplog_request_register({placeholders})", fields)
    return request_id


def test_up_and_down_keep_the_records(scratch_dsn):
    engine = make_engine(scratch_dsn)
    migrate.upgrade(engine, "0004")
    query(scratch_dsn, "SELECT voiplog_ensure_day_partitions('2026-03-01')")
    query(
        scratch_dsn,
        "INSERT INTO cdr (uid, started_at, kind, transport, duration_s, disposition, version, request_uri) "
        "VALUES ('u1', '2026-03-01T10:00:00Z', 'sip', 'udp', 0, 'answered', 1, 'sip:+4930111@x')",
    )
    query(scratch_dsn, "SELECT voiplog_index_closed_days('2026-03-02')")
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert query(scratch_dsn, "SELECT to_regclass('cdr_p20260301_uri_user_idx') IS NOT NULL") == [(True,)]  # fmt: skip
    register(scratch_dsn)
    assert query(scratch_dsn, "SELECT count(*) FROM audit_event") == [(1,)]

    migrate.downgrade(engine, "0004")
    assert query(scratch_dsn, "SELECT to_regclass('access_request'), to_regclass('audit_event'), to_regclass('cdr_p20260301_uri_user_idx')") == [(None, None, None)]  # fmt: skip
    assert query(scratch_dsn, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'voiplog_%%'") == [(2,)]  # fmt: skip
    assert query(scratch_dsn, "SELECT uid FROM cdr") == [("u1",)]
    # Holds and purges are no longer audited: the triggers went with the table.
    query(scratch_dsn, "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) VALUES ('K', 'ip', '10.0.0.1', '2026-01-01', '2026-02-01', 't')")  # fmt: skip
    migrate.upgrade(engine)
    assert query(scratch_dsn, "SELECT count(*) FROM audit_event") == [(0,)]
    engine.dispose()


def test_the_audit_trail_refuses_update_delete_truncate_for_everyone(people, store_dsn):
    register(people["requester"])
    statements = ("UPDATE audit_event SET event = '{}'", "DELETE FROM audit_event", "TRUNCATE audit_event")  # fmt: skip
    # The admin may not even try (no privilege, no ownership)...
    for statement in (*statements, "INSERT INTO audit_event (seq, at, event, prev_hash, hash) VALUES (99, now(), '{}', '', '')"):  # fmt: skip
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            run_sql(people["admin"], statement)
    # ...and the triggers refuse the superuser, who has every privilege.
    for statement in statements:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege, match="append-only"):
            run_sql(store_dsn, statement)
    # The admin does not own the trail, so it cannot switch the triggers off either.
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        run_sql(people["admin"], "ALTER TABLE audit_event DISABLE TRIGGER USER")
    assert query(store_dsn, "SELECT count(*) FROM audit_event") == [(1,)]


def test_the_database_refuses_an_approval_by_the_registrar(people, store_dsn):
    request_id = register(people["requester"])
    # Through the function: refused with a reason, and the attempt audited.
    # Even one who is both requester and approver.
    query(store_dsn, f"GRANT voiplog_approver TO {psycopg2.extensions.parse_dsn(people['requester'])['user']}")  # fmt: skip
    ((refusal,),) = run_sql(
        people["requester"],
        "SELECT voiplog_request_decide(%s, 'approve', NULL, false, 't', 'h')",
        (request_id,),
    )
    assert refusal.startswith("registered by vl_requester_") and "cannot also approve" in refusal
    # Around the function, as the table's owner: the CHECK constraint refuses it.
    registrar = query(store_dsn, "SELECT registered_by FROM access_request")[0][0]
    with pytest.raises(psycopg2.errors.CheckViolation, match="second_person"):
        run_sql(
            people["admin"],
            "UPDATE access_request SET state = 'approved', approved_by = %s, approved_at = now()",
            (registrar,),
        )
    assert query(store_dsn, "SELECT state FROM access_request") == [("awaiting_approval",)]
    assert query(store_dsn, "SELECT action, event->>'outcome' FROM audit_event ORDER BY seq") == [
        ("request.add", "ok"),
        ("request.approve", "denied"),
    ]
    # What was registered cannot be changed, not even by the owner.
    with pytest.raises(psycopg2.errors.CheckViolation, match="cannot be changed"):
        run_sql(people["admin"], "UPDATE access_request SET window_to = '2027-01-01'")
    with pytest.raises(psycopg2.Error, match="append-only"):
        run_sql(people["admin"], "DELETE FROM access_request")


def test_only_the_admin_reads_record_tables(people, store_dsn):
    query(store_dsn, "SELECT voiplog_ensure_day_partitions('2026-03-01')")
    tables = (*RECORD_TABLES, "cdr_p20260301", "registration_p20260301")
    for person in ("requester", "approver", "auditor"):
        for table in tables:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                run_sql(people[person], f"SELECT * FROM {table} LIMIT 1")
    for table in tables:
        run_sql(people["admin"], f"SELECT * FROM {table} LIMIT 1")
    # The requester reads requests but not the trail; the auditor reads both.
    run_sql(people["requester"], "SELECT * FROM access_request")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        run_sql(people["requester"], "SELECT * FROM audit_event")
    run_sql(people["auditor"], "SELECT * FROM audit_event")
    # Only approvers decide, only requesters register and run.
    request_id = register(people["requester"])
    ((refusal,),) = run_sql(
        people["requester2"],
        "SELECT voiplog_request_decide(%s, 'approve', NULL, false, 't', 'h')",
        (request_id,),
    )
    assert "is not an approver" in refusal
    for person in ("approver", "auditor"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            register(people[person])
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            run_sql(
                people[person],
                "SELECT * FROM voiplog_request_run(%s, true, 't', 'h', NULL, NULL, NULL, NULL)",
                (request_id,),
            )


def test_a_selector_the_search_cannot_use_is_refused_at_registration(store_dsn):
    for selector in (
        {"type": "ip", "value": "not-an-address"},
        {"type": "ip", "value": "10.0.0.1", "port": "5060; DROP TABLE cdr"},
        {"type": "ip", "value": "10.0.0.1", "at": "yesterday-ish"},
        {"type": "telepathy", "value": "x"},
    ):
        with pytest.raises(psycopg2.Error):
            register(store_dsn, selectors=json.dumps([selector]))
    assert query(store_dsn, "SELECT count(*) FROM access_request") == [(0,)]
    assert query(store_dsn, "SELECT to_regclass('cdr') IS NOT NULL") == [(True,)]
