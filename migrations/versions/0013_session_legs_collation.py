"""A lawful-access run finds the linked legs of its calls through their index again.

Migration 0009 looks up the linked legs of each matched call by
`(extra->>'session_uid') = s.sid`, where `s.sid` is the call's session uid or,
for a call never linked, its `uid`: a column of collation "C". The partial
index on the session uid of linked legs has the database's default collation,
so Postgres could not use it for that comparison, and where it planned the
lookup as a loop over the matched calls (it estimates few of them after
filtering their JSON), each call read two days of every partition's primary
key instead. On the export benchmark's data a run returning 20,000 calls
took 29 s (0.44 s for the same lookup with the index; 100,000 calls, planned
as a hash join, took 2.5 s). The comparison is now made in the index's
collation; equality means the same in both (both are deterministic), so the
same legs are found.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from importlib import import_module

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_0009 = import_module("voiplog.migrations.versions.0009_call_sessions")

_BY_SESSION = "'AND (l.extra->>''session_uid'') = s.sid '"
if _0009._AFTER.count(_BY_SESSION) != 1:  # pragma: no cover - a frozen text, checked on import
    raise RuntimeError("migration 0009's session lookup is not the one 0013 changes")
_AFTER = _0009._AFTER.replace(
    _BY_SESSION, "'AND (l.extra->>''session_uid'') = s.sid COLLATE \"default\" '", 1
)


def _define(text: str) -> None:
    op.execute(text)
    # CREATE OR REPLACE resets the function's settings (as migration 0009 says).
    op.execute(
        f"ALTER FUNCTION voiplog_request_run_records({_0009.RUN_ARGS}) "
        f"SET work_mem = '{_0009.RUN_WORK_MEM}'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION voiplog_request_run_records({_0009.RUN_ARGS}) FROM PUBLIC")


def upgrade() -> None:
    _define(_AFTER)


def downgrade() -> None:
    _define(_0009._AFTER)
