"""The voiplog_seal extension against its references: the SQL of migration 0008
(leaves) and `voiplog.store.seal` (roots), byte for byte, on a real Postgres.

The extension must be installed on the test server (scripts/test builds and
installs it); without it these tests skip, and the store runs the SQL.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

import psycopg2
import psycopg2.extras
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.store._records import call
from tests.store.conftest import query
from tests.store.test_access_run import DAYS, TODAY, at
from voiplog.store import seal
from voiplog.store.spool import Spool
from voiplog.store.writer import StoreWriter


def _installed(dsn: str) -> bool:
    return bool(query(dsn, "SELECT 1 FROM pg_available_extensions WHERE name = 'voiplog_seal'"))


@pytest.fixture
def ext_dsn(store_dsn):
    """A migrated store with the extension created (the migration creates it)."""
    if not _installed(store_dsn):
        pytest.skip("the voiplog_seal extension is not installed on the test server")
    assert query(store_dsn, seal.EXTENSION_SCHEMA) == [("public",)]
    return store_dsn


# -- one leaf: every type the record tables use, and the generic path ------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_TIME = st.integers(-(10**15), 10**16).map(
    lambda us: dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)
) | st.sampled_from(["infinity", "-infinity"])
_V4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
_V6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
_INET = st.one_of(
    st.builds(lambda a, bits: f"{a}/{bits}", _V4, st.integers(0, 32)),
    st.builds(lambda a, bits: f"{a}/{bits}", _V6, st.integers(0, 128)),
)


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=None)


def _typed(sql_type: str, values):
    """A column: (SQL with its parameter placeholders, parameters)."""
    return values.map(lambda v: (f"(%s)::{sql_type}", [v]))


def _nullable(column):
    return column | st.just(("NULL::text", []))


_MEDIA_TYPES = ("inet", "int4", "inet", "int4", "int8", "int2", "text", "int8", "int8", "float8", "float8", "timestamptz", "timestamptz")  # fmt: skip
_MEDIA_VALUES = (_INET, st.integers(0, 65535), _INET, st.integers(0, 65535), st.integers(0, 2**32 - 1), st.integers(0, 127), _TEXT, st.integers(0, 2**62), st.integers(-(2**31), 2**62), st.floats(), st.floats(), _TIME, _TIME)  # fmt: skip


def _composite(name: str, types, values):
    fields = st.tuples(*(st.none() | v for v in values))

    def build(parts):
        sql = ", ".join(f"(%s)::{t}" for t in types)
        return f"ROW({sql})::{name}", list(parts)

    return fields.map(build)


_MEDIA = _composite("media_stream", _MEDIA_TYPES, _MEDIA_VALUES)
_SUBSCRIBER = _composite(
    "subscriber_info",
    ("text", "text", "text", "text", "jsonb"),
    (_TEXT, _TEXT, _TEXT, _TEXT, _JSON.map(psycopg2.extras.Json)),
)


def _media_array(items):
    if not items:
        return "'{}'::media_stream[]", []
    parts, params = [], []
    for item in items:
        if item is None:
            parts.append("NULL::media_stream")
        else:
            parts.append(item[0])
            params += item[1]
    return f"ARRAY[{', '.join(parts)}]::media_stream[]", params


_COLUMN = st.one_of(
    _typed("text", _TEXT),
    _typed("varchar", _TEXT),
    _typed("int2", st.integers(-(2**15), 2**15 - 1)),
    _typed("int4", st.integers(-(2**31), 2**31 - 1)),
    _typed("int8", st.integers(-(2**63), 2**63 - 1)),
    _typed("float8", st.floats()),
    _typed("bool", st.booleans()),
    _typed("timestamptz", _TIME),
    _typed("timestamp", _TIME.filter(lambda t: not isinstance(t, str)).map(_naive)),
    _typed("inet", _INET),
    _typed("jsonb", _JSON.map(psycopg2.extras.Json)),
    _typed("text[]", st.lists(st.none() | _TEXT, max_size=4)),
    _typed(
        "numeric", st.decimals(allow_nan=True, allow_infinity=False, places=3)
    ),  # a send function
    _MEDIA,
    _SUBSCRIBER,
    st.lists(st.none() | _MEDIA, max_size=3).map(_media_array),
)


def _reference(sql: str, name: str) -> str:
    """The column as migration 0008 writes it into the row it hashes."""
    if name in ("media_stream", "subscriber_info"):
        return f"record_send({sql})"
    if name == "media_stream[]":
        return f"overlay(array_send({sql}) PLACING '\\x00000000'::bytea FROM 9 FOR 4)"
    return sql


@pytest.fixture(scope="module")
def leaf_connection():
    from tests.store.conftest import _scratch_database

    databases = _scratch_database(migrated=True)
    dsn = next(databases)
    try:
        if not _installed(dsn):
            pytest.skip("the voiplog_seal extension is not installed on the test server")
        connection = psycopg2.connect(dsn)
        yield connection
        connection.close()
    finally:
        databases.close()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(columns=st.lists(_nullable(_COLUMN), min_size=1, max_size=8))
def test_a_leaf_is_sha256_of_the_row_as_migration_0008_writes_it(leaf_connection, columns):
    names = [sql.rsplit("::", 1)[-1] for sql, _ in columns]
    inner = ", ".join(f"{sql} AS c{i}" for i, (sql, _) in enumerate(columns))
    params = [p for _, ps in columns for p in ps]
    arguments = ", ".join(f"v.c{i}" for i in range(len(columns)))
    reference = ", ".join(_reference(f"v.c{i}", name) for i, name in enumerate(names))
    leaf_connection.rollback()
    with leaf_connection.cursor() as cursor:
        cursor.execute(
            f"SELECT voiplog_leaf({arguments}), "
            f"sha256('\\x00'::bytea || record_send(ROW({reference}))) FROM (SELECT {inner}) v",
            params,
        )
        compiled, expected = cursor.fetchone()
    leaf_connection.rollback()
    assert bytes(compiled) == bytes(expected), (columns, names)


def test_text_is_hashed_in_the_client_encoding_as_record_send_sends_it(leaf_connection):
    with leaf_connection.cursor() as cursor:
        for encoding in ("UTF8", "LATIN1", "SQL_ASCII"):
            cursor.execute(f"SET client_encoding = '{encoding}'")
            cursor.execute(
                "SELECT voiplog_leaf(x, y), sha256('\\x00'::bytea || record_send(ROW(x, y))) "
                "FROM (SELECT 'Müller Straße'::text AS x, ARRAY['café', NULL]::text[] AS y) v"
            )
            compiled, expected = cursor.fetchone()
            assert bytes(compiled) == bytes(expected), encoding
    leaf_connection.rollback()


def test_columns_given_as_an_array_are_refused(leaf_connection):
    with leaf_connection.cursor() as cursor, pytest.raises(psycopg2.errors.FeatureNotSupported):
        cursor.execute("SELECT voiplog_leaf(VARIADIC ARRAY['a', 'b'])")
    leaf_connection.rollback()


# -- roots ---------------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.one_of(st.integers(0, 40), st.integers(41, 3000)), seed=st.binary(min_size=4, max_size=4))  # fmt: skip
def test_a_root_is_the_one_seal_py_computes(leaf_connection, count, seed):
    import hashlib

    blob = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(count))
    with leaf_connection.cursor() as cursor:
        cursor.execute("SELECT voiplog_merkle_root(%s)", (blob,))
        (root,) = cursor.fetchone()
    leaf_connection.rollback()
    assert root == seal.merkle_root(blob) == seal.merkle_root(seal.split_leaves(blob))


def test_leaves_not_of_32_bytes_are_refused(leaf_connection):
    with leaf_connection.cursor() as cursor, pytest.raises(psycopg2.errors.InvalidParameterValue) as raised:  # fmt: skip
        cursor.execute("SELECT voiplog_merkle_root(%s)", (b"\x01" * 33,))
    leaf_connection.rollback()
    assert "33 bytes are not leaves of 32 bytes" in str(raised.value)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    count=st.one_of(st.integers(0, 40), st.integers(41, 3000)),
    seed=st.binary(min_size=4, max_size=4),
    picks=st.lists(st.integers(0, 10**6), max_size=12),
    absent=st.integers(0, 2),
)
def test_paths_are_those_seal_py_walks(leaf_connection, count, seed, picks, absent):
    """voiplog_merkle_paths (1.1): the root, and for each leaf asked for its place and
    siblings as seal.py builds them from the whole tree; NULL for a leaf not there."""
    import hashlib

    leaves = [hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(count)]
    places = [p % count for p in picks] if count else []
    wanted = [leaves[p] for p in places] + [hashlib.sha256(b"absent%d" % n).digest() for n in range(absent)]  # fmt: skip
    with leaf_connection.cursor() as cursor:
        cursor.execute("SELECT root, places, siblings FROM voiplog_merkle_paths(%s, %s::bytea[])", (b"".join(leaves), wanted))  # fmt: skip
        root, found, siblings = cursor.fetchone()
    leaf_connection.rollback()
    assert root == seal.merkle_root(leaves)
    assert found == places + [None] * absent
    expected = [b"".join(bytes.fromhex(h) for _, h in seal.inclusion_path(leaves, p)) for p in places]  # fmt: skip
    assert [bytes(b) if b is not None else None for b in siblings] == expected + [None] * absent
    for place, path in zip(places, siblings, strict=False):
        proof = {"index": place, "leaf": leaves[place].hex(), "siblings": bytes(path).hex(), "seal": {"records": count, "root": root, "version": 1, "day": "d"}}  # fmt: skip
        assert seal.path_from_siblings(proof) is None
        assert seal.root_from_path(leaves[place], proof["path"]) == root


def test_paths_refuse_what_is_not_leaves(leaf_connection):
    for leaves, wanted, message in (
        (b"\x01" * 33, [], "33 bytes are not leaves of 32 bytes"),
        (b"\x01" * 32, [b"\x01" * 31], "wanted leaf 1 has 31 bytes, not 32"),
    ):
        with leaf_connection.cursor() as cursor, pytest.raises(psycopg2.errors.InvalidParameterValue) as raised:  # fmt: skip
            cursor.execute("SELECT * FROM voiplog_merkle_paths(%s, %s::bytea[])", (leaves, wanted))
        leaf_connection.rollback()
        assert message in str(raised.value)


def test_a_store_made_with_version_1_0_is_updated_to_1_1_by_its_migration(scratch_dsn):
    from voiplog.store import migrate
    from voiplog.store.database import make_engine

    if not _installed(scratch_dsn):
        pytest.skip("the voiplog_seal extension is not installed on the test server")
    engine = make_engine(scratch_dsn)
    migrate.upgrade(engine, "0015")
    query(scratch_dsn, "DROP EXTENSION voiplog_seal")
    query(scratch_dsn, "CREATE EXTENSION voiplog_seal VERSION '1.0'")
    migrate.upgrade(engine)
    engine.dispose()
    assert query(scratch_dsn, "SELECT extversion FROM pg_extension WHERE extname = 'voiplog_seal'") == [("1.1",)]  # fmt: skip
    assert query(scratch_dsn, "SELECT root FROM voiplog_merkle_paths('', '{}')") == [(seal.merkle_root(b""),)]  # fmt: skip


# -- a day: the functions of migration 0011 against those of 0008 -----------------


def _varied_day(dsn: str, tmp_path) -> None:
    """Calls of DAYS[0] as the writer stores them, varied where the leaf's writing
    differs: no media, one stream without codec, no subscriber, unicode, IPv6; a
    registration; and rows only SQL makes (a NULL stream, a flag, a remote)."""
    records = [
        call(at(0, "10:00"), 1),
        call(at(0, "10:00"), 2, media=False, subscriber_id=None),
        call(at(0, "11:00"), 3, caller="Zoë Ünal", caller_ip="2001:db8::7"),
        call(at(0, "12:00"), 4, callee="+4989\u2603", user_agent="Ph\u00f6ne/1 \U0001f4de"),
    ]
    spool = Spool(tmp_path / "spool", fsync="never")
    with StoreWriter(dsn, spool, today=lambda: TODAY) as writer:
        for record in records:
            writer.put(record)
    query(
        dsn,
        "INSERT INTO cdr SELECT (jsonb_populate_record(NULL::cdr, to_jsonb(c) || jsonb_build_object("
        "'uid', 'sql-made', 'flags', ARRAY['x', NULL], 'remote', ROW('DE', 3320, 'DTAG')::remote_info, "
        "'media', ARRAY[NULL::media_stream, (c.media)[1]]))).* FROM cdr c WHERE c.uid = %s",
        (records[0].uid,),
    )
    query(
        dsn,
        "INSERT INTO registration (uid, requested_at, kind, transport, flags, version, extra, "
        "subscriber) VALUES ('reg-1', %s, 'register', 'udp', '{}', 1, '{\"a\": [1, \"é\"]}', "
        '\'{"id": "sub-9"}\')',
        (at(0, "13:00"),),
    )
    # Marked as the writer marks a sealed day that takes late records.
    query(dsn, "SELECT voiplog_days_touched(%s::date[])", ([DAYS[0]],))


def test_a_day_has_the_same_keys_and_leaves_with_the_extension_and_without(ext_dsn, tmp_path):
    _varied_day(ext_dsn, tmp_path)
    connection = psycopg2.connect(ext_dsn)
    day = DAYS[0].isoformat()
    compiled = seal.day_leaves(connection, day), seal.day_hashes(connection, day), seal.day_root(connection, day)  # fmt: skip
    connection.rollback()
    query(ext_dsn, "DROP EXTENSION voiplog_seal")
    assert query(ext_dsn, seal.EXTENSION_SCHEMA) == []
    reference = seal.day_leaves(connection, day), seal.day_hashes(connection, day), seal.day_root(connection, day)  # fmt: skip
    connection.close()
    count, keys, leaves = reference[0]
    assert count == 6 and len(keys) == 6 and keys[-1].startswith("registration reg-1 ")
    assert compiled == reference
    assert reference[2] == (6, seal.merkle_root(leaves))


def test_a_day_sealed_with_the_extension_verifies_without_and_the_other_way(ext_dsn, tmp_path):
    from voiplog.store import purge
    from voiplog.store.database import make_engine

    _varied_day(ext_dsn, tmp_path)
    day = DAYS[0].isoformat()
    connection = psycopg2.connect(ext_dsn)
    # The writer sealed the day as it closed; the rows SQL added reseal it.
    (made,) = [m for m in seal.seal_closed_days(connection, TODAY) if m.day == day]
    assert made.version == 2 and made.records == 6
    query(ext_dsn, "DROP EXTENSION voiplog_seal")
    report = seal.verify(connection, [day], today=TODAY)
    assert report.ok and report.records_checked == 6, report.findings
    assert report.hashed_by == "SQL"
    # A change made now is found by the SQL, and then by the extension.
    query(ext_dsn, "UPDATE cdr SET user_agent = user_agent || '.' WHERE uid = 'sql-made'")
    lines = {f.line() for f in seal.verify(connection, [day], today=TODAY).findings}
    assert any(line.startswith(f"{day}: record changed: cdr sql-made ") for line in lines), lines
    query(ext_dsn, "CREATE EXTENSION voiplog_seal")
    lines = {f.line() for f in seal.verify(connection, [day], today=TODAY).findings}
    assert any(line.startswith(f"{day}: record changed: cdr sql-made ") for line in lines), lines
    # Put back, the day matches again; the purge's check (the extension's root) agrees.
    query(
        ext_dsn,
        "UPDATE cdr SET user_agent = left(user_agent, length(user_agent) - 1) WHERE uid = 'sql-made'",
    )
    report = seal.verify(connection, [day], today=TODAY)
    assert report.ok and report.hashed_by == "the voiplog_seal extension"
    connection.close()
    engine = make_engine(ext_dsn)
    with engine.begin() as db:
        assert purge._day_root(db, DAYS[0], 2) == (6, made.root)
    engine.dispose()


def test_a_function_named_like_the_extensions_but_not_of_it_is_never_called(store_dsn, tmp_path):
    """Only the extension registered as voiplog_seal computes roots: a look-alike in the
    search path is ignored, and the day still shows the change it would hide."""
    if _installed(store_dsn):
        query(store_dsn, "DROP EXTENSION IF EXISTS voiplog_seal")
    _varied_day(store_dsn, tmp_path)
    day = DAYS[0].isoformat()
    connection = psycopg2.connect(store_dsn)
    seal.seal_closed_days(connection, TODAY)
    (sealed_root,) = query(store_dsn, "SELECT root FROM day_seal WHERE day = %s ORDER BY version DESC LIMIT 1", (DAYS[0],))[0]  # fmt: skip
    query(
        store_dsn,
        "CREATE FUNCTION public.voiplog_merkle_root(bytea) RETURNS text LANGUAGE sql "
        "AS $$ SELECT %s::text $$",
        (sealed_root,),
    )
    query(store_dsn, "UPDATE cdr SET caller = '+4930999' WHERE uid = 'sql-made'")
    lines = {f.line() for f in seal.verify(connection, [day], today=TODAY).findings}
    connection.close()
    assert any(line.startswith(f"{day}: record changed: cdr sql-made ") for line in lines), lines


def test_the_extension_is_found_in_the_schema_it_was_created_in(ext_dsn, tmp_path):
    _varied_day(ext_dsn, tmp_path)
    connection = psycopg2.connect(ext_dsn)
    day = DAYS[0].isoformat()
    expected = seal.day_root(connection, day)
    connection.rollback()
    query(ext_dsn, 'DROP EXTENSION voiplog_seal; CREATE SCHEMA "seal ext"; CREATE EXTENSION voiplog_seal SCHEMA "seal ext"')  # fmt: skip
    assert query(ext_dsn, seal.EXTENSION_SCHEMA) == [("seal ext",)]
    assert seal.day_root(connection, day) == expected
    connection.close()


def test_the_day_functions_call_the_extension_when_it_is_installed(ext_dsn, tmp_path):
    """Its leaf is called once a record (the server counts the calls of C functions
    with track_functions = all), and not at all once it is dropped."""
    _varied_day(ext_dsn, tmp_path)

    def calls() -> int:
        connection = psycopg2.connect(ext_dsn)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET track_functions = 'all'")
            cursor.execute("SELECT records FROM voiplog_day_hashes(%s)", (DAYS[0],))
            cursor.execute("SELECT pg_stat_force_next_flush()")
        connection.close()
        found = query(
            ext_dsn,
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'voiplog_leaf'",
        )
        return int(found[0][0])

    assert calls() == 6
    query(ext_dsn, "DROP EXTENSION voiplog_seal")
    query(ext_dsn, "SELECT pg_stat_reset()")
    assert calls() == 0
