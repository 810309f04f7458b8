"""Day partitions are made without waiting for the readers of the record tables.

`voiplog_ensure_day_partitions` made a day with `CREATE TABLE ... PARTITION
OF`, which takes an ACCESS EXCLUSIVE lock on `cdr` (or `registration`): it
waited for every transaction reading the table (a seal, a lawful-access run,
an export, a session in psql) to end, and every writer's COPY queued behind
it. A writer whose batch needed a new day (a daemon up for longer than its
partitions ahead, records of a past day) stalled for as long as the longest
reader, and past its lock timeout took the database for down. A day is now
made as migration 0001 made one whose records had landed in the default
partition first: a table like the parent (its defaults, constraints, storage
and compression), then `ALTER TABLE ... ATTACH PARTITION`, which takes a
SHARE UPDATE EXCLUSIVE lock on the parent (readers and writers go on) and an
ACCESS EXCLUSIVE one on the new table and on the default partition (which
only records far outside the partition window reach, and reads spanning days
that have no partition). The parent's indexes, triggers and foreign keys are
made on the new table as it is attached, as for `PARTITION OF`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_0004 = import_module("voiplog.migrations.versions.0004_one_row_per_call")

# As migration 0007 left it.
ENSURE_BEFORE = _0004._ensure_partitions("'cdr', 'registration'").replace(
    "INCLUDING DEFAULTS)", "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
)

ENSURE = """
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
    FOREACH tbl IN ARRAY ARRAY['cdr', 'registration'] LOOP
        part := tbl || '_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        col := CASE tbl WHEN 'registration' THEN 'requested_at' ELSE 'started_at' END;
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                       'INCLUDING STORAGE INCLUDING COMPRESSION)', part, tbl);
        -- Records of the day that came before it had a partition move in first.
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                       tbl || '_default', col, col)
            INTO waiting USING lo, hi;
        IF waiting THEN
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 RETURNING *)'
                           ' INSERT INTO %I SELECT * FROM moved',
                           tbl || '_default', col, col, part) USING lo, hi;
        END IF;
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       tbl, part, lo, hi);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;
"""


def upgrade() -> None:
    op.execute(ENSURE)


def downgrade() -> None:
    op.execute(ENSURE_BEFORE)
