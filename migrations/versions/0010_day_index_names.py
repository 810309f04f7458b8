"""Day indexes: a day that is over lacks a look-up index only if one of its own is missing.

`voiplog_index_closed_days` (migration 0003) took a day partition as indexed
when it had three indexes named like its look-up indexes (`<partition>_..._idx`).
Since migration 0009 every partition also has the partial index of linked B2BUA
legs, which Postgres names `<partition>_expr_idx`: a day missing one of its three
look-up indexes (one dropped by hand, say) counted three and was never indexed
again. The function now looks for the three by their exact names; what it builds,
its lock, owner and grants are those of migration 0003.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from importlib import import_module

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_0003 = import_module("voiplog.migrations.versions.0003_day_indexes")
_BEFORE = _0003.INDEX_CLOSED_DAYS.replace(
    "CREATE FUNCTION voiplog_index_closed_days(",
    "CREATE OR REPLACE FUNCTION voiplog_index_closed_days(",
    1,
)
_COUNTED = "WHERE x.indrelid = c.oid AND n.relname LIKE c.relname || '\\_%\\_idx')"
_NAMED = "WHERE x.indrelid = c.oid AND n.relname IN ({}))".format(
    ", ".join(f"c.relname || '_{column}_idx'" for column in _0003.COLUMNS)
)
assert _COUNTED in _BEFORE
_AFTER = _BEFORE.replace(_COUNTED, _NAMED, 1)


def upgrade() -> None:
    op.execute(_AFTER)
    # Days over that lack one of their look-up indexes get it now.
    op.execute("SELECT voiplog_index_closed_days((now() AT TIME ZONE 'UTC')::date)")


def downgrade() -> None:
    op.execute(_BEFORE)
