"""Day seals: leaves computed in C where the `voiplog_seal` extension is installed.

`voiplog_day_leaves` and `voiplog_day_hashes` (form 2, migration 0008) hash
each record with `voiplog_leaf` of the `voiplog_seal` extension
(`voiplog/store/pgext`) when it is installed in the database, and with the
SQL of migration 0008 otherwise. Both give the same leaves, byte for byte:
the extension writes the row in the form `record_send` gives it, its
composite columns as migration 0008 rewrites them, without the roughly 70
send-function calls a record costs in SQL. The SQL stays the reference, and
what runs where the extension is not installed; which one ran does not show
in a seal, and need not. The extension is found by name in `pg_extension`
(a function of the same name that is not the extension's is never called),
at each call: it may be created after this migration. This migration
creates it when the server has it installed and the login may
(`CREATE EXTENSION voiplog_seal`: a trusted extension, which the owner of
the database may create); else it says so and goes on. Downgrading drops
it.

Form-1 leaves (`voiplog_day_leaves_v1`) and one record's leaf
(`voiplog_record_leaf`, for proofs) stay in SQL.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_0008 = import_module("voiplog.migrations.versions.0008_seal_leaf_form")

# The extension's schema, when it is installed.
EXTENSION_SCHEMA = (
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'voiplog_seal'"
)


def _leaf(alias: str, columns: tuple[str, ...]) -> str:
    """The extension's leaf of a row: its columns in the table's order (%1$I: its schema)."""
    return "%1$I.voiplog_leaf(" + ", ".join(f'{alias}."{c}"' for c in columns) + ")"


def _query(day: str, cdr_key: str, registration_key: str, cdr_leaf: str, registration_leaf: str,
           aggregate: str) -> str:  # fmt: skip
    return f"""
    SELECT count(*), {aggregate}COALESCE(string_agg(y.h, ''::bytea), ''::bytea)
    FROM (
        SELECT x.k, x.h FROM (
            SELECT 0 AS t, c.started_at AS at, c.uid, {cdr_key} AS k, {cdr_leaf} AS h
            FROM cdr c
            WHERE c.started_at >= {day}::timestamp AT TIME ZONE 'UTC'
              AND c.started_at < ({day} + 1)::timestamp AT TIME ZONE 'UTC'
            UNION ALL
            SELECT 1, r.requested_at, r.uid, {registration_key}, {registration_leaf}
            FROM registration r
            WHERE r.requested_at >= {day}::timestamp AT TIME ZONE 'UTC'
              AND r.requested_at < ({day} + 1)::timestamp AT TIME ZONE 'UTC'
        ) x ORDER BY x.t, x.at, x.uid COLLATE "C"
    ) y"""


def day_leaves(named: bool) -> str:
    """`voiplog_day_leaves` (named) or `voiplog_day_hashes`: the extension's leaves when
    it is installed, else those of migration 0008's SQL."""
    cdr_key, registration_key = _0008.CDR_KEY, _0008.REGISTRATION_KEY
    if named:
        name, keys = "voiplog_day_leaves", "keys text, "
        aggregate = "COALESCE(string_agg(y.k, E'\\n'), ''), "
    else:
        name, keys, aggregate = "voiplog_day_hashes", "", ""
        cdr_key = registration_key = "NULL::text"
    reference = _query(
        "day",
        cdr_key,
        registration_key,
        f"sha256('\\x00'::bytea || {_0008.CDR_ROW})",
        f"sha256('\\x00'::bytea || {_0008.REGISTRATION_ROW})",
        aggregate,
    )
    compiled = _query(
        "$1",
        cdr_key.replace("%", "%%"),
        registration_key.replace("%", "%%"),
        _leaf("c", _0008.CDR_COLUMNS),
        _leaf("r", _0008.REGISTRATION_COLUMNS),
        aggregate,
    )
    return f"""
CREATE OR REPLACE FUNCTION {name}(day date)
RETURNS TABLE (records bigint, {keys}leaves bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD' SET extra_float_digits = 1 SET jit = off SET parallel_setup_cost = 0 SET parallel_tuple_cost = 0
SET enable_bitmapscan = off SET enable_indexscan = off SET work_mem = '128MB' AS $fn$
DECLARE
    ext name;
BEGIN
    {EXTENSION_SCHEMA} INTO ext;
    IF ext IS NOT NULL THEN
        RETURN QUERY EXECUTE format($q${compiled}$q$, ext) USING day;
    ELSE
        RETURN QUERY {reference};
    END IF;
END
$fn$;
"""


CREATE_EXTENSION = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'voiplog_seal') THEN
        CREATE EXTENSION IF NOT EXISTS voiplog_seal;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'voiplog_seal is installed but % may not create it: day seals are '
        'computed in SQL until a superuser runs CREATE EXTENSION voiplog_seal', current_user;
END
$$;
"""


def upgrade() -> None:
    op.execute(CREATE_EXTENSION)
    op.execute(day_leaves(named=True))
    op.execute(day_leaves(named=False))


def downgrade() -> None:
    op.execute(_0008.day_leaves(named=True))
    op.execute(_0008.day_leaves(named=False))
    # Nothing of revision 0010 calls it.
    op.execute("DROP EXTENSION IF EXISTS voiplog_seal")
