"""Call sessions: the legs of one call behind a B2BUA come out of a search together.

Each call record carries `session_uid` (the same on the linked legs of one call
behind a B2BUA, else the record's own uid) and `session_link` (the evidence
that linked it, null when not linked), in its `extra` column; a record stored
before them is a session of its own. A lawful-access run returns, beside every call
record it matches, the records of the same session: those linked to it (found
through a partial index on the session uid of linked records, which only B2BUA
legs fill, so the day being written keeps its speed) and the leg the session
is named after (by uid, within an hour of the matched record). Linked legs are counted, and disclosed, as records of the
run: the search itself is that of migration 0005, otherwise unchanged.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from importlib import import_module

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RUN_ARGS = "integer, boolean, text, text, text, integer, timestamptz, timestamptz"
RUN_WORK_MEM = "256MB"  # as migration 0006 set it

INDEX = """
CREATE INDEX cdr_session_uid_idx ON cdr ((extra->>'session_uid'))
WHERE (extra->>'session_link') IS NOT NULL
"""

# The search of migration 0005 (renamed to voiplog_request_run_records by 0007).
_BEFORE = import_module("voiplog.migrations.versions.0005_lawful_access")._RUN.replace(
    "CREATE FUNCTION voiplog_request_run(",
    "CREATE OR REPLACE FUNCTION voiplog_request_run_records(",
    1,
)

# Where the search's query is complete: the linked legs are added around it.
_ANCHOR = """    || COALESCE(' UNION ALL ' || NULLIF(array_to_string(binding, ' UNION ALL '), ''), '');
"""

# The matched rows (m), the session uids of the call records among them (s),
# then the records of those sessions: linked legs by the partial index, and the
# leg a session is named after by its uid (near the matched record's time, the
# primary key's order), from the live table within retention and from held copies.
_LINKED = """    query := format(
        'WITH m AS MATERIALIZED (%1$s), '
        's AS (SELECT DISTINCT COALESCE(m.doc->>''session_uid'', m.uid) AS sid, m.uid, m.t FROM m '
        '      WHERE m.source <> ''registration'' AND m.doc->>''kind'' = ''sip'') '
        'SELECT * FROM m '
        'UNION ALL SELECT ''cdr'', l.uid::text, l.started_at, '
        '(to_jsonb(l) - ''extra'' - ''stored_at'') || COALESCE(l.extra, ''{}''), 0 '
        'FROM s JOIN cdr l ON (l.extra->>''session_link'') IS NOT NULL '
        'AND (l.extra->>''session_uid'') = s.sid '
        'AND l.started_at >= s.t - interval ''1 day'' AND l.started_at < s.t + interval ''1 day'' '
        'WHERE COALESCE(l.ended_at, l.started_at) >= %2$L '
        'UNION ALL SELECT ''cdr'', l.uid::text, l.started_at, '
        '(to_jsonb(l) - ''extra'' - ''stored_at'') || COALESCE(l.extra, ''{}''), 0 '
        'FROM s JOIN cdr l ON s.sid <> s.uid AND l.uid = s.sid '
        'AND l.started_at >= s.t - interval ''1 hour'' AND l.started_at < s.t + interval ''1 hour'' '
        'WHERE COALESCE(l.ended_at, l.started_at) >= %2$L '
        'UNION ALL SELECT ''held'', h.uid, h.started_at, h.record, 1 '
        'FROM s JOIN held_record h ON h.kind <> ''registration'' '
        'AND (h.record->>''session_uid'' = s.sid OR h.uid = s.sid) '
        'AND h.started_at >= s.t - interval ''1 day'' AND h.started_at < s.t + interval ''1 day''',
        query, live_lo);
"""

if _BEFORE.count(_ANCHOR) != 1:  # pragma: no cover - a frozen text, checked on import
    raise RuntimeError("migration 0005's search is not the one 0009 extends")
_AFTER = _BEFORE.replace(_ANCHOR, _ANCHOR + _LINKED, 1)


def upgrade() -> None:
    op.execute(INDEX)
    op.execute(_AFTER)
    # CREATE OR REPLACE resets the function's settings.
    op.execute(
        f"ALTER FUNCTION voiplog_request_run_records({RUN_ARGS}) SET work_mem = '{RUN_WORK_MEM}'"
    )
    op.execute(f"REVOKE ALL ON FUNCTION voiplog_request_run_records({RUN_ARGS}) FROM PUBLIC")


def downgrade() -> None:
    op.execute(_BEFORE)
    op.execute(
        f"ALTER FUNCTION voiplog_request_run_records({RUN_ARGS}) SET work_mem = '{RUN_WORK_MEM}'"
    )
    op.execute("DROP INDEX cdr_session_uid_idx")
