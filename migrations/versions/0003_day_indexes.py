"""Look-up indexes on days that are over: the day being written takes rows at full speed.

The hash indexes on caller, callee and subscriber_ip took a third of the
ingest rate, filled row by row as records landed. They move from the
partitioned `cdr` table to each day partition, built once the day is over
(`voiplog_index_closed_days`, which the writer calls when it connects, every
ten minutes and as it closes) as B-trees: a sorted bulk build costs about what
hashing each row as it lands did, but at night rather than at the busy hour,
and B-trees also answer prefix questions (numbers starting with a prefix, in
the "C" collation). Questions about the current day scan its partition. The
default partition (records far outside the window, rare) is always indexed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("caller", "callee", "subscriber_ip")

# Days before `before` (UTC) whose cdr partition lacks one of the indexes get
# them. Under an advisory lock so that two writers do not build the same index
# at once; SECURITY DEFINER so that the writer role, which may not create
# anything, can have its finished days indexed. Returns the partitions indexed.
INDEX_CLOSED_DAYS = f"""
CREATE FUNCTION voiplog_index_closed_days(before date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    part text;
    col text;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7956807324837736);
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'cdr'::regclass
          AND c.relname ~ '^cdr_p[0-9]{{8}}$'
          AND to_date(substr(c.relname, 6), 'YYYYMMDD') < before
          AND (SELECT count(*) FROM pg_index x JOIN pg_class n ON n.oid = x.indexrelid
               WHERE x.indrelid = c.oid AND n.relname LIKE c.relname || '\\_%\\_idx')
              < {len(COLUMNS)}
        ORDER BY c.relname
    LOOP
        FOREACH col IN ARRAY ARRAY[{", ".join(f"'{c}'" for c in COLUMNS)}] LOOP
            EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (%I)',
                           part || '_' || col || '_idx', part, col);
        END LOOP;
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_index_closed_days(date) FROM PUBLIC;
"""


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(f"DROP INDEX ix_cdr_{column}")
        op.execute(f"CREATE INDEX cdr_default_{column}_idx ON cdr_default ({column})")
    op.execute(INDEX_CLOSED_DAYS)
    # Days already over are indexed again now (a bulk build per partition).
    op.execute("SELECT voiplog_index_closed_days((now() AT TIME ZONE 'UTC')::date)")


def downgrade() -> None:
    op.execute("DROP FUNCTION voiplog_index_closed_days(date)")
    op.execute(
        f"""
        DO $$
        DECLARE idx text;
        BEGIN
            FOR idx IN
                SELECT n.relname FROM pg_inherits i
                JOIN pg_index x ON x.indrelid = i.inhrelid
                JOIN pg_class n ON n.oid = x.indexrelid
                WHERE i.inhparent = 'cdr'::regclass
                  AND n.relname ~ '_({"|".join(COLUMNS)})_idx$'
            LOOP
                EXECUTE format('DROP INDEX %I', idx);
            END LOOP;
        END
        $$
        """
    )
    for column in COLUMNS:
        op.execute(f"CREATE INDEX ix_cdr_{column} ON cdr USING hash ({column})")
