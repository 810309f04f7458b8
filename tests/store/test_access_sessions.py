"""A lawful-access run returns the linked legs of a matched call (one session) with it.

Leg A (the target's line to an SBC) and leg B (the SBC to the far end) have
different Call-IDs and numbers the selector does not name on leg B; a decoy
call at the same time is not linked. Leg C was written before its session was
known (its `session_link` is null): a match on leg D, linked to it, brings it.
"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.store._records import call
from tests.store.conftest import query
from tests.store.test_access_run import Officer
from tests.store.test_access_schema import people  # noqa: F401  (fixture)
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres

TODAY = dt.datetime.now(dt.UTC).date()
DAY = (TODAY - dt.timedelta(days=2)).isoformat()
WINDOW = (f"{DAY}T00:00:00Z", f"{(TODAY + dt.timedelta(days=1)).isoformat()}T00:00:00Z")


def _session(record, session_uid: str, link: str | None):
    return record.__class__(
        **{
            **{name: getattr(record, name) for name in record.__slots__},
            "extra": {"session_uid": session_uid, "session_link": link},
        }
    )


@pytest.fixture
def officers(people):  # noqa: F811
    made = {person: Officer(dsn, person) for person, dsn in people.items()}
    yield made
    for officer in made.values():
        officer.close()


def _fill(dsn: str, tmp_path) -> dict[str, str]:
    leg_a = call(f"{DAY}T10:00:00Z", 1, caller="+912212345678", callee="+919900000001")
    leg_b = call(
        f"{DAY}T10:00:00Z",
        2,
        caller="sbc-trunk",
        callee="+919900000001",
        caller_ip="192.0.2.1",
        subscriber_id=None,
    )
    decoy = call(f"{DAY}T10:00:00Z", 3, caller="+914400000000", callee="+919900000001")
    leg_c = call(f"{DAY}T12:00:00Z", 4, caller="+915500000000", callee="+919900000002")
    leg_d = call(
        f"{DAY}T12:00:20Z",
        5,
        caller="+912212345678",
        callee="+919900000002",
        caller_ip="192.0.2.1",
    )
    records = [
        _session(leg_a, leg_a.uid, "x-cid"),
        _session(leg_b, leg_a.uid, "x-cid"),
        _session(decoy, decoy.uid, None),
        _session(leg_c, leg_c.uid, None),  # written before leg D linked to it
        _session(leg_d, leg_c.uid, "x-cid"),
    ]
    writer = StoreWriter(dsn, Spool(tmp_path / "spool", fsync="never"), today=lambda: TODAY)
    with writer:
        for record in records:
            writer.put(record)
    assert writer.records_rejected == 0
    return {r.call_id: r.uid for r in records}


def _ask(officers, selectors: list[dict]) -> set[str]:
    request_id = officers["requester"].add(selectors, window=WINDOW)
    assert officers["approver"].decide(request_id, "approve") is None
    result = officers["requester"].run(request_id)
    assert result.ok, result.reason
    assert result.status["records"] == len(result.records)
    return {record["call_id"] for record in result.records}


def test_a_matched_leg_brings_the_other_legs_of_its_session(officers, store_dsn, tmp_path):
    _fill(store_dsn, tmp_path)
    query(store_dsn, "SELECT voiplog_index_closed_days(%s)", (TODAY,))
    by_ip = _ask(officers, [{"type": "ip", "value": "100.64.0.10"}])
    # The target's line: legs A, C and the decoy; legs B and D come as linked legs
    # (leg D names leg C's uid as its session, though leg C was written unlinked).
    assert by_ip == {"call-1@test", "call-2@test", "call-3@test", "call-4@test", "call-5@test"}
    # Leg B matched (the far end's number): leg A comes with it, not the decoy.
    assert _ask(officers, [{"type": "ip", "value": "192.0.2.1"}]) == {
        "call-1@test",
        "call-2@test",
        "call-4@test",
        "call-5@test",
    }
    # Leg D matched: leg C, named by D's session uid, comes with it.
    assert _ask(officers, [{"type": "call_id", "value": "call-5@test"}]) == {
        "call-4@test",
        "call-5@test",
    }
    assert _ask(officers, [{"type": "call_id", "value": "call-3@test"}]) == {"call-3@test"}


def test_the_session_index_holds_only_linked_legs(officers, store_dsn, tmp_path):
    uids = _fill(store_dsn, tmp_path)
    rows = query(
        store_dsn,
        "SELECT uid FROM cdr WHERE (extra->>'session_link') IS NOT NULL "
        "AND (extra->>'session_uid') = %s ORDER BY uid",
        (uids["call-1@test"],),
    )
    assert {uid for (uid,) in rows} == {uids["call-1@test"], uids["call-2@test"]}
    plan = "\n".join(
        line
        for (line,) in query(
            store_dsn,
            "SET enable_seqscan = off; "
            "EXPLAIN SELECT uid FROM cdr WHERE (extra->>'session_link') IS NOT NULL "
            "AND (extra->>'session_uid') = 'x'",
        )
    )
    # Every day partition has the partial index (a few rows are not worth it here).
    assert "Seq Scan" not in plan
    assert "Index Cond: ((extra ->> 'session_uid'::text) = 'x'::text)" in plan


def test_the_run_looks_the_linked_legs_up_through_the_session_index(officers, store_dsn, tmp_path):
    """Planned as a loop over the matched calls, the lookup of their linked legs uses the
    partial index (migration 0013: the call's uid has collation "C", the index not), not
    a range of every partition's primary key per call."""
    import psycopg2

    from voiplog.store import access

    _fill(store_dsn, tmp_path)
    query(store_dsn, "SELECT voiplog_index_closed_days(%s)", (TODAY,))
    request_id = officers["requester"].add([{"type": "ip", "value": "192.0.2.1"}], window=WINDOW)
    assert officers["approver"].decide(request_id, "approve") is None
    connection = psycopg2.connect(store_dsn)
    try:
        with connection.cursor() as cursor:
            # The run's plans, nested statements included, come back as notices.
            for setting in (
                "LOAD 'auto_explain'",
                "SET auto_explain.log_min_duration = 0",
                "SET auto_explain.log_nested_statements = on",
                "SET auto_explain.log_level = 'notice'",
                "SET client_min_messages = 'notice'",
                "SET enable_hashjoin = off",
                "SET enable_mergejoin = off",
            ):
                cursor.execute(setting)
        result = access.run(connection, request_id, "tester", "test-host")
        plans = "".join(connection.notices)
    finally:
        connection.close()
    assert result.ok and {r["call_id"] for r in result.records} == {
        "call-1@test", "call-2@test", "call-4@test", "call-5@test",
    }  # fmt: skip
    lookup = {line.strip() for line in plans.splitlines() if "'session_uid'::text) = " in line}
    assert "Index Cond: ((extra ->> 'session_uid'::text) = (s.sid)::text)" in lookup, lookup
