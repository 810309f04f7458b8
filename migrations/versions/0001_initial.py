"""Initial store: day-partitioned records, media, registrations, holds, purge log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = """
CREATE TABLE cdr (
    uid TEXT COLLATE "C" NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    caller TEXT COLLATE "C",
    callee TEXT COLLATE "C",
    caller_uri TEXT,
    callee_uri TEXT,
    request_uri TEXT,
    caller_ip INET,
    caller_port INTEGER,
    callee_ip INET,
    callee_port INTEGER,
    transport TEXT NOT NULL,
    subscriber_ip INET,
    direction TEXT,
    ringing_at TIMESTAMP WITH TIME ZONE,
    answered_at TIMESTAMP WITH TIME ZONE,
    ended_at TIMESTAMP WITH TIME ZONE,
    duration_s FLOAT NOT NULL,
    setup_ms INTEGER,
    disposition TEXT NOT NULL,
    final_status SMALLINT,
    ended_by TEXT,
    user_agent TEXT,
    flags TEXT[] DEFAULT '{}' NOT NULL,
    subscriber JSONB,
    remote JSONB,
    version SMALLINT NOT NULL,
    extra JSONB DEFAULT '{}' NOT NULL,
    pop TEXT,
    sensor TEXT,
    stored_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_cdr PRIMARY KEY (started_at, uid)
) PARTITION BY RANGE (started_at);
CREATE INDEX ix_cdr_caller ON cdr USING hash (caller);
CREATE INDEX ix_cdr_callee ON cdr USING hash (callee);
CREATE INDEX ix_cdr_subscriber_ip ON cdr USING hash (subscriber_ip);

CREATE TABLE cdr_media (
    uid TEXT COLLATE "C" NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ordinal SMALLINT NOT NULL,
    src_ip INET NOT NULL,
    src_port INTEGER NOT NULL,
    dst_ip INET NOT NULL,
    dst_port INTEGER NOT NULL,
    ssrc BIGINT NOT NULL,
    payload_type SMALLINT NOT NULL,
    codec TEXT,
    packets BIGINT NOT NULL,
    lost BIGINT NOT NULL,
    jitter_max_ms FLOAT NOT NULL,
    jitter_mean_ms FLOAT NOT NULL,
    first_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_at TIMESTAMP WITH TIME ZONE NOT NULL
) PARTITION BY RANGE (started_at);
CREATE INDEX ix_cdr_media_started_at ON cdr_media USING brin (started_at);

CREATE TABLE registration (
    uid TEXT COLLATE "C" NOT NULL,
    requested_at TIMESTAMP WITH TIME ZONE NOT NULL,
    kind TEXT NOT NULL,
    call_id TEXT,
    aor TEXT,
    "user" TEXT COLLATE "C",
    contact_uri TEXT,
    contact_ip INET,
    contact_port INTEGER,
    source_ip INET,
    source_port INTEGER,
    registrar_ip INET,
    registrar_port INTEGER,
    transport TEXT,
    expires_s INTEGER,
    auth_user TEXT,
    user_agent TEXT,
    status SMALLINT,
    result TEXT,
    answered_at TIMESTAMP WITH TIME ZONE,
    subscriber_ip INET,
    direction TEXT,
    subscriber JSONB,
    flags TEXT[] DEFAULT '{}' NOT NULL,
    version SMALLINT NOT NULL,
    extra JSONB DEFAULT '{}' NOT NULL,
    pop TEXT,
    sensor TEXT,
    stored_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_registration PRIMARY KEY (requested_at, uid)
) PARTITION BY RANGE (requested_at);
CREATE INDEX ix_registration_user ON registration ("user");
CREATE INDEX ix_registration_source_ip ON registration (source_ip);

CREATE TABLE cdr_default PARTITION OF cdr DEFAULT;
CREATE TABLE cdr_media_default PARTITION OF cdr_media DEFAULT;
CREATE TABLE registration_default PARTITION OF registration DEFAULT;

CREATE TABLE legal_hold (
    id SERIAL NOT NULL,
    case_ref TEXT NOT NULL,
    selector TEXT NOT NULL,
    value TEXT NOT NULL,
    valid_from TIMESTAMP WITH TIME ZONE NOT NULL,
    valid_to TIMESTAMP WITH TIME ZONE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    created_by TEXT NOT NULL,
    released_at TIMESTAMP WITH TIME ZONE,
    released_by TEXT,
    CONSTRAINT pk_legal_hold PRIMARY KEY (id),
    CONSTRAINT ck_legal_hold_selector CHECK (selector IN ('number', 'ip', 'subscriber')),
    CONSTRAINT ck_legal_hold_window CHECK (valid_to > valid_from)
);

CREATE TABLE held_record (
    hold_id INTEGER NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
    record JSONB NOT NULL,
    held_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_held_record PRIMARY KEY (hold_id, uid),
    CONSTRAINT fk_held_record_hold_id_legal_hold FOREIGN KEY (hold_id) REFERENCES legal_hold (id)
);
CREATE INDEX ix_held_record_started_at ON held_record (started_at);

CREATE TABLE purge_log (
    id SERIAL NOT NULL,
    purged_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    os_user TEXT NOT NULL,
    db_user TEXT DEFAULT current_user NOT NULL,
    cutoff TIMESTAMP WITH TIME ZONE NOT NULL,
    partitions TEXT[] NOT NULL,
    rows_dropped BIGINT NOT NULL,
    rows_held BIGINT NOT NULL,
    held_released BIGINT NOT NULL,
    CONSTRAINT pk_purge_log PRIMARY KEY (id)
);
"""

# Creates the day partitions of `day` (UTC) of every partitioned table, moving
# rows of that day out of the default partition first. SECURITY DEFINER so that
# the insert-only writer role can call it without owning the tables; the lock
# serialises POPs creating the same day at once.
ENSURE_PARTITIONS = """
CREATE FUNCTION voiplog_ensure_day_partitions(day date) RETURNS integer
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
    FOREACH tbl IN ARRAY ARRAY['cdr', 'cdr_media', 'registration'] LOOP
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
REVOKE ALL ON FUNCTION voiplog_ensure_day_partitions(date) FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(ENSURE_PARTITIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION voiplog_ensure_day_partitions(date)")
    for table in ("purge_log", "held_record", "legal_hold", "registration", "cdr_media", "cdr"):
        op.execute(f"DROP TABLE {table} CASCADE")
