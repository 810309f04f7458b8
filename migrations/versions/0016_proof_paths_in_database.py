"""Proofs get their sibling hashes in the database, not from the day's leaves.

`voiplog_request_run_proven` (migration 0012) sent, once per sealed day among
a run's records, that day's leaves (32 MB for 1,000,000 records), from which
the client built the day's tree in Python (about a third of a second) to take
the sibling hashes; and it found each record's place by splitting the day's
keys (1,000,000 lines) into an array. A request spanning months paid that for
every day. Where the `voiplog_seal` extension is at version 1.1, the function
now asks `voiplog_merkle_paths` for the day's root and, for each record's
leaf, its place among the sealed leaves and its sibling hashes, the tree built
once in C, and gives them in the proof (`siblings`: the hashes end to end, in
the order `voiplog.store.seal.path_steps` walks them); no leaves row is sent.
The keys are read only for a record whose leaf is not among the sealed ones,
to say why: its key among them means it changed after the day was sealed,
else it came after the seal. A day whose kept leaves do not give its seal's
root has each record say so. Without the extension (or at version 1.0) the
function does as before, and the client builds the paths.

The extension is updated to 1.1 when the server has that version installed
and the login may; else it says so and goes on. Downgrading restores the
function of migration 0012 and leaves the extension as it is (1.1 keeps
every function of 1.0).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_0008 = import_module("voiplog.migrations.versions.0008_seal_leaf_form")
_0012 = import_module("voiplog.migrations.versions.0012_run_proofs")

UPDATE_EXTENSION = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'voiplog_seal')
       AND EXISTS (SELECT 1 FROM pg_available_extension_versions
                   WHERE name = 'voiplog_seal' AND version = '1.1') THEN
        ALTER EXTENSION voiplog_seal UPDATE TO '1.1';
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'voiplog_seal 1.1 is installed but % may not update the extension to it: '
        'proofs take their paths from the day''s leaves until ALTER EXTENSION voiplog_seal '
        'UPDATE is run', current_user;
END
$$;
"""

# The schema of the extension's voiplog_merkle_paths: a function of the extension
# itself (pg_depend), never one of that name made by anyone else.
PATHS_SCHEMA = """
    SELECT n.nspname INTO ext
    FROM pg_extension e
    JOIN pg_namespace n ON n.oid = e.extnamespace
    JOIN pg_depend dep ON dep.refclassid = 'pg_extension'::regclass AND dep.refobjid = e.oid
        AND dep.deptype = 'e' AND dep.classid = 'pg_proc'::regclass
    JOIN pg_proc f ON f.oid = dep.objid AND f.proname = 'voiplog_merkle_paths'
    WHERE e.extname = 'voiplog_seal';"""

RECORDSET = _0012.RECORDSET

# The run as migration 0012 has it up to its days; then each day as above.
_RUN_HEAD = _0012.RUN_PROVEN[: _0012.RUN_PROVEN.index("    FOR g IN SELECT ds.id, ds.day")]
if (
    _RUN_HEAD.count("    x record;\n") != 1 or _RUN_HEAD.count("CREATE FUNCTION") != 1
):  # pragma: no cover - frozen text, checked on import
    raise RuntimeError("migration 0012's run is not the one 0016 changes")
RUN_PROVEN = (
    _RUN_HEAD.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION").replace(
        "    x record;\n",
        """    x record;
    ext name;
    m_uid text[];
    m_tbl text[];
    m_key text[];
    m_row bytea[];
    m_columns jsonb[];
    m_leaf bytea[];
    m_place integer[];
    m_siblings bytea[];
    tree_root text;
    day_keys text;
    why text;
""",
    )
    + PATHS_SCHEMA
    + f"""
    FOR g IN SELECT ds.id, ds.day, ds.version, ds.record_count, ds.root, ds.hash, ds.signature,
                    ds.certificate, k.form, k.leaves AS blob
             FROM day_seal ds JOIN day_seal_leaves k ON k.seal_id = ds.id
             WHERE ds.id IN (SELECT p.seal_id FROM {RECORDSET})
             ORDER BY ds.day LOOP
        -- The day's records returned: their rows as the seal's leaf form has them.
        SELECT array_agg(m.uid ORDER BY m.uid, m.tbl), array_agg(m.tbl ORDER BY m.uid, m.tbl),
               array_agg(m.key ORDER BY m.uid, m.tbl), array_agg(m.row_bytes ORDER BY m.uid, m.tbl),
               array_agg(m.columns ORDER BY m.uid, m.tbl),
               array_agg(sha256('\\x00'::bytea || m.row_bytes) ORDER BY m.uid, m.tbl)
        INTO m_uid, m_tbl, m_key, m_row, m_columns, m_leaf
        FROM (
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
        ) m;
        CONTINUE WHEN m_uid IS NULL;
        -- The seal and the columns the rows are read with, once for the day's proofs
        -- that follow (a day sealed in leaf form 1 names each row's columns with it).
        source := 'seal';
        doc := jsonb_build_object(
            'seal', jsonb_build_object('day', g.day, 'version', g.version,
                'records', g.record_count, 'root', g.root, 'hash', g.hash,
                'signature', encode(g.signature, 'hex'), 'certificate', g.certificate),
            'columns', jsonb_build_object('cdr', cdr_columns, 'registration', registration_columns));
        RETURN NEXT;
        tree_root := NULL;
        m_siblings := NULL;
        day_keys := NULL;  -- read when needed: some 48 MB a million calls, decompressed
        IF ext IS NOT NULL THEN
            -- The tree built once, in C: each leaf's place and siblings.
            EXECUTE format('SELECT t.root, t.places, t.siblings FROM %I.voiplog_merkle_paths($1, $2) t', ext)
                INTO tree_root, m_place, m_siblings USING g.blob, m_leaf;
        ELSE
            -- Each record's place by its key; the client takes the paths from the leaves.
            SELECT k.keys INTO day_keys FROM day_seal_leaves k WHERE k.seal_id = g.id;
            SELECT array_agg(pl.place ORDER BY w.i) INTO m_place
            FROM unnest(m_key) WITH ORDINALITY w(key, i)
            LEFT JOIN (SELECT k.key, (k.n - 1)::integer AS place
                       FROM unnest(string_to_array(day_keys, E'\\n')) WITH ORDINALITY k(key, n)
                       WHERE k.key = ANY (m_key)) pl ON pl.key = w.key;
        END IF;
        FOR i IN 1 .. cardinality(m_uid) LOOP
            source := 'proof';
            why := NULL;
            IF m_place[i] IS NULL AND ext IS NOT NULL AND day_keys IS NULL THEN
                SELECT k.keys INTO day_keys FROM day_seal_leaves k WHERE k.seal_id = g.id;
            END IF;
            IF m_place[i] IS NULL AND ext IS NOT NULL
                  AND strpos(E'\\n' || day_keys || E'\\n', E'\\n' || m_key[i] || E'\\n') > 0 THEN
                why := format('it no longer matches seal version %s of %s: changed after the day '
                              'was sealed', g.version, g.day);
            ELSIF m_place[i] IS NULL THEN
                why := format('it came after seal version %s of %s: it is in the day''s next seal',
                              g.version, g.day);
            ELSIF tree_root IS NOT NULL AND tree_root <> g.root THEN
                why := format('the leaves kept with seal version %s of %s do not give its root',
                              g.version, g.day);
            ELSIF substring(g.blob FROM (m_place[i] * 32 + 1)::integer FOR 32) <> m_leaf[i] THEN
                why := format('it no longer matches seal version %s of %s: changed after the day '
                              'was sealed', g.version, g.day);
            END IF;
            IF why IS NOT NULL THEN
                doc := jsonb_build_object('uid', m_uid[i], 'stored_in', m_tbl[i], 'unproven', why);
            ELSIF m_siblings IS NULL THEN
                doc := jsonb_build_object('uid', m_uid[i], 'stored_in', m_tbl[i],
                    'row', encode(m_row[i], 'hex'), 'leaf', encode(m_leaf[i], 'hex'),
                    'index', m_place[i], 'columns', CASE WHEN g.form = 1 THEN m_columns[i] END);
            ELSE
                doc := jsonb_build_object('uid', m_uid[i], 'stored_in', m_tbl[i],
                    'row', encode(m_row[i], 'hex'), 'leaf', encode(m_leaf[i], 'hex'),
                    'index', m_place[i], 'columns', CASE WHEN g.form = 1 THEN m_columns[i] END,
                    'siblings', encode(m_siblings[i], 'hex'));
            END IF;
            RETURN NEXT;
        END LOOP;
        IF ext IS NULL THEN
            source := 'leaves';
            doc := jsonb_build_object('day', g.day, 'version', g.version);
            leaves := g.blob;
            RETURN NEXT;
            leaves := NULL;
        END IF;
    END LOOP;
END
$fn$;
"""
)


def upgrade() -> None:
    op.execute(UPDATE_EXTENSION)
    op.execute(RUN_PROVEN)


def downgrade() -> None:
    op.execute(_0012.RUN_PROVEN.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
