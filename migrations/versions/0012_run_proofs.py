"""Inclusion proofs with the records a lawful-access run returns, for evidence bundles.

`voiplog_request_run_proven` runs a request as `voiplog_request_run` does
(the same checks, audit row and records, conflicts included) and then adds,
for each record of a sealed day it returned, what its inclusion proof is made
of: the row as the leaf of the day's last seal hashes it (in the seal's leaf
form), its columns, its place among the seal's leaves, and the seal (day,
version, record count, root, hash, signature, certificate); and once per
day, that seal's leaves, from which the client takes the sibling hashes.
A record it cannot prove gets the reason instead: its day is not sealed yet,
the leaves of its day's last seal are gone, it came after that seal, it no
longer hashes to its sealed leaf, or it is a held copy (its day was purged). Each record is read by its key (time and
uid), through the primary key of its day.

Only the records the run itself returned are proven, so that the function
gives a requester nothing beyond the run: their rows (which the run gave as
JSON) and sibling hashes, which reveal nothing of the other records. The
seal's keys, which name the day's other calls, never leave the database.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

RUN_ARGS = "integer, boolean, text, text, text, integer, timestamptz, timestamptz"
PROVEN = f"voiplog_request_run_proven({RUN_ARGS})"

_0008 = import_module("voiplog.migrations.versions.0008_seal_leaf_form")


def _columns(table: str, names: tuple[str, ...]) -> str:
    """A table's columns as a proof names them: [name, type], in the leaf's order."""
    listed = "', '".join(names)
    return (
        "(SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) "
        f"ORDER BY n.i) FROM unnest(ARRAY['{listed}']) WITH ORDINALITY n(name, i) "
        f"JOIN pg_attribute a ON a.attrelid = '{table}'::regclass AND a.attname = n.name)"
    )


RECORDSET = (
    "jsonb_to_recordset(found) p(uid text, tbl text, at timestamptz, day date, seal_id bigint)"
)

RUN_PROVEN = f"""
CREATE FUNCTION voiplog_request_run_proven(request_id integer, count_only boolean, os_user text,
    client_host text, delivery_target text, retention_days integer,
    narrow_from timestamptz, narrow_to timestamptz)
RETURNS TABLE (source text, doc jsonb, leaves bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET DateStyle = 'ISO, YMD' SET extra_float_digits = 1 SET jit = off AS $fn$
DECLARE
    s text;
    d jsonb;
    uids text[] := '{{}}';
    tables text[] := '{{}}';
    times timestamptz[] := '{{}}';
    held text[] := '{{}}';
    found jsonb;
    cdr_columns jsonb := {_columns("cdr", _0008.CDR_COLUMNS)};
    registration_columns jsonb := {_columns("registration", _0008.REGISTRATION_COLUMNS)};
    g record;
    x record;
BEGIN
    FOR s, d IN SELECT r.source, r.doc FROM voiplog_request_run(request_id, count_only, os_user,
            client_host, delivery_target, retention_days, narrow_from, narrow_to) r LOOP
        source := s;
        doc := d;
        leaves := NULL;
        RETURN NEXT;
        IF s IN ('cdr', 'registration') THEN
            uids := uids || (d->>'uid');
            tables := tables || s;
            times := times || (d->>CASE s WHEN 'cdr' THEN 'started_at' ELSE 'requested_at' END)::timestamptz;
        ELSIF s = 'held' THEN
            held := held || (d->>'uid');
        END IF;
    END LOOP;
    leaves := NULL;
    FOR x IN SELECT DISTINCT h.uid FROM unnest(held) h(uid) ORDER BY h.uid LOOP
        source := 'proof';
        doc := jsonb_build_object('uid', x.uid, 'stored_in', 'held_record', 'unproven',
            'a held copy: its day was purged (the seal of that day, kept in purge_log.seals, '
            || 'and a proof given before the purge cover it)');
        RETURN NEXT;
    END LOOP;
    IF cardinality(uids) = 0 THEN
        RETURN;
    END IF;
    -- The records returned (their key: uid and time), with their day's last seal. No
    -- table: nothing the caller could have made beforehand is read.
    SELECT COALESCE(jsonb_agg(jsonb_build_object('uid', w.uid, 'tbl', w.tbl, 'at', w.at,
               'day', w.day, 'seal_id', CASE WHEN z.kept THEN z.id END, 'version', z.version)),
               '[]')
    INTO found
    FROM (SELECT DISTINCT u.uid, u.tbl, u.at, (u.at AT TIME ZONE 'UTC')::date AS day
          FROM unnest(uids, tables, times) u(uid, tbl, at)) w
    LEFT JOIN LATERAL (
        SELECT ds.id, ds.version,
               EXISTS (SELECT 1 FROM day_seal_leaves k WHERE k.seal_id = ds.id) AS kept
        FROM day_seal ds WHERE ds.day = w.day ORDER BY ds.version DESC LIMIT 1
    ) z ON true;
    FOR x IN SELECT p.uid, p.tbl, p.day, p.version
             FROM jsonb_to_recordset(found) p(uid text, tbl text, day date, seal_id bigint, version integer)
             WHERE p.seal_id IS NULL ORDER BY p.uid, p.tbl LOOP
        source := 'proof';
        doc := jsonb_build_object('uid', x.uid, 'stored_in', x.tbl, 'unproven',
            CASE WHEN x.version IS NULL THEN format('its day (%s) is not sealed yet', x.day)
                 ELSE format('the leaves kept with seal version %s of %s are gone: no proof '
                             'can be made (voiplog store verify names the day)', x.version, x.day)
            END);
        RETURN NEXT;
    END LOOP;
    FOR g IN SELECT ds.id, ds.day, ds.version, ds.record_count, ds.root, ds.hash, ds.signature,
                    ds.certificate, k.form, k.keys, k.leaves AS blob
             FROM day_seal ds JOIN day_seal_leaves k ON k.seal_id = ds.id
             WHERE ds.id IN (SELECT p.seal_id FROM {RECORDSET})
             ORDER BY ds.day LOOP
        FOR x IN
            WITH mine AS (
                SELECT p.uid, p.tbl, {_0008.CDR_KEY} AS key, {_0008.CDR_ROW} AS row_bytes,
                       cdr_columns AS columns
                FROM {RECORDSET} JOIN cdr c ON c.started_at = p.at AND c.uid = p.uid
                WHERE p.seal_id = g.id AND p.tbl = 'cdr' AND g.form = 2
                UNION ALL
                SELECT p.uid, p.tbl, {_0008.REGISTRATION_KEY}, {_0008.REGISTRATION_ROW},
                       registration_columns
                FROM {RECORDSET} JOIN registration r ON r.requested_at = p.at AND r.uid = p.uid
                WHERE p.seal_id = g.id AND p.tbl = 'registration' AND g.form = 2
                UNION ALL
                -- A day sealed in leaf form 1 (before migration 0008).
                SELECT p.uid, p.tbl, l.key, l.row_bytes, l.columns
                FROM {RECORDSET}, LATERAL voiplog_record_leaf_v1(p.uid) l
                WHERE p.seal_id = g.id AND g.form = 1 AND l.tbl = p.tbl AND l.day = g.day
            ), places AS (
                SELECT k.key, k.n - 1 AS place
                FROM unnest(string_to_array(g.keys, E'\\n')) WITH ORDINALITY k(key, n)
                WHERE k.key IN (SELECT m.key FROM mine m)
            )
            SELECT m.*, pl.place, sha256('\\x00'::bytea || m.row_bytes) AS leaf
            FROM mine m LEFT JOIN places pl ON pl.key = m.key ORDER BY m.uid, m.tbl
        LOOP
            source := 'proof';
            IF x.place IS NULL THEN
                doc := jsonb_build_object('uid', x.uid, 'stored_in', x.tbl, 'unproven',
                    format('it came after seal version %s of %s: it is in the day''s next seal',
                           g.version, g.day));
            ELSIF substring(g.blob FROM (x.place * 32 + 1)::integer FOR 32) <> x.leaf THEN
                doc := jsonb_build_object('uid', x.uid, 'stored_in', x.tbl, 'unproven',
                    format('it no longer matches seal version %s of %s: changed after the day '
                           'was sealed', g.version, g.day));
            ELSE
                doc := jsonb_build_object('uid', x.uid, 'stored_in', x.tbl,
                    'row', encode(x.row_bytes, 'hex'), 'columns', x.columns,
                    'leaf', encode(x.leaf, 'hex'), 'index', x.place,
                    'seal', jsonb_build_object('day', g.day, 'version', g.version,
                        'records', g.record_count, 'root', g.root, 'hash', g.hash,
                        'signature', encode(g.signature, 'hex'), 'certificate', g.certificate));
            END IF;
            RETURN NEXT;
        END LOOP;
        source := 'leaves';
        doc := jsonb_build_object('day', g.day, 'version', g.version);
        leaves := g.blob;
        RETURN NEXT;
        leaves := NULL;
    END LOOP;
END
$fn$;
"""

# As roles.sql has it for the run; roles.sql also gives it to voiplog_admin, as it
# does every function of the store, once the roles are set up.
GRANTS = f"""
REVOKE ALL ON FUNCTION {PROVEN} FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voiplog_requester') THEN
        GRANT EXECUTE ON FUNCTION {PROVEN} TO voiplog_requester;
    END IF;
END
$$;
"""


def upgrade() -> None:
    op.execute(RUN_PROVEN)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {PROVEN}")
