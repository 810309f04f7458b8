"""A tamper-evident store on a real Postgres: kept conflicts, writers bound to their POP,
sealed days that name what changed, and purges that keep the seals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid

import psycopg2
import pytest

from tests.store._records import call
from tests.store.conftest import query
from tests.store.test_access_run import DAYS, TODAY, at, officers  # noqa: F401  (fixture)
from tests.store.test_access_schema import as_role, drop_logins, people  # noqa: F401  (fixture)
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter

pytestmark = pytest.mark.postgres


@pytest.fixture
def writers(people, store_dsn):  # noqa: F811
    """Two writer logins: "ams1" bound to POP ams1 by the admin, "free" bound to none."""
    suffix = uuid.uuid4().hex[:8]
    logins = {"ams1": f"vl_pop_ams1_{suffix}", "free": f"vl_pop_free_{suffix}"}
    for login in logins.values():
        query(store_dsn, f"CREATE ROLE {login} LOGIN IN ROLE voiplog_writer")
    query(people["admin"], "INSERT INTO writer_pop (role, pop) VALUES (%s, 'ams1')", (logins["ams1"],))  # fmt: skip
    yield {name: as_role(store_dsn, login) for name, login in logins.items()} | {"logins": logins}
    drop_logins(store_dsn, logins.values())


def _store(dsn: str, tmp_path, records, pop: str | None = None, today=TODAY) -> StoreWriter:
    spool_dir = tmp_path / f"spool-{uuid.uuid4().hex[:6]}"
    writer = StoreWriter(dsn, Spool(spool_dir, fsync="never"), pop=pop, today=lambda: today)
    with writer:
        for record in records:
            writer.put(record)
    return writer


# -- conflicts ------------------------------------------------------------------


def test_a_forged_row_then_the_real_record_gives_a_conflict_a_warning_and_an_unchanged_original(
    writers,
    officers,  # noqa: F811
    store_dsn,
    tmp_path,
    caplog,
):
    real = call(at(1, "10:00"), 1, caller="+4930555")
    forged = dataclasses.replace(real, callee="+4930999", duration_s=1.0)
    first = _store(writers["free"], tmp_path, [forged])
    assert first.records_conflicting == 0
    stored_before = query(store_dsn, "SELECT to_jsonb(c) FROM cdr c")
    with caplog.at_level(logging.WARNING, logger="voiplog.store"):
        replay = _store(writers["free"], tmp_path, [real, call(at(1, "11:00"), 2)])
    assert replay.records_conflicting == 1
    assert replay.records_rejected == 0
    warned = [r.getMessage() for r in caplog.records if "record_conflict" in r.getMessage()]
    assert len(warned) == 1 and real.uid in warned[0]
    # The stored record is untouched; the newcomer is kept with both hashes.
    assert query(store_dsn, "SELECT to_jsonb(c) FROM cdr c WHERE uid = %s", (real.uid,)) == stored_before  # fmt: skip
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(2,)]
    rows = query(
        store_dsn,
        "SELECT uid, stored_sha256, arrived_sha256, arrived->>'callee', arrived->>'duration_s', "
        "inserted_by FROM record_conflict",
    )
    assert len(rows) == 1
    uid, stored_sha, arrived_sha, callee, duration, inserted_by = rows[0]
    assert uid == real.uid and callee == real.callee and float(duration) == real.duration_s
    assert len(stored_sha) == len(arrived_sha) == 64 and stored_sha != arrived_sha
    assert inserted_by == writers["logins"]["free"]
    # The same content again is idempotent: no new conflict, no warning.
    caplog.clear()
    again = _store(writers["free"], tmp_path, [real, forged])
    assert again.records_conflicting == 0
    assert query(store_dsn, "SELECT count(*) FROM record_conflict") == [(1,)]
    # A lawful-access run shows the conflict next to the record.
    request_id = officers["requester"].add([{"type": "number", "value": "+4930555"}])
    assert officers["approver"].decide(request_id, "approve") is None
    result = officers["requester"].run(request_id)
    assert result.ok, result.reason
    assert [r["uid"] for r in result.records] == [real.uid]
    (conflict,) = result.records[0]["conflicts"]
    assert conflict["arrived"]["callee"] == real.callee
    assert result.records[0]["callee"] == forged.callee
    assert (conflict["stored_sha256"], conflict["arrived_sha256"]) == (stored_sha, arrived_sha)


def test_two_contents_under_one_key_in_one_batch_give_a_conflict(store_dsn, tmp_path):
    real = call(at(1, "10:00"), 1)
    forged = dataclasses.replace(real, callee="+4930999")
    twice = call(at(1, "11:00"), 2)
    writer = _store(store_dsn, tmp_path, [real, forged, twice, twice])
    assert writer.records_conflicting == 1 and writer.records_rejected == 0
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(2,)]
    ((uid, callee),) = query(store_dsn, "SELECT uid, arrived->>'callee' FROM record_conflict")
    (stored,) = query(store_dsn, "SELECT callee FROM cdr WHERE uid = %s", (real.uid,))
    assert uid == real.uid and {callee, stored[0]} == {real.callee, forged.callee}


# -- who wrote it ----------------------------------------------------------------


def test_a_writer_bound_to_pop_a_cannot_insert_for_pop_b(writers, store_dsn, tmp_path):
    mine = _store(writers["ams1"], tmp_path, [call(at(1, "10:00"), 1)], pop="ams1")
    assert mine.records_rejected == 0 and mine.spool.pending_records() == 0
    assert query(store_dsn, "SELECT pop, inserted_by FROM cdr") == [("ams1", writers["logins"]["ams1"])]  # fmt: skip
    # The writer login sealed the day that is over, through the database's functions.
    assert query(store_dsn, "SELECT sealed_by, record_count FROM day_seal WHERE day = %s", (DAYS[1],)) == [(writers["logins"]["ams1"], 1)]  # fmt: skip
    # Records for another POP are refused and stay spooled (not dropped).
    other = StoreWriter(writers["ams1"], Spool(tmp_path / "b", fsync="never"), pop="ams2", today=lambda: TODAY)  # fmt: skip
    other.put(call(at(1, "11:00"), 2))
    assert other.close(drain_timeout_s=3) == 1
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(1,)]
    # A login bound to no POP writes no POP's records.
    unbound = StoreWriter(writers["free"], Spool(tmp_path / "c", fsync="never"), pop="ams1", today=lambda: TODAY)  # fmt: skip
    unbound.put(call(at(1, "12:00"), 3))
    assert unbound.close(drain_timeout_s=3) == 1
    # Nor can a writer name another login or choose when the row was stored.
    day = DAYS[1].isoformat()
    for column, value in (("inserted_by", "someone_else"), ("stored_at", "2000-01-01T00:00:00Z")):
        connection = psycopg2.connect(writers["ams1"])
        with connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute(
                f"INSERT INTO cdr (uid, started_at, kind, transport, duration_s, disposition, "
                f"version, pop, {column}) VALUES ('x', %s, 'sip', 'udp', 0, 'answered', 1, 'ams1', %s)",
                (f"{day}T13:00:00Z", value),
            )
        connection.close()
    connection = psycopg2.connect(writers["ams1"])
    with connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        cursor.execute(
            "INSERT INTO cdr (uid, started_at, kind, transport, duration_s, disposition, version, pop) "
            "VALUES ('y', %s, 'sip', 'udp', 0, 'answered', 1, 'ams2')",
            (f"{day}T13:00:00Z",),
        )
    connection.close()
    # The binding is in the audit trail.
    assert query(store_dsn, "SELECT count(*) FROM audit_event WHERE action = 'writer_pop.insert'") == [(1,)]  # fmt: skip
    assert dt.date.fromisoformat(day) < TODAY


# -- sealed days -----------------------------------------------------------------


def _url(dsn: str) -> str:
    p = psycopg2.extensions.parse_dsn(dsn)
    return f"postgresql://{p.get('user', 'postgres')}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"  # fmt: skip


def _cli(monkeypatch, dsn: str, *args: str):
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    monkeypatch.setenv("VOIPLOG_DATABASE_URL", _url(dsn))
    return CliRunner().invoke(cli, ["store", *args])


def _sealed_store(store_dsn, tmp_path, signer):
    """Calls of two days that are over, stored and sealed by the writer as it closes."""
    records = [call(at(d, f"1{k}:00"), 10 * d + k, caller=f"+49301{d}{k}") for d in (0, 1) for k in range(4)]  # fmt: skip
    spool = Spool(tmp_path / "spool", fsync="never")
    writer = StoreWriter(store_dsn, spool, today=lambda: TODAY, signer=signer)
    with writer:
        for record in records:
            writer.put(record)
    return records


def test_the_writer_seals_the_days_that_are_over_and_verify_names_what_changed(
    store_dsn, tmp_path, signer, monkeypatch
):
    from voiplog.store import seal

    records = _sealed_store(store_dsn, tmp_path, signer)
    seals = query(store_dsn, "SELECT day, version, record_count, signature IS NOT NULL FROM day_seal ORDER BY day")  # fmt: skip
    # Yesterday, whose partition the writer made, is over too: sealed empty.
    yesterday = TODAY - dt.timedelta(days=1)
    assert seals == [(DAYS[0], 1, 4, True), (DAYS[1], 1, 4, True), (yesterday, 1, 0, True)]
    result = _cli(monkeypatch, store_dsn, "verify", "--all")
    assert result.exit_code == 0, result.output
    assert "3 days, 8 records and 3 seal rows checked" in result.output

    # One byte of one record changed by a superuser: the day and the record are named.
    changed = records[1]
    query(store_dsn, "UPDATE cdr SET caller = '+4930X01' WHERE uid = %s", (changed.uid,))
    result = _cli(monkeypatch, store_dsn, "verify", "--day", DAYS[0].isoformat())
    assert result.exit_code == 1
    assert f"{DAYS[0]}: record changed: cdr {changed.uid} " in result.output
    assert f"{DAYS[0]}: records do not match seal version 1" in result.output
    assert DAYS[1].isoformat() not in result.output
    # Its proof is refused: the record no longer hashes to its leaf.
    result = _cli(monkeypatch, store_dsn, "prove", changed.uid)
    assert result.exit_code == 1 and "changed after the day was sealed" in result.output

    # A record deleted, another added behind the writer's back: both named.
    gone = records[5]
    query(store_dsn, "DELETE FROM cdr WHERE uid = %s", (gone.uid,))
    query(
        store_dsn,
        "INSERT INTO cdr SELECT (jsonb_populate_record(NULL::cdr, to_jsonb(c) || "
        "jsonb_build_object('uid', 'added-uid'))).* FROM cdr c WHERE uid = %s",
        (records[4].uid,),
    )
    report = seal.verify(psycopg2.connect(store_dsn))
    lines = {f.line() for f in report.findings}
    assert any(line.startswith(f"{DAYS[1]}: record missing: cdr {gone.uid} ") for line in lines)
    assert any(line.startswith(f"{DAYS[1]}: record added: cdr added-uid ") for line in lines)
    assert any(line.startswith(f"{DAYS[0]}: record changed: cdr {changed.uid} ") for line in lines)

    # A seal row rewritten by a superuser (its triggers switched off) breaks the chain.
    query(
        store_dsn,
        "ALTER TABLE day_seal DISABLE TRIGGER USER; "
        "UPDATE day_seal SET record_count = 3 WHERE day = %s; "
        "ALTER TABLE day_seal ENABLE TRIGGER USER",
        (DAYS[0],),
    )
    report = seal.verify(psycopg2.connect(store_dsn), [DAYS[1].isoformat()])
    lines = {f.line() for f in report.findings}
    (row,) = query(store_dsn, "SELECT id FROM day_seal WHERE day = %s", (DAYS[0],))
    assert f"{DAYS[0]}: seal row {row[0]} (version 1) was altered" in lines
    assert f"{DAYS[0]}: seal version 1: signature: the signature does not match the data and the certificate" in lines  # fmt: skip


def test_a_proof_leads_from_the_record_to_its_signed_seal(store_dsn, tmp_path, signer, monkeypatch):
    import json

    from voiplog.export import signing
    from voiplog.store import seal

    records = _sealed_store(store_dsn, tmp_path, signer)
    result = _cli(monkeypatch, store_dsn, "prove", records[6].uid)
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    assert proof["seal"]["day"] == DAYS[1].isoformat() and proof["seal"]["records"] == 4
    assert seal.check_proof(proof) is None
    assert len(proof["path"]) == 2  # four leaves: two siblings up to the root
    stated = seal.signed_text(proof["seal"]["day"], 1, 4, proof["seal"]["root"])
    assert signing.check(proof["seal"]["certificate"].encode(), stated, bytes.fromhex(proof["seal"]["signature"])) is None  # fmt: skip
    # A proof of another record, or a path bent by one sibling, does not check.
    caller = records[6].caller.encode().hex()
    forged = dict(proof, row=proof["row"].replace(caller, b"+4930999".hex()))
    assert forged["row"] != proof["row"]
    assert seal.check_proof(forged) == "the row does not hash to the proof's leaf"
    # The row reads back as the record, which the proof also shows as JSON.
    row = seal.decode_row(proof)
    assert row["uid"] == records[6].uid and row["caller"] == records[6].caller
    # The leaf covers every column of the record's table.
    columns = query(store_dsn, "SELECT attname FROM pg_attribute WHERE attrelid = 'cdr'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")  # fmt: skip
    assert list(row) == [name for (name,) in columns]
    assert row["subscriber"]["id"] == "sub-1" and row["stored_at"] is not None
    assert row["media"][0]["ssrc"] == 0xDEADBEEF and proof["record"]["caller"] == records[6].caller
    bent = dict(proof, path=[["L", "00" * 32], *proof["path"][1:]])
    assert seal.check_proof(bent) == "the path does not lead to the seal's root"
    result = _cli(monkeypatch, store_dsn, "prove", "no-such-uid")
    assert result.exit_code == 1 and "no stored record has uid no-such-uid" in result.output


def test_a_late_record_reseals_its_day_as_a_new_version(store_dsn, tmp_path, signer):
    from voiplog.store import seal

    _sealed_store(store_dsn, tmp_path, signer)
    late = call(at(0, "23:00"), 77)
    writer = StoreWriter(
        store_dsn, Spool(tmp_path / "late", fsync="never"), today=lambda: TODAY, signer=signer
    )
    with writer:
        writer.put(late)
    seals = query(store_dsn, "SELECT day, version, record_count FROM day_seal WHERE record_count > 0 ORDER BY day, version")  # fmt: skip
    assert seals == [(DAYS[0], 1, 4), (DAYS[0], 2, 5), (DAYS[1], 1, 4)]
    assert query(store_dsn, "SELECT count(*) FROM day_dirty") == [(0,)]
    report = seal.verify(psycopg2.connect(store_dsn))
    assert report.ok, [f.line() for f in report.findings]
    assert (report.days_checked, report.records_checked, report.seals_checked) == (3, 9, 4)
    proof = seal.prove(psycopg2.connect(store_dsn), late.uid)
    assert proof["seal"]["version"] == 2 and seal.check_proof(proof) is None
    # A version sealed again without the key that signed the first is named.
    query(store_dsn, "UPDATE cdr SET callee = '+4930666' WHERE uid = %s", (late.uid,))
    query(store_dsn, "INSERT INTO day_dirty (day) VALUES (%s)", (DAYS[0],))
    assert [s.version for s in seal.seal_closed_days(psycopg2.connect(store_dsn), TODAY)] == [3]
    report = seal.verify(psycopg2.connect(store_dsn))
    assert [f.line() for f in report.findings] == [f"{DAYS[0]}: seal version 3 is not signed, an earlier one was"]  # fmt: skip
    # Sealing again with nothing new adds no version.
    assert seal.seal_closed_days(psycopg2.connect(store_dsn), TODAY) == []


def _store_without_sealing(dsn: str, tmp_path, records) -> None:
    """`records` stored as a writer's drainer stores a segment, and nothing more: no
    day is sealed by it (that is left to the test)."""
    writer = StoreWriter(dsn, Spool(tmp_path / f"spool-{uuid.uuid4().hex[:6]}", fsync="never"), today=lambda: TODAY)  # fmt: skip
    for record in records:
        writer.put(record)
    writer.spool.seal()
    assert writer.drain_once()
    writer._disconnect(writer._link)
    writer.spool.close()


@pytest.mark.parametrize("sealed_before", [False, True], ids=["first seal", "sealed again"])
def test_a_record_stored_while_its_day_is_being_sealed_gets_the_day_sealed_again(
    store_dsn, tmp_path, sealed_before
):
    """A late record committed after the seal read the day, before it was stored: the
    seal does not cover it, so the day must stay due for sealing (else it would stay
    unsealed, verify would call it added and the purge would refuse the day)."""
    from voiplog.store import seal

    day = DAYS[0].isoformat()
    if sealed_before:
        # Sealed with 4 records, then a late one came: the day is marked, and its
        # mark is the one the record stored meanwhile must renew.
        _sealed_store(store_dsn, tmp_path, None)
        _store_without_sealing(store_dsn, tmp_path, [call(at(0, "22:00"), 98)])
        assert query(store_dsn, "SELECT DISTINCT day FROM day_dirty WHERE day < %s", (TODAY,)) == [(DAYS[0],)]  # fmt: skip
    else:
        _store_without_sealing(store_dsn, tmp_path, [call(at(0, f"1{k}:00"), k) for k in range(4)])
    version, records = (2, 5) if sealed_before else (1, 4)
    late = call(at(0, "23:30"), 99)
    sealer = psycopg2.connect(store_dsn)
    count, root = seal.stage_root(sealer, day)  # the day as it is now
    _store_without_sealing(store_dsn, tmp_path, [late])  # committed meanwhile
    with sealer.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_seal_add(%s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            (day, version, count, root),
        )
        (made,) = cursor.fetchone()
    sealer.commit()
    sealer.close()
    assert made is not None and count == records
    due = query(store_dsn, "SELECT day, version FROM voiplog_days_to_seal(%s)", (TODAY,))
    assert (DAYS[0], version) in due
    made = seal.seal_closed_days(psycopg2.connect(store_dsn), TODAY)
    assert [(s.day, s.version, s.records) for s in made if s.day == day] == [(day, version + 1, records + 1)]  # fmt: skip
    assert query(store_dsn, "SELECT day FROM day_dirty WHERE day < %s", (TODAY,)) == []
    report = seal.verify(psycopg2.connect(store_dsn))
    assert report.ok, [f.line() for f in report.findings]
    proof = seal.prove(psycopg2.connect(store_dsn), late.uid)
    assert proof["seal"]["version"] == version + 1 and seal.check_proof(proof) is None


def test_a_writer_left_in_its_transaction_after_marking_a_day_holds_up_no_other(
    store_dsn, tmp_path
):
    """Every batch marks its days: a writer whose transaction stays open after marking
    (its client gone quiet) must not make the other writers, or the seal, wait."""
    from voiplog.store import seal

    day = DAYS[0].isoformat()
    _store_without_sealing(store_dsn, tmp_path, [call(at(0, "10:00"), 1)])
    stalled = psycopg2.connect(store_dsn)
    with stalled.cursor() as cursor:
        cursor.execute("SELECT voiplog_days_touched(%s::date[])", ([DAYS[0]],))
    try:
        other = StoreWriter(store_dsn, Spool(tmp_path / "other", fsync="never"), today=lambda: TODAY, lock_timeout_s=2.0)  # fmt: skip
        other.put(call(at(0, "11:00"), 2))
        other.spool.seal()
        assert other.drain_once(), "the writer waited for the open transaction's mark"
        other._disconnect(other._link)
        other.spool.close()
        sealer = psycopg2.connect(store_dsn, options="-c lock_timeout=2000")
        made = seal.seal_closed_days(sealer, TODAY)
        sealer.close()
        assert [(s.day, s.version, s.records) for s in made if s.day == day] == [(day, 1, 2)]
    finally:
        stalled.rollback()
        stalled.close()
    # The mark the open transaction held (to replace it) was left by the seal: the day is
    # looked at again, and sealed as it is, no version added.
    assert query(store_dsn, "SELECT day, version FROM voiplog_days_to_seal(%s)", (TODAY,)) == [(DAYS[0], 1)]  # fmt: skip
    assert [s for s in seal.seal_closed_days(psycopg2.connect(store_dsn), TODAY) if s.day == day] == []  # fmt: skip
    assert query(store_dsn, "SELECT count(*) FROM day_dirty WHERE day = %s", (DAYS[0],)) == [(0,)]


def _copy_tables(source: str, target: str, days, tables) -> None:
    """The rows of `tables` copied from one database to another as text, as a dump
    restored elsewhere has them (the types there have other OIDs)."""
    import io

    for day in days:
        query(target, "SELECT voiplog_ensure_day_partitions(%s)", (day,))
    for table in tables:
        data = io.StringIO()
        with psycopg2.connect(source) as connection, connection.cursor() as cursor:
            cursor.copy_expert(f"COPY (SELECT * FROM {table}) TO STDOUT", data)
        connection.close()
        data.seek(0)
        with psycopg2.connect(target) as connection, connection.cursor() as cursor:
            cursor.copy_expert(f"COPY {table} FROM STDIN", data)
        connection.close()


def test_sealed_days_verify_after_a_dump_restored_elsewhere(store_dsn, other_dsn, tmp_path, signer):  # fmt: skip
    from voiplog.store import seal

    _sealed_store(store_dsn, tmp_path, signer)
    days = [DAYS[0], DAYS[1], TODAY - dt.timedelta(days=1)]
    _copy_tables(store_dsn, other_dsn, days, ("cdr", "registration", "day_seal", "day_seal_leaves"))  # fmt: skip
    oid = "SELECT 'media_stream'::regtype::oid"
    assert query(store_dsn, oid) != query(other_dsn, oid)
    report = seal.verify(psycopg2.connect(other_dsn))
    assert report.ok, [f.line() for f in report.findings]
    assert (report.days_checked, report.records_checked) == (3, 8)
    # Leaves of the first form carried the types' OIDs: they differ between the two.
    leaves = "SELECT leaves FROM {}(%s)"
    day = (DAYS[0],)
    assert query(store_dsn, leaves.format("voiplog_day_leaves"), day) == query(other_dsn, leaves.format("voiplog_day_leaves"), day)  # fmt: skip
    assert query(store_dsn, leaves.format("voiplog_day_leaves_v1"), day) != query(other_dsn, leaves.format("voiplog_day_leaves_v1"), day)  # fmt: skip


def test_a_day_sealed_before_the_second_leaf_form_still_verifies_and_proves(scratch_dsn):
    from voiplog.store import migrate, seal
    from voiplog.store.database import make_engine

    engine = make_engine(scratch_dsn)
    migrate.upgrade(engine, "0007")
    day = DAYS[0]
    query(scratch_dsn, "SELECT voiplog_ensure_day_partitions(%s)", (day,))
    query(
        scratch_dsn,
        """
        INSERT INTO cdr (uid, started_at, kind, transport, duration_s, disposition, version,
                         caller, callee, caller_ip, media, subscriber, remote)
        SELECT 'old-' || n, %s::timestamptz + n * interval '1 minute', 'sip', 'udp', 60.0,
               'answered', 1, '+4930' || n, '+4989' || n, '100.64.0.1',
               ARRAY[ROW('100.64.0.1', 40000, '198.51.100.1', 20000, n, 8, 'PCMA', 3000, 0,
                         1.0, 0.5, now(), now())::media_stream],
               ROW('sub-' || n, NULL, NULL, 'ams1', '{"site": "a"}')::subscriber_info,
               ROW('DE', 3320, 'DTAG')::remote_info
        FROM generate_series(1, 5) AS n
        """,
        (dt.datetime.combine(day, dt.time(8), tzinfo=dt.UTC),),
    )
    # Sealed as revision 0007 sealed days: leaves of the whole row.
    ((count, keys, blob),) = query(scratch_dsn, "SELECT * FROM voiplog_day_leaves(%s)", (day,))
    root = seal.merkle_root(seal.split_leaves(bytes(blob)))
    query(scratch_dsn, "SELECT voiplog_seal_add(%s, 1, %s, %s, %s, %s, NULL, NULL)", (day, count, root, keys, bytes(blob)))  # fmt: skip
    migrate.upgrade(engine)
    engine.dispose()

    assert query(scratch_dsn, "SELECT form FROM day_seal_leaves") == [(1,)]
    connection = psycopg2.connect(scratch_dsn)
    report = seal.verify(connection, [day.isoformat()])
    assert report.ok and report.records_checked == 5, [f.line() for f in report.findings]
    proof = seal.prove(connection, "old-3")
    assert seal.check_proof(proof) is None and proof["seal"]["root"] == root
    assert seal.decode_row(proof)["subscriber"]["id"] == "sub-3"
    # A record changed is named against the old form too.
    query(scratch_dsn, "UPDATE cdr SET callee = '+4989X' WHERE uid = 'old-2'")
    lines = [f.line() for f in seal.verify(connection, [day.isoformat()]).findings]
    assert any(line.startswith(f"{day}: record changed: cdr old-2 ") for line in lines), lines
    # Sealed again (late records), the day is in the second form.
    query(scratch_dsn, "INSERT INTO day_dirty (day) VALUES (%s)", (day,))
    (made,) = seal.seal_closed_days(connection, TODAY)
    assert (made.version, made.records) == (2, 5)
    assert query(scratch_dsn, "SELECT form FROM day_seal_leaves") == [(2,)]
    assert seal.verify(connection).ok
    assert seal.check_proof(seal.prove(connection, "old-2")) is None
    connection.close()


# -- provable purges ---------------------------------------------------------------


def _disclosed(officers, record) -> dict:  # noqa: F811
    """`record` as a lawful-access run (by its caller, approved) returns it."""
    request_id = officers["requester"].add([{"type": "number", "value": record.caller}])
    assert officers["approver"].decide(request_id, "approve") is None
    (exported,) = officers["requester"].run(request_id).records
    return exported


def test_a_purge_log_entry_proves_an_exported_record_of_the_purged_day(
    officers,  # noqa: F811
    store_dsn,
    tmp_path,
    signer,
):
    from voiplog.store import purge, seal
    from voiplog.store.database import make_engine

    records = _sealed_store(store_dsn, tmp_path, signer)
    target = records[2]
    # Disclosed to an agency, with its inclusion proof, while the day is stored.
    exported = _disclosed(officers, target)
    proof = seal.prove(psycopg2.connect(store_dsn), target.uid)
    assert seal.proves_record(proof, exported)

    engine = make_engine(store_dsn)
    cutoff = dt.datetime.combine(DAYS[1], dt.time(), tzinfo=dt.UTC)  # drops DAYS[0]
    done = purge.execute(engine, purge.make_plan(engine, cutoff), "tester")
    engine.dispose()
    assert {p.day for p in done.partitions} == {DAYS[0]}
    ((seals,),) = query(store_dsn, "SELECT seals FROM purge_log")
    (kept,) = seals
    assert (kept["day"], kept["version"], kept["records"]) == (DAYS[0].isoformat(), 1, 4)
    # The day is gone; the proof leads from the exported record to the root the purge kept,
    # which is the root of the sealed day: the purge removed exactly what was sealed.
    assert query(store_dsn, "SELECT count(*) FROM cdr WHERE uid = %s", (target.uid,)) == [(0,)]
    assert seal.check_proof(proof, root=kept["root"]) is None
    assert seal.proves_record(proof, exported)
    other = dict(exported, callee="+4930000")
    assert not seal.proves_record(proof, other)
    assert query(store_dsn, "SELECT hash FROM day_seal WHERE day = %s", (DAYS[0],)) == [(kept["hash"],)]  # fmt: skip
    # The seal chain still verifies; the purged day is noted, not failed.
    report = seal.verify(psycopg2.connect(store_dsn))
    assert report.ok, [f.line() for f in report.findings]
    assert f"{DAYS[0]}: purged (seal version 1 kept)" in report.notes
    assert query(store_dsn, "SELECT count(*) FROM day_seal_leaves l JOIN day_seal s ON s.id = l.seal_id WHERE s.day = %s", (DAYS[0],)) == [(0,)]  # fmt: skip
    # The purge row in the audit trail names the seal too.
    ((event,),) = query(store_dsn, "SELECT event FROM audit_event WHERE action = 'purge'")
    assert event["seals"] == seals


def test_a_run_for_export_carries_each_records_proof_or_why_it_has_none(
    officers,  # noqa: F811
    people,  # noqa: F811
    store_dsn,
    tmp_path,
    signer,
):
    from voiplog.store import proof_check

    records = _sealed_store(store_dsn, tmp_path, signer)
    # After the seals, stored with no sealing since: a late record of the first day, a
    # record of a day never sealed, and one record changed by a superuser.
    late = call(at(0, "18:00"), 90, caller="+4930177")
    unsealed = call(at(2, "09:00"), 91, caller="+4930188")
    _store_without_sealing(store_dsn, tmp_path, [late, unsealed])
    changed = records[5]
    query(store_dsn, "UPDATE cdr SET callee = '+4989000' WHERE uid = %s", (changed.uid,))
    wanted = [records[1], records[6], changed, late, unsealed]
    request_id = officers["requester"].add([{"type": "number", "value": r.caller} for r in wanted])
    assert officers["approver"].decide(request_id, "approve") is None

    result = officers["requester"].run(request_id, proofs=True)
    assert result.ok, result.reason
    assert [p["uid"] for p in result.proofs] == [r["uid"] for r in result.records]
    assert sorted(p["uid"] for p in result.proofs) == sorted(r.uid for r in wanted)
    by_uid = {p["uid"]: p for p in result.proofs}
    exported = {r["uid"]: r for r in result.records}
    roots = dict(query(store_dsn, "SELECT day, root FROM day_seal WHERE version = 1"))
    for record, day in ((records[1], DAYS[0]), (records[6], DAYS[1])):
        proof = by_uid[record.uid]
        assert proof["seal"]["root"] == roots[day] and proof["seal"]["day"] == day.isoformat()
        report = proof_check.examine(proof, roots[day], signer.certificate_pem, exported[record.uid])  # fmt: skip
        assert report.ok, report.failed
    assert by_uid[changed.uid]["unproven"] == f"it no longer matches seal version 1 of {DAYS[1]}: changed after the day was sealed"  # fmt: skip
    assert by_uid[late.uid]["unproven"] == f"it came after seal version 1 of {DAYS[0]}: it is in the day's next seal"  # fmt: skip
    assert by_uid[unsealed.uid]["unproven"] == f"its day ({DAYS[2]}) is not sealed yet"
    # The run is the run: the same records, one audit row; the keys of the day's other
    # calls never come out.
    assert query(store_dsn, "SELECT count(*) FROM audit_event WHERE action = 'request.run'") == [(1,)]  # fmt: skip
    assert not any(other.uid in str(result.proofs) for other in records if other not in wanted)
    # The leaves of a seal removed behind the store's back: said, not taken for "not sealed".
    query(store_dsn, "DELETE FROM day_seal_leaves WHERE seal_id IN (SELECT id FROM day_seal WHERE day = %s)", (DAYS[1],))  # fmt: skip
    again = {p["uid"]: p for p in officers["requester"].run(request_id, proofs=True).proofs}
    assert again[records[6].uid]["unproven"] == f"the leaves kept with seal version 1 of {DAYS[1]} are gone: no proof can be made (voiplog store verify names the day)"  # fmt: skip
    assert "path" in again[records[1].uid]
    # Only a requester may run it, and only what they may run.
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        officers["approver"].run(request_id, proofs=True)
    officers["approver"].connection.rollback()
    other = officers["requester"].add([{"type": "number", "value": records[0].caller}])
    refused = officers["requester"].run(other, proofs=True)
    assert not refused.ok and "not approved" in refused.reason and refused.proofs is None


def test_a_run_gives_the_same_proofs_with_the_extensions_paths_as_with_the_days_leaves(
    officers,  # noqa: F811
    people,  # noqa: F811
    store_dsn,
    tmp_path,
    signer,
    monkeypatch,
):
    """With voiplog_seal 1.1 the database gives each proof its siblings and sends no
    leaves (migration 0016); without it the client builds the paths from the day's
    leaves. The proofs, and what a record without one is told, are the same."""
    from voiplog.store import seal

    if not query(store_dsn, "SELECT 1 FROM pg_extension WHERE extname = 'voiplog_seal' AND extversion = '1.1'"):  # fmt: skip
        pytest.skip("the voiplog_seal extension (1.1) is not installed on the test server")
    records = _sealed_store(store_dsn, tmp_path, signer)
    late = call(at(0, "18:00"), 90, caller="+4930177")
    _store_without_sealing(store_dsn, tmp_path, [late])
    changed = records[5]
    query(store_dsn, "UPDATE cdr SET callee = '+4989000' WHERE uid = %s", (changed.uid,))
    wanted = [records[0], records[1], records[3], records[6], changed, late]
    request_id = officers["requester"].add([{"type": "number", "value": r.caller} for r in wanted])
    assert officers["approver"].decide(request_id, "approve") is None

    def runs() -> tuple[list[dict], list[dict]]:
        def no_leaves(*args):
            raise AssertionError("the day's leaves were sent")

        with monkeypatch.context() as patch:
            patch.setattr(seal, "complete_proofs", no_leaves)
            compiled = officers["requester"].run(request_id, proofs=True).proofs
        query(store_dsn, "DROP EXTENSION voiplog_seal")
        # A function of the same name that is not the extension's is never called.
        query(store_dsn, "CREATE FUNCTION public.voiplog_merkle_paths(leaves bytea, wanted bytea[], OUT root text, OUT places integer[], OUT siblings bytea[]) LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'planted'; END$$")  # fmt: skip
        try:
            reference = officers["requester"].run(request_id, proofs=True).proofs
        finally:
            query(store_dsn, "DROP FUNCTION public.voiplog_merkle_paths(bytea, bytea[])")
            query(store_dsn, "CREATE EXTENSION voiplog_seal")
        return compiled, reference

    compiled, reference = runs()
    assert compiled == reference
    by_uid = {p["uid"]: p for p in compiled}
    for record in (records[0], records[1], records[3], records[6]):
        assert seal.check_proof(by_uid[record.uid]) is None
    assert by_uid[changed.uid]["unproven"] == f"it no longer matches seal version 1 of {DAYS[1]}: changed after the day was sealed"  # fmt: skip
    assert by_uid[late.uid]["unproven"] == f"it came after seal version 1 of {DAYS[0]}: it is in the day's next seal"  # fmt: skip
    # The leaves kept with a seal changed behind the store's back (that of a record not
    # asked for): no path from them.
    query(store_dsn, "UPDATE day_seal_leaves SET leaves = overlay(leaves PLACING '\\x00000000'::bytea FROM 65 FOR 4) WHERE seal_id IN (SELECT id FROM day_seal WHERE day = %s)", (DAYS[0],))  # fmt: skip
    compiled, reference = runs()
    assert compiled == reference
    by_uid = {p["uid"]: p for p in compiled}
    for record in (records[0], records[1], records[3]):
        assert by_uid[record.uid]["unproven"] == f"the leaves kept with seal version 1 of {DAYS[0]} do not give its root"  # fmt: skip
    assert by_uid[late.uid]["unproven"] == f"it came after seal version 1 of {DAYS[0]}: it is in the day's next seal"  # fmt: skip
    assert seal.check_proof(by_uid[records[6].uid]) is None


def _check_proof(*args: str):
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    return CliRunner().invoke(cli, ["store", "check-proof", *map(str, args)])


def test_check_proof_shows_an_exported_record_in_a_purged_day_with_no_database(
    officers,  # noqa: F811
    people,  # noqa: F811
    store_dsn,
    tmp_path,
    signer,
    monkeypatch,
):
    import json

    from voiplog.export import bundle, signing
    from voiplog.store import purge
    from voiplog.store.database import make_engine

    records = _sealed_store(store_dsn, tmp_path, signer)
    target = records[1]
    exported = _disclosed(officers, target)
    run_output = tmp_path / "run.jsonl"
    run_output.write_bytes(bundle.records_jsonl([records[0].to_dict(), exported]))
    bundle_zip = bundle.write(
        {bundle.RECORDS: bundle.records_jsonl([exported])}, tmp_path / "b.zip"
    )
    result = _cli(monkeypatch, store_dsn, "prove", target.uid)
    assert result.exit_code == 0, result.output
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(result.output)
    proof = json.loads(result.output)

    engine = make_engine(store_dsn)
    cutoff = dt.datetime.combine(DAYS[1], dt.time(), tzinfo=dt.UTC)  # drops DAYS[0]
    purge.execute(engine, purge.make_plan(engine, cutoff), "tester")
    engine.dispose()
    ((seals,),) = query(store_dsn, "SELECT seals FROM purge_log")
    kept_root = seals[0]["root"]
    assert query(store_dsn, "SELECT count(*) FROM cdr WHERE uid = %s", (target.uid,)) == [(0,)]
    # The auditor reads the root the purge kept off the audit trail, with no SQL.
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    listed = CliRunner().invoke(cli, ["audit", "list"], env={"VOIPLOG_DATABASE_URL": _url(people["auditor"])})  # fmt: skip
    assert listed.exit_code == 0, listed.output
    (purge_line,) = [line for line in listed.output.splitlines() if "\tpurge\t" in line]
    assert f"seals of the days dropped: {DAYS[0]} version 1 (4 records) root {kept_root}" in purge_line  # fmt: skip

    # The day is gone; the database is not asked (no DSN set for these).
    monkeypatch.delenv("VOIPLOG_DATABASE_URL")
    cert = tmp_path / "cert.pem"
    for record_file in (run_output, bundle_zip):
        result = _check_proof(proof_file, "--record", record_file, "--root", kept_root, "--cert", cert)  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert all(line.startswith("ok: ") for line in lines[:-1]), lines
        assert f"ok: the seal's root is the one given ({kept_root})" in lines
        assert f"ok: the record given (uid {target.uid}) is the row proven" in lines
        assert f"ok: the seal is signed by {signing.describe(cert.read_bytes())}" in lines
        assert lines[-1] == f"the proof holds: record {target.uid} is one of the records sealed for {DAYS[0]}"  # fmt: skip
    # From standard input, with nothing to compare it with: the proof alone holds.
    from click.testing import CliRunner

    from voiplog.cli.main import cli

    result = CliRunner().invoke(cli, ["store", "check-proof", "-"], input=proof_file.read_text())
    assert result.exit_code == 0, result.output

    def fails(*args, proof_doc=None):
        path = proof_file
        if proof_doc is not None:
            path = tmp_path / "altered.json"
            path.write_text(json.dumps(proof_doc))
        result = _check_proof(path, *args)
        assert result.exit_code == 1, result.output
        return [line for line in result.output.splitlines() if line.startswith("FAILED: ")]

    assert fails("--root", "ab" * 32) == [f"FAILED: the seal's root {kept_root} is not the one given ({'ab' * 32})"]  # fmt: skip
    _, other_cert = signing.new_key_and_certificate("pop ber1", None, 30, dt.datetime.now(dt.UTC))  # fmt: skip
    (tmp_path / "other.pem").write_bytes(other_cert)
    assert fails("--cert", tmp_path / "other.pem") == ["FAILED: the seal is signed with another certificate than the one given"]  # fmt: skip
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(dict(exported, callee="+4930999")))
    assert fails("--record", changed) == [f"FAILED: the record given (uid {target.uid}) differs from the row proven"]  # fmt: skip
    caller = target.caller.encode().hex()
    forged = dict(proof, row=proof["row"].replace(caller, b"+4930999".hex()))
    failed = fails(proof_doc=forged)
    assert failed[0].startswith("FAILED: the row hashes to ") and len(failed) == 2, failed
    moved = dict(proof, index=proof["index"] ^ 1)
    assert fails(proof_doc=moved) == [f"FAILED: the path's sides are not those of leaf {proof['index'] ^ 1} of 4"]  # fmt: skip
    resigned = dict(proof, seal=dict(proof["seal"], records=3))
    # Leaf 1 of 3 has the path of leaf 1 of 4; the signature covers the count.
    assert fails(proof_doc=resigned) == ["FAILED: the seal's signature: the signature does not match the data and the certificate"]  # fmt: skip

    # Files that are not what they should be: exit 2, the file and the key named.
    (tmp_path / "not.json").write_text("{")
    result = _check_proof(tmp_path / "not.json")
    assert result.exit_code == 2 and f"{tmp_path / 'not.json'}: not JSON" in result.output
    broken = dict(proof, seal={k: v for k, v in proof["seal"].items() if k != "root"})
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    result = _check_proof(tmp_path / "broken.json")
    assert (
        result.exit_code == 2
        and "not an inclusion proof: key 'seal.root' is missing" in result.output
    )
    result = _check_proof(proof_file, "--record", tmp_path / "other.pem")
    assert result.exit_code == 2 and "line 1: not JSON" in result.output
    (tmp_path / "someone.json").write_text(json.dumps(records[0].to_dict()))
    result = _check_proof(proof_file, "--record", tmp_path / "someone.json")
    assert result.exit_code == 2 and f"no record with uid {target.uid}" in result.output
    result = _check_proof(proof_file, "--root", "xyz")
    assert result.exit_code == 2 and "--root 'xyz' is not 64 hex digits" in result.output


def test_a_purge_refuses_a_day_that_no_longer_matches_its_seal(store_dsn, tmp_path, signer):
    from voiplog.store import purge
    from voiplog.store.database import make_engine

    records = _sealed_store(store_dsn, tmp_path, signer)
    query(store_dsn, "UPDATE cdr SET duration_s = 61 WHERE uid = %s", (records[0].uid,))
    engine = make_engine(store_dsn)
    cutoff = dt.datetime.combine(DAYS[1] + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    with pytest.raises(purge.SealMismatchError, match=f"{DAYS[0]}: its records no longer match seal version 1"):  # fmt: skip
        purge.execute(engine, purge.make_plan(engine, cutoff), "tester")
    engine.dispose()
    assert query(store_dsn, "SELECT count(*) FROM cdr") == [(8,)]
    assert query(store_dsn, "SELECT count(*) FROM purge_log") == [(0,)]


def test_admin_changes_to_purge_log_holds_and_held_records_are_audited(people, store_dsn):  # noqa: F811
    from voiplog.store import audit as trail

    admin = people["admin"]
    query(
        admin,
        "INSERT INTO purge_log (os_user, cutoff, partitions, rows_dropped, rows_held, held_released) "
        "VALUES ('ops', now(), '{cdr_p20260101}', 10, 0, 0)",
    )
    query(
        admin,
        "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) "
        "VALUES ('K-1', 'ip', '192.0.2.1', now() - interval '1 day', now(), 'ops')",
    )
    (hold,) = query(admin, "SELECT id FROM legal_hold")
    query(
        admin,
        "INSERT INTO held_record (hold_id, uid, kind, started_at, record) "
        "VALUES (%s, 'u1', 'sip', now(), '{\"caller\": \"+4930111\"}')",
        (hold[0],),
    )
    query(admin, "UPDATE purge_log SET rows_dropped = 1")
    query(admin, 'UPDATE held_record SET record = \'{"caller": "+4930112"}\'')
    query(admin, "UPDATE legal_hold SET released_at = now(), released_by = 'ops'")
    query(admin, "UPDATE legal_hold SET released_by = 'someone else'")
    query(admin, "DELETE FROM held_record")
    query(admin, "DELETE FROM purge_log")
    rows = query(store_dsn, "SELECT action, event FROM audit_event ORDER BY seq")
    actions = [a for a, _ in rows]
    assert actions == [
        "purge", "hold.add", "held_record.insert", "purge_log.update", "held_record.update",
        "hold.release", "legal_hold.update", "held_record.delete", "purge_log.delete",
    ]  # fmt: skip
    events = dict(rows)
    assert events["purge_log.update"]["before"]["rows_dropped"] == 10
    assert events["purge_log.update"]["after"]["rows_dropped"] == 1
    assert events["legal_hold.update"]["after"]["released_by"] == "someone else"
    assert events["legal_hold.update"]["db_role"].startswith("vl_admin_")
    (change,) = events["held_record.update"]["held"]
    assert change["before_sha256"] != change["after_sha256"]
    assert "+4930112" not in str(events["held_record.update"])  # hashes, never record data
    connection = psycopg2.connect(store_dsn)
    assert trail.verify(connection).ok
    connection.close()
