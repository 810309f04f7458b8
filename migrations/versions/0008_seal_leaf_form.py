"""Day seals: leaves free of type OIDs, computed in parallel.

- **Leaf form 2.** A leaf of migration 0007 (form 1) hashed `record_send` of
  the whole row, which carries the type OID of each column: the OIDs of
  `media_stream`, `subscriber_info` and `remote_info` are those the database
  gave the types when they were made, so that a dump restored elsewhere no
  longer verified. A form-2 leaf is SHA-256(0x00 || `record_send` of the row
  rebuilt column by column (their order, the table's), where a composite
  column is its own `record_send` (its fields are of built-in types) and the
  `media` array its `array_send` with the element type's OID zeroed): every
  OID left is that of a built-in type. The columns are named, so that a
  column added later changes no leaf of the days sealed before it; the
  function is then changed by the migration that adds it. A registration row
  has no composite column: its two forms are the same bytes.
- **Faster.** `voiplog_day_leaves` now lets Postgres hash the day with
  parallel workers, reading the day's partition whole, and sort it in memory.
  A seal no longer sends the day's keys and leaves back to the database:
  `voiplog_seal_stage` computes them and keeps them in a temporary table of
  the transaction, returning the leaves (for the tree); `voiplog_seal_add`
  called without keys and leaves stores the staged ones. The keys kept are
  compressed with lz4 where the server has it (pglz took longer than the
  rest of storing the seal), and a form-2 key writes its time as Postgres
  does in UTC ("cdr <uid> 2026-01-10 08:01:00.25+00"), not with to_char.
  Verify and the check a purge makes compute no keys at all
  (`voiplog_day_hashes`): only naming what changed needs them. Sealing,
  verifying and the check a purge makes take about half the time they did
  (figures in the README).
- **Old seals stay verifiable.** `day_seal_leaves.form` says which form the
  leaves of a seal are in: 1 for the seals made before this migration, 2
  after. The form-1 functions stay, as `voiplog_day_leaves_v1` and
  `voiplog_record_leaf_v1` (owner and grants of the functions they were);
  `voiplog store verify` and `prove` try the form of the day's last seal
  first, then the other. A day sealed again (late records) is sealed in
  form 2. The form is not in the seal row or its signature, and need not
  be: both forms are SHA-256 of the whole row, so that a day matches its
  root in either form only if its records are those sealed. Downgrading
  keeps the form-2 seals, which revision 0007 cannot verify: seal their
  days again after it (`voiplog store seal`, once the day is marked in
  `day_dirty`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SEAL_LOCK = 7956807324837738  # as migration 0007

# The record tables' columns in their order, as migration 0007 left them.
CDR_COLUMNS = (
    "uid", "started_at", "kind", "call_id", "caller", "callee", "caller_uri", "callee_uri",
    "request_uri", "caller_ip", "caller_port", "callee_ip", "callee_port", "transport",
    "subscriber_ip", "direction", "ringing_at", "answered_at", "ended_at", "duration_s",
    "setup_ms", "disposition", "final_status", "ended_by", "user_agent", "flags", "version",
    "extra", "pop", "sensor", "stored_at", "media", "subscriber", "remote", "inserted_by",
)  # fmt: skip
REGISTRATION_COLUMNS = (
    "uid", "requested_at", "kind", "call_id", "aor", "user", "contact_uri", "contact_ip",
    "contact_port", "source_ip", "source_port", "registrar_ip", "registrar_port", "transport",
    "expires_s", "auth_user", "user_agent", "status", "result", "answered_at", "subscriber_ip",
    "direction", "subscriber", "flags", "version", "extra", "pop", "sensor", "stored_at",
    "inserted_by",
)  # fmt: skip
# Composite columns, as bytes whose OIDs are all those of built-in types
# (array_send: dimensions, null flag, then the element type's OID at byte 9).
CANONICAL = {
    "media": "overlay(array_send({t}.media) PLACING '\\x00000000'::bytea FROM 9 FOR 4)",
    "subscriber": "record_send({t}.subscriber)",
    "remote": "record_send({t}.remote)",
}


def row_bytes(alias: str, columns: tuple[str, ...], composites: bool) -> str:
    """The SQL of a row's form-2 bytes (what its leaf hashes, after 0x00)."""
    parts = [
        CANONICAL[c].format(t=alias) if composites and c in CANONICAL else f'{alias}."{c}"'
        for c in columns
    ]
    return f"record_send(ROW({', '.join(parts)}))"


CDR_ROW = row_bytes("c", CDR_COLUMNS, True)
REGISTRATION_ROW = row_bytes("r", REGISTRATION_COLUMNS, False)

# A record's key names its leaf: "cdr <uid> <time>", the time as Postgres
# writes it in UTC ("2026-01-10 08:01:00.25+00"), which costs less than half
# of to_char's ISO form (in form 1) for the day's million keys.
CDR_KEY = "'cdr ' || c.uid || ' ' || c.started_at::text"
REGISTRATION_KEY = "'registration ' || r.uid || ' ' || r.requested_at::text"


# Whole days are hashed: parallel workers share the rows, the sort stays in
# memory. `voiplog_day_hashes` is the same without the keys, which only
# naming what changed needs: verify and purge compare roots with it.
def day_leaves(named: bool) -> str:
    cdr_key, registration_key = CDR_KEY, REGISTRATION_KEY
    if named:
        name, keys = "voiplog_day_leaves", "keys text, "
        aggregate = "COALESCE(string_agg(y.k, E'\\n'), ''), "
    else:
        name, keys, aggregate = "voiplog_day_hashes", "", ""
        cdr_key = registration_key = "NULL::text"
    return f"""
CREATE OR REPLACE FUNCTION {name}(day date)
RETURNS TABLE (records bigint, {keys}leaves bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD' SET extra_float_digits = 1 SET jit = off SET parallel_setup_cost = 0 SET parallel_tuple_cost = 0
SET enable_bitmapscan = off SET enable_indexscan = off SET work_mem = '128MB' AS $fn$
BEGIN
    RETURN QUERY
    SELECT count(*), {aggregate}COALESCE(string_agg(y.h, ''::bytea), ''::bytea)
    FROM (
        SELECT x.k, x.h FROM (
            SELECT 0 AS t, c.started_at AS at, c.uid, {cdr_key} AS k,
                   sha256('\\x00'::bytea || {CDR_ROW}) AS h
            FROM cdr c
            WHERE c.started_at >= day::timestamp AT TIME ZONE 'UTC'
              AND c.started_at < (day + 1)::timestamp AT TIME ZONE 'UTC'
            UNION ALL
            SELECT 1, r.requested_at, r.uid, {registration_key},
                   sha256('\\x00'::bytea || {REGISTRATION_ROW})
            FROM registration r
            WHERE r.requested_at >= day::timestamp AT TIME ZONE 'UTC'
              AND r.requested_at < (day + 1)::timestamp AT TIME ZONE 'UTC'
        ) x ORDER BY x.t, x.at, x.uid COLLATE "C"
    ) y;
END
$fn$;
"""


# The columns of a proof's row, by name and type, as the leaf has them (a
# composite column keeps its type's name: its bytes read back as the type's).
COLUMN_NAMES = f"""CASE x.tbl WHEN 'cdr' THEN ARRAY['{"', '".join(CDR_COLUMNS)}']
                  ELSE ARRAY['{"', '".join(REGISTRATION_COLUMNS)}'] END"""
RECORD_LEAF = f"""
CREATE OR REPLACE FUNCTION voiplog_record_leaf(record_uid text)
RETURNS TABLE (tbl text, day date, key text, row_bytes bytea, columns jsonb, doc text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD' SET extra_float_digits = 1 AS $fn$
    SELECT x.tbl, x.day, x.key, x.row_bytes,
           (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod))
                             ORDER BY n.i)
            FROM unnest({COLUMN_NAMES}) WITH ORDINALITY n(name, i)
            JOIN pg_attribute a ON a.attrelid = x.tbl::regclass AND a.attname = n.name),
           x.doc
    FROM (
        SELECT 'cdr' AS tbl, (c.started_at AT TIME ZONE 'UTC')::date AS day,
               {CDR_KEY} AS key,
               {CDR_ROW} AS row_bytes, to_jsonb(c)::text AS doc
        FROM cdr c WHERE c.uid = record_uid
        UNION ALL
        SELECT 'registration', (r.requested_at AT TIME ZONE 'UTC')::date,
               {REGISTRATION_KEY},
               {REGISTRATION_ROW}, to_jsonb(r)::text
        FROM registration r WHERE r.uid = record_uid
    ) x
$fn$;
"""


# The keys and leaves of a day, computed once: kept until the transaction ends
# (uncompressed: they are read once) for `voiplog_seal_add`; the leaves are
# returned for the tree.
SEAL_STAGE = """
CREATE FUNCTION voiplog_seal_stage(day date) RETURNS TABLE (records bigint, leaves bytea)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    CREATE TEMPORARY TABLE IF NOT EXISTS voiplog_staged_leaves (
        day date PRIMARY KEY,
        records bigint NOT NULL,
        keys text NOT NULL,
        leaves bytea NOT NULL
    ) ON COMMIT DROP;
    ALTER TABLE pg_temp.voiplog_staged_leaves ALTER COLUMN keys SET STORAGE EXTERNAL,
        ALTER COLUMN leaves SET STORAGE EXTERNAL;
    DELETE FROM pg_temp.voiplog_staged_leaves s WHERE s.day = voiplog_seal_stage.day;
    INSERT INTO pg_temp.voiplog_staged_leaves (day, records, keys, leaves)
    SELECT voiplog_seal_stage.day, x.records, x.keys, x.leaves FROM voiplog_day_leaves(day) x;
    RETURN QUERY SELECT s.records, s.leaves FROM pg_temp.voiplog_staged_leaves s
        WHERE s.day = voiplog_seal_stage.day;
END
$fn$;
"""

# Keys and leaves not given: those `voiplog_seal_stage` kept for the day.
STAGED = """
    IF keys IS NULL AND leaves IS NULL THEN
        IF to_regclass('pg_temp.voiplog_staged_leaves') IS NOT NULL THEN
            SELECT s.keys, s.leaves INTO keys, leaves FROM pg_temp.voiplog_staged_leaves s
            WHERE s.day = voiplog_seal_add.day AND s.records = record_count;
        END IF;
        IF leaves IS NULL THEN
            RAISE EXCEPTION 'seal of %: no leaves of % records staged in this transaction', day,
                record_count;
        END IF;
    END IF;"""


def seal_add(form: int | None) -> str:
    """`voiplog_seal_add` of migration 0007; with `form`, it stores staged leaves when
    given none, and the leaves kept say their form."""
    columns, values = ("", "") if form is None else (", form", f", {form}")
    keep = (
        f"INSERT INTO day_seal_leaves (seal_id, keys, leaves{columns}) "
        f"VALUES (n, keys, leaves{values});"
    )
    staged = "" if form is None else STAGED
    return f"""
CREATE OR REPLACE FUNCTION voiplog_seal_add(day date, version integer, record_count bigint, root text,
    keys text, leaves bytea, signature bytea, certificate text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    last day_seal;
    n bigint;
    t timestamptz := clock_timestamp();
    prev text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'voiplog_seal_add needs READ COMMITTED isolation';
    END IF;{staged}
    IF root !~ '^[0-9a-f]{{64}}$' OR length(leaves) <> 32 * record_count THEN
        RAISE EXCEPTION 'seal of %: root or leaves malformed', day;
    END IF;
    PERFORM pg_advisory_xact_lock({SEAL_LOCK});
    SELECT * INTO last FROM day_seal s WHERE s.day = voiplog_seal_add.day
        ORDER BY s.version DESC LIMIT 1;
    IF COALESCE(last.version, 0) + 1 <> version THEN
        RAISE EXCEPTION 'seal of %: version % follows %, not %', day, COALESCE(last.version, 0) + 1,
            COALESCE(last.version, 0), version USING ERRCODE = 'serialization_failure';
    END IF;
    DELETE FROM day_dirty y WHERE y.day = voiplog_seal_add.day;
    IF last.root = root AND last.record_count = record_count THEN
        RETURN NULL;
    END IF;
    SELECT s.id, s.hash INTO n, prev FROM day_seal s ORDER BY s.id DESC LIMIT 1;
    n := COALESCE(n, 0) + 1;
    prev := COALESCE(prev, repeat('0', 64));
    INSERT INTO day_seal (id, day, version, record_count, root, sealed_at, sealed_by, prev_hash,
                          hash, signature, certificate)
    VALUES (n, day, version, record_count, root, t, session_user, prev,
            voiplog_seal_hash(n, day, version, record_count, root, t, session_user, prev, signature),
            signature, certificate);
    -- Only the last version's leaves are kept: they name what changed since.
    DELETE FROM day_seal_leaves l USING day_seal s
    WHERE s.id = l.seal_id AND s.day = voiplog_seal_add.day;
    {keep}
    RETURN n;
END
$fn$;
"""


# Owner and EXECUTE grants of a function given to another.
def _grant_like(to: str, like: str) -> str:
    return f"""
DO $$
DECLARE
    g record;
BEGIN
    EXECUTE format('ALTER FUNCTION {to} OWNER TO %I',
                   (SELECT pg_get_userbyid(p.proowner) FROM pg_proc p
                    WHERE p.oid = '{like}'::regprocedure));
    EXECUTE 'REVOKE ALL ON FUNCTION {to} FROM PUBLIC';
    FOR g IN SELECT DISTINCT pg_get_userbyid(a.grantee) AS grantee
             FROM pg_proc p, aclexplode(p.proacl) a
             WHERE p.oid = '{like}'::regprocedure AND a.privilege_type = 'EXECUTE'
               AND a.grantee <> 0 LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION {to} TO %I', g.grantee);
    END LOOP;
END
$$;
"""


# A copy of a function under another name, with its owner and EXECUTE grants.
def _copy_function(name: str, to: str, args: str) -> str:
    return f"""
DO $$
BEGIN
    EXECUTE replace(pg_get_functiondef('{name}({args})'::regprocedure),
                    'FUNCTION public.{name}(', 'FUNCTION public.{to}(');
END
$$;
""" + _grant_like(f"{to}({args})", f"{name}({args})")


SEAL_ADD = "voiplog_seal_add(date, integer, bigint, text, text, bytea, bytea, text)"

LZ4 = """
DO $$
BEGIN
    ALTER TABLE day_seal_leaves ALTER COLUMN keys SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- a server built without lz4 keeps pglz
END
$$;
"""


def upgrade() -> None:
    op.execute("ALTER TABLE day_seal_leaves ADD COLUMN form smallint NOT NULL DEFAULT 1")
    op.execute("ALTER TABLE day_seal_leaves ALTER COLUMN form SET DEFAULT 2")
    op.execute(LZ4)
    op.execute(_copy_function("voiplog_day_leaves", "voiplog_day_leaves_v1", "date"))
    op.execute(_copy_function("voiplog_record_leaf", "voiplog_record_leaf_v1", "text"))
    op.execute(day_leaves(named=True))
    op.execute(day_leaves(named=False))
    op.execute(_grant_like("voiplog_day_hashes(date)", "voiplog_day_leaves(date)"))
    op.execute(RECORD_LEAF)
    op.execute(SEAL_STAGE)
    op.execute(_grant_like("voiplog_seal_stage(date)", SEAL_ADD))
    op.execute(seal_add(2))


def downgrade() -> None:
    op.execute(seal_add(None))
    op.execute("DROP FUNCTION voiplog_seal_stage(date)")
    op.execute("DROP FUNCTION voiplog_day_hashes(date)")
    op.execute("ALTER TABLE day_seal_leaves ALTER COLUMN keys SET COMPRESSION default")
    op.execute(_copy_function("voiplog_record_leaf_v1", "voiplog_record_leaf", "text"))
    op.execute(_copy_function("voiplog_day_leaves_v1", "voiplog_day_leaves", "date"))
    op.execute("DROP FUNCTION voiplog_record_leaf_v1(text)")
    op.execute("DROP FUNCTION voiplog_day_leaves_v1(date)")
    op.execute("ALTER TABLE day_seal_leaves DROP COLUMN form")
