"""A record stored while its day is being sealed leaves the day due for sealing again.

Before: the writer committed a batch, then, in a transaction of its own,
marked the sealed days among the batch's past days as dirty
(`voiplog_days_touched`); `voiplog_seal_add` cleared the day's mark. A late
record committed after a seal had read its day, but before that seal was
stored, was then in no seal and left no mark: when the day had no seal yet,
the mark found no seal to mark; when it had one, the new seal cleared the
mark. The day stayed as sealed, `voiplog store verify` reported the record as
added, and the purge refused the day. Two drainers, or two POPs' writers on
one database, meet this whenever a late record lands in the second or so a
day takes to seal, which is when late records come: just after midnight.

Now:

- The writer marks every day of a batch in the batch's own transaction
  (`voiplog_days_touched`: every day with its day partitions, sealed or not,
  over or not: no clock decides),
  so a day's mark and the records that made it are committed together. The
  mark names the transaction that made it (`day_dirty.marked_in`, a
  transaction id as `pg_current_xact_id()` gives it; the key is now the day
  and that id). Each transaction adds its own mark and takes away those it
  sees committed, skipping any another transaction holds: no writer waits
  for another's mark, however long that one's transaction stays open.
- `voiplog_seal_stage` keeps the snapshot its leaves were read in, and
  `voiplog_seal_add` clears only marks made by transactions that snapshot
  sees: exactly those whose records the seal covers. A mark made by a
  transaction it does not see stays, whether made before the seal is stored
  or after (a mark another transaction holds is skipped, and left), and the
  day is sealed again. A seal
  given its keys and leaves by its caller, not staged, clears no mark (the
  day is sealed again, to the same root: no version is added). Marks made
  before this migration name no transaction (0), and are cleared as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_0007 = import_module("voiplog.migrations.versions.0007_tamper_evident")
_0008 = import_module("voiplog.migrations.versions.0008_seal_leaf_form")


def _replaced(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:  # pragma: no cover - frozen texts, checked on import
        raise RuntimeError(f"the text of an earlier migration no longer has {old!r} once")
    return text.replace(old, new, 1)


_STAGE_BEFORE = _replaced(_0008.SEAL_STAGE, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")
# The snapshot is taken in the statement that reads the leaves: the day
# functions are STABLE, so they read the day in that statement's snapshot.
SEAL_STAGE = _replaced(
    _replaced(
        _replaced(
            _STAGE_BEFORE,
            "        leaves bytea NOT NULL\n",
            "        leaves bytea NOT NULL,\n        seen pg_snapshot NOT NULL\n",
        ),
        "(day, records, keys, leaves)",
        "(day, records, keys, leaves, seen)",
    ),
    "x.records, x.keys, x.leaves FROM voiplog_day_leaves(day) x;",
    "x.records, x.keys, x.leaves, pg_current_snapshot()\n    FROM voiplog_day_leaves(day) x;",
)

_SEAL_ADD_BEFORE = _0008.seal_add(2)
SEAL_ADD = _replaced(
    _replaced(
        _replaced(
            _SEAL_ADD_BEFORE,
            "    prev text;\n",
            "    prev text;\n    seen pg_snapshot;  -- what the staged leaves were read in\n",
        ),
        "SELECT s.keys, s.leaves INTO keys, leaves FROM",
        "SELECT s.keys, s.leaves, s.seen INTO keys, leaves, seen FROM",
    ),
    "DELETE FROM day_dirty y WHERE y.day = voiplog_seal_add.day;",
    "DELETE FROM day_dirty y WHERE y.ctid IN (\n"
    "        SELECT x.ctid FROM day_dirty x WHERE x.day = voiplog_seal_add.day AND seen IS NOT NULL\n"
    "          AND (x.marked_in = 0 OR pg_visible_in_snapshot(x.marked_in::text::xid8, seen))\n"
    "        FOR UPDATE SKIP LOCKED);",
)

# Every day of a batch that has its day partitions (records of other days are
# in the default partitions, which are never sealed). Each transaction adds a
# mark of its own, so that no writer ever waits for another's mark (a writer
# whose transaction stalls after marking today must not hold every other one);
# it takes away the marks it sees committed, which its own stands for (a seal
# that does not see them does not see it either), skipping any that another
# transaction holds: a day has about as many marks as writers at once.
DAYS_TOUCHED = """
CREATE OR REPLACE FUNCTION voiplog_days_touched(days date[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    me bigint := pg_current_xact_id()::text::bigint;
    wanted date[];
    made integer;
BEGIN
    SELECT array_agg(DISTINCT u) INTO wanted FROM unnest(days) u
    WHERE to_regclass('cdr_p' || to_char(u, 'YYYYMMDD')) IS NOT NULL;
    IF wanted IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM day_dirty y WHERE y.ctid IN (
        SELECT x.ctid FROM day_dirty x WHERE x.day = ANY (wanted) AND x.marked_in <> me
        FOR UPDATE SKIP LOCKED);
    INSERT INTO day_dirty (day, marked_in) SELECT u, me FROM unnest(wanted) u
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS made = ROW_COUNT;
    RETURN made;
END
$fn$;
"""

# Migration 0007's: sealed days only, in a transaction of their own.
_DAYS_TOUCHED_0007 = _0007.SEALS[
    _0007.SEALS.index("CREATE FUNCTION voiplog_days_touched") : _0007.SEALS.index(
        "REVOKE ALL ON FUNCTION voiplog_days_touched"
    )
]
DAYS_TOUCHED_BEFORE = _replaced(_DAYS_TOUCHED_0007, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def upgrade() -> None:
    # 0: a mark made before this migration, by a transaction no longer known.
    op.execute("ALTER TABLE day_dirty ADD COLUMN marked_in bigint NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE day_dirty DROP CONSTRAINT pk_day_dirty, "
               "ADD CONSTRAINT pk_day_dirty PRIMARY KEY (day, marked_in)")  # fmt: skip
    op.execute(SEAL_STAGE)
    op.execute(SEAL_ADD)
    op.execute(DAYS_TOUCHED)


def downgrade() -> None:
    op.execute(DAYS_TOUCHED_BEFORE)
    op.execute(_SEAL_ADD_BEFORE)
    op.execute(_STAGE_BEFORE)
    op.execute("DELETE FROM day_dirty y USING day_dirty x "
               "WHERE x.day = y.day AND x.marked_in < y.marked_in")  # fmt: skip
    op.execute("ALTER TABLE day_dirty DROP CONSTRAINT pk_day_dirty, "
               "ADD CONSTRAINT pk_day_dirty PRIMARY KEY (day)")  # fmt: skip
    op.execute("ALTER TABLE day_dirty DROP COLUMN marked_in")
