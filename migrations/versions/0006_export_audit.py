"""Evidence exports: an audit row of its own for each bundle that leaves the ISP.

An export reads its records through `voiplog_request_run`, which writes the
`request.run` audit row of that read. What was delivered (the bundle, named
by the SHA-256 of its manifest, the files and their record counts, the
target) is then written by `voiplog_export_record` as an `export` row. The
function accepts only a run of the same request, by the same login, made in
the same transaction, and only while the request is `disclosed`: an export
row always stands beside the read it delivers, and a bundle's manifest names
the number of that read's row.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SIGNATURE = "voiplog_export_record(integer, bigint, text, text, jsonb, text, text)"
RUN = "voiplog_request_run(integer, boolean, text, text, text, integer, timestamptz, timestamptz)"
RUN_WORK_MEM = "256MB"

EXPORT_RECORD = """
CREATE FUNCTION voiplog_export_record(request_id integer, records_seq bigint,
                                      manifest_sha256 text, target text, files jsonb,
                                      os_user text, client_host text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    r access_request;
    read audit_event;
BEGIN
    SELECT * INTO r FROM access_request a WHERE a.id = request_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'request % does not exist', request_id;
    END IF;
    IF r.state <> 'disclosed' THEN
        RAISE EXCEPTION 'request % is %: only a disclosed request is exported', request_id, r.state;
    END IF;
    IF manifest_sha256 !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'manifest hash % is not a SHA-256 in hex', manifest_sha256;
    END IF;
    SELECT * INTO read FROM audit_event e WHERE e.seq = records_seq;
    -- now() is the start of this transaction; the run's row took clock_timestamp().
    IF NOT FOUND OR read.action <> 'request.run' OR read.request_id IS DISTINCT FROM request_id
            OR read.event->>'outcome' <> 'ok' OR read.event->>'db_role' <> session_user::text
            OR read.at < now() THEN
        RAISE EXCEPTION 'audit row % is not a run of request % by % in this transaction',
            records_seq, request_id, session_user;
    END IF;
    RETURN voiplog_audit_append(voiplog_request_event(r, 'export', 'ok', os_user, client_host)
        || jsonb_build_object('records_seq', records_seq, 'manifest_sha256', manifest_sha256,
                              'delivery', target, 'files', files,
                              'records', read.event->'records',
                              'truncated', read.event->'truncated'));
END
$fn$;
REVOKE ALL ON FUNCTION {signature} FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(EXPORT_RECORD.replace("{signature}", SIGNATURE))
    op.execute(f"ALTER FUNCTION {RUN} SET work_mem = '{RUN_WORK_MEM}'")


def downgrade() -> None:
    op.execute(f"ALTER FUNCTION {RUN} RESET work_mem")
    op.execute(f"DROP FUNCTION {SIGNATURE}")
