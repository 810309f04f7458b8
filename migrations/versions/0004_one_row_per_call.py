"""One row per call: media streams and enrichment become typed columns of `cdr`.

A call was three rows (its `cdr` row and one `cdr_media` row per stream) and
its subscriber and far-end objects were JSON, which Postgres parses on every
insert. Ingest measured about a third faster with one row per call: media as
an array of the composite type `media_stream` (its fields typed as the
`cdr_media` columns were), subscriber and far end as the composite types
`subscriber_info` and `remote_info` (the contract's keys, typed; a location's
free keys stay JSON), and `extra` NULL when a record has no keys beyond the
contract. A call's streams still read as rows (`unnest(media)`), a day is
still dropped whole, and `(subscriber).id` can be indexed like any column.

An object that does not fit its typed column exactly (other keys, other
types) is also kept whole in `extra` under its own key, as the writer does,
so that every record reads back as it came.

Upgrading rewrites every stored record once (the streams move into their
calls, the JSON objects into the typed columns). The downgrade moves them back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MEDIA_FIELDS = """
    src_ip INET, src_port INTEGER, dst_ip INET, dst_port INTEGER, ssrc BIGINT,
    payload_type SMALLINT, codec TEXT, packets BIGINT, lost BIGINT, jitter_max_ms FLOAT,
    jitter_mean_ms FLOAT, first_at TIMESTAMP WITH TIME ZONE, last_at TIMESTAMP WITH TIME ZONE
"""
MEDIA_NAMES = (
    "src_ip, src_port, dst_ip, dst_port, ssrc, payload_type, codec, packets, lost, "
    "jitter_max_ms, jitter_mean_ms, first_at, last_at"
)
TYPES = f"""
CREATE TYPE media_stream AS ({MEDIA_FIELDS});
CREATE TYPE subscriber_info AS (
    id TEXT COLLATE "C", account TEXT, access_line TEXT, pop TEXT, location JSONB);
CREATE TYPE remote_info AS (country TEXT, asn BIGINT, org TEXT);
"""


def _text(obj: str, key: str) -> str:
    return f"CASE WHEN jsonb_typeof({obj}->'{key}') = 'string' THEN {obj}->>'{key}' END"


def _exact(obj: str, fields: dict[str, str]) -> str:
    """SQL: the JSON object `obj` has exactly these keys, each of its JSON type or null."""
    keys = ", ".join(f"'{k}'" for k in sorted(fields))
    types = " AND ".join(
        f"jsonb_typeof({obj}->'{k}') IN ('{t}', 'null')" for k, t in fields.items()
    )
    return (
        f"(jsonb_typeof({obj}) = 'object' AND {types} AND "
        f"ARRAY(SELECT jsonb_object_keys({obj}) ORDER BY 1) = ARRAY[{keys}]::text[])"
    )


SUBSCRIBER = {"id": "string", "account": "string", "access_line": "string", "pop": "string", "location": "object"}  # fmt: skip
REMOTE = {"country": "string", "asn": "number", "org": "string"}

UPGRADE = f"""
ALTER TABLE cdr ADD COLUMN media media_stream[] DEFAULT '{{}}' NOT NULL;
ALTER TABLE cdr RENAME COLUMN subscriber TO subscriber_json;
ALTER TABLE cdr RENAME COLUMN remote TO remote_json;
ALTER TABLE cdr ADD COLUMN subscriber subscriber_info, ADD COLUMN remote remote_info,
    ALTER COLUMN extra DROP NOT NULL, ALTER COLUMN extra DROP DEFAULT;

UPDATE cdr c SET media = m.streams
FROM (SELECT uid, started_at, array_agg(ROW({MEDIA_NAMES})::media_stream ORDER BY ordinal) AS streams
      FROM cdr_media GROUP BY uid, started_at) m
WHERE c.uid = m.uid AND c.started_at = m.started_at;

UPDATE cdr SET
    subscriber = CASE WHEN jsonb_typeof(subscriber_json) = 'object' THEN ROW(
        {_text("subscriber_json", "id")}, {_text("subscriber_json", "account")},
        {_text("subscriber_json", "access_line")}, {_text("subscriber_json", "pop")},
        CASE WHEN jsonb_typeof(subscriber_json->'location') = 'object'
             THEN subscriber_json->'location' END)::subscriber_info END,
    remote = CASE WHEN jsonb_typeof(remote_json) = 'object' THEN ROW(
        {_text("remote_json", "country")},
        CASE WHEN (remote_json->>'asn') ~ '^-?[0-9]{{1,18}}$' THEN (remote_json->>'asn')::bigint END,
        {_text("remote_json", "org")})::remote_info END,
    extra = NULLIF(extra
        || CASE WHEN subscriber_json IS NULL OR {_exact("subscriber_json", SUBSCRIBER)} THEN '{{}}'
                ELSE jsonb_build_object('subscriber', subscriber_json) END
        || CASE WHEN remote_json IS NULL OR {_exact("remote_json", REMOTE)} THEN '{{}}'
                ELSE jsonb_build_object('remote', remote_json) END, '{{}}');

ALTER TABLE cdr DROP COLUMN subscriber_json, DROP COLUMN remote_json;
DROP TABLE cdr_media;
"""


def _ensure_partitions(tables: str) -> str:
    # As in 0001, for the tables that are partitioned by day.
    return f"""
CREATE OR REPLACE FUNCTION voiplog_ensure_day_partitions(day date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    tbl text;
    col text;
    part text;
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    made integer := 0;
    waiting boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(7956807324837735);
    FOREACH tbl IN ARRAY ARRAY[{tables}] LOOP
        part := tbl || '_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        col := CASE tbl WHEN 'registration' THEN 'requested_at' ELSE 'started_at' END;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                       tbl || '_default', col, col)
            INTO waiting USING lo, hi;
        IF waiting THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', part, tbl);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved',
                           tbl || '_default', col, col, part) USING lo, hi;
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           tbl, part, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           part, tbl, lo, hi);
        END IF;
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;
"""


DOWNGRADE = f"""
CREATE TABLE cdr_media (
    uid TEXT COLLATE "C" NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ordinal SMALLINT NOT NULL,
    src_ip INET NOT NULL, src_port INTEGER NOT NULL, dst_ip INET NOT NULL,
    dst_port INTEGER NOT NULL, ssrc BIGINT NOT NULL, payload_type SMALLINT NOT NULL,
    codec TEXT, packets BIGINT NOT NULL, lost BIGINT NOT NULL, jitter_max_ms FLOAT NOT NULL,
    jitter_mean_ms FLOAT NOT NULL, first_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_at TIMESTAMP WITH TIME ZONE NOT NULL
) PARTITION BY RANGE (started_at);
CREATE INDEX ix_cdr_media_started_at ON cdr_media USING brin (started_at);
CREATE TABLE cdr_media_default PARTITION OF cdr_media DEFAULT;
DO $$
DECLARE part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdr'::regclass AND c.relname ~ '^cdr_p[0-9]{{8}}$'
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF cdr_media %s',
                       'cdr_media_' || substr(part.relname, 5), part.bound);
    END LOOP;
END
$$;
INSERT INTO cdr_media (uid, started_at, ordinal, {MEDIA_NAMES})
SELECT c.uid, c.started_at, (m.ordinality - 1)::smallint, {", ".join("m." + n for n in MEDIA_NAMES.split(", "))}
FROM cdr c, unnest(c.media) WITH ORDINALITY AS m;

ALTER TABLE cdr RENAME COLUMN subscriber TO subscriber_typed;
ALTER TABLE cdr RENAME COLUMN remote TO remote_typed;
ALTER TABLE cdr ADD COLUMN subscriber JSONB, ADD COLUMN remote JSONB;
UPDATE cdr SET
    subscriber = COALESCE(extra->'subscriber', to_jsonb(subscriber_typed)),
    remote = COALESCE(extra->'remote', to_jsonb(remote_typed)),
    extra = COALESCE(extra, '{{}}') - 'subscriber' - 'remote';
ALTER TABLE cdr DROP COLUMN subscriber_typed, DROP COLUMN remote_typed, DROP COLUMN media,
    ALTER COLUMN extra SET DEFAULT '{{}}', ALTER COLUMN extra SET NOT NULL;
DROP TYPE media_stream, subscriber_info, remote_info;
"""


def upgrade() -> None:
    op.execute(TYPES)
    op.execute(UPGRADE)
    op.execute(_ensure_partitions("'cdr', 'registration'"))


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(_ensure_partitions("'cdr', 'cdr_media', 'registration'"))
