-- Least-privilege roles of the voiplog store. Run once per database as a
-- superuser (or the database owner), after `voiplog db upgrade`:
--
--   psql -v ON_ERROR_STOP=1 -d voiplog -f roles.sql
--   ALTER ROLE voiplog_pop_ams1 LOGIN PASSWORD '...';  GRANT voiplog_writer TO voiplog_pop_ams1;
--
-- voiplog_writer: what a POP's daemon needs and nothing more. It can insert
--   records (cdr, registration) and have day partitions made (through
--   the SECURITY DEFINER function voiplog_ensure_day_partitions) and have the
--   days that are over indexed (voiplog_index_closed_days); it cannot
--   read, change or delete a record, and cannot see holds, purge log or leases.
--   It reads the schema revision (alembic_version) to refuse a schema it does
--   not know, and the uid/started_at of records to skip ones stored before.
-- voiplog_admin: purge, legal holds, lease imports. It owns the tables
--   (partitions are dropped by their owner), so migrations run as this role too.
-- voiplog_lease_reader: reads the lease and port-block tables, for a daemon
--   configured with enrichment.leases_from_database (grant it next to the
--   writer role); nothing else.
--
-- Both are group roles (NOLOGIN); grant them to login roles.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voiplog_writer') THEN
        CREATE ROLE voiplog_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voiplog_admin') THEN
        CREATE ROLE voiplog_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voiplog_lease_reader') THEN
        CREATE ROLE voiplog_lease_reader NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO voiplog_writer, voiplog_admin, voiplog_lease_reader;
GRANT CREATE ON SCHEMA public TO voiplog_admin;

-- The admin owns everything voiplog made (tables, partitions, types, functions).
ALTER TABLE cdr OWNER TO voiplog_admin;
ALTER TABLE registration OWNER TO voiplog_admin;
ALTER TABLE legal_hold OWNER TO voiplog_admin;
ALTER TABLE held_record OWNER TO voiplog_admin;
ALTER TABLE purge_log OWNER TO voiplog_admin;
ALTER TABLE lease OWNER TO voiplog_admin;
ALTER TABLE cgnat_block OWNER TO voiplog_admin;
ALTER TABLE alembic_version OWNER TO voiplog_admin;
DO $$
DECLARE part record;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('cdr', 'registration')
    LOOP
        EXECUTE format('ALTER TABLE %I OWNER TO voiplog_admin', part.relname);
    END LOOP;
END
$$;
ALTER TYPE media_stream OWNER TO voiplog_admin;
ALTER TYPE subscriber_info OWNER TO voiplog_admin;
ALTER TYPE remote_info OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_ensure_day_partitions(date) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_index_closed_days(date) OWNER TO voiplog_admin;

-- Writer: insert records, nothing else.
REVOKE ALL ON cdr, registration, legal_hold, held_record, purge_log, lease, cgnat_block
    FROM voiplog_writer;
GRANT INSERT ON cdr, registration TO voiplog_writer;
GRANT SELECT (uid, started_at) ON cdr TO voiplog_writer;
GRANT SELECT ON alembic_version TO voiplog_writer;
GRANT EXECUTE ON FUNCTION voiplog_ensure_day_partitions(date) TO voiplog_writer;
GRANT EXECUTE ON FUNCTION voiplog_index_closed_days(date) TO voiplog_writer;

-- Lease reader: the lease and port-block tables, read only.
GRANT SELECT ON lease, cgnat_block TO voiplog_lease_reader;

-- Lawful access (migration 0005). Group roles, NOLOGIN, granted to the login
-- role of each person (never one login shared by two people: the database
-- tells the registrar of a request from its approver by login role).
-- voiplog_requester: registers requests, runs approved ones, cancels them.
-- voiplog_approver: approves or rejects requests registered by someone else.
-- voiplog_auditor: reads the audit trail and the requests, nothing else.
-- None of them can read a record table: records are read only through
-- voiplog_request_run, which checks the request and writes the audit row.
-- voiplog_audit_owner owns the audit trail and its writer function; nobody
-- logs in as it or is granted it, so that not even the admin can switch off
-- the triggers that keep audit_event append-only.
DO $$
DECLARE role text;
BEGIN
    FOREACH role IN ARRAY ARRAY['voiplog_requester', 'voiplog_approver', 'voiplog_auditor',
                                'voiplog_audit_owner'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role);
        END IF;
    END LOOP;
END
$$;
GRANT USAGE ON SCHEMA public TO voiplog_requester, voiplog_approver, voiplog_auditor,
    voiplog_audit_owner;

ALTER TABLE access_request OWNER TO voiplog_admin;
ALTER TABLE audit_event OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_hash(bigint, timestamptz, text, jsonb) OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_append(jsonb) OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_denied(text, integer, text, text, text) OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_prune(integer, text, text) OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_refuse() OWNER TO voiplog_audit_owner;
ALTER FUNCTION voiplog_audit_hold() OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_audit_purge() OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_access_request_guard() OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_request_event(access_request, text, text, text, text) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_request_register(text, text, text, text, text, text, text, timestamptz,
    timestamptz, timestamptz, timestamptz, jsonb, jsonb, boolean, integer, text, text, text)
    OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_request_decide(integer, text, text, boolean, text, text) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_requests_expire(text, text) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_request_run(integer, boolean, text, text, text, integer, timestamptz,
    timestamptz) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_request_run_proven(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_access_match(jsonb, text) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_access_field(text, text, text) OWNER TO voiplog_admin;
ALTER FUNCTION voiplog_uri_user(text) OWNER TO voiplog_admin;

-- Nobody but the admin reads a record table (the writer keeps the uid and
-- start time of cdr, granted above, to skip records stored before).
REVOKE ALL ON cdr, registration, legal_hold, held_record, purge_log, lease, cgnat_block,
    access_request, audit_event
    FROM voiplog_requester, voiplog_approver, voiplog_auditor, PUBLIC;
REVOKE ALL ON access_request, audit_event FROM voiplog_writer;
REVOKE ALL ON FUNCTION voiplog_request_register(text, text, text, text, text, text, text,
    timestamptz, timestamptz, timestamptz, timestamptz, jsonb, jsonb, boolean, integer, text,
    text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION voiplog_request_decide(integer, text, text, boolean, text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION voiplog_requests_expire(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION voiplog_request_run(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION voiplog_request_run_proven(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) FROM PUBLIC;

GRANT SELECT ON alembic_version, access_request
    TO voiplog_requester, voiplog_approver, voiplog_auditor;
GRANT SELECT ON audit_event TO voiplog_auditor, voiplog_admin;
-- voiplog_audit_denied names the case of the request it reports on.
GRANT SELECT (id, case_ref) ON access_request TO voiplog_audit_owner;
GRANT EXECUTE ON FUNCTION voiplog_audit_append(jsonb) TO voiplog_admin;
GRANT EXECUTE ON FUNCTION voiplog_audit_prune(integer, text, text) TO voiplog_admin;
GRANT EXECUTE ON FUNCTION voiplog_audit_denied(text, integer, text, text, text)
    TO voiplog_requester, voiplog_approver, voiplog_auditor, voiplog_admin;
GRANT EXECUTE ON FUNCTION voiplog_requests_expire(text, text)
    TO voiplog_requester, voiplog_approver, voiplog_auditor;
GRANT EXECUTE ON FUNCTION voiplog_request_register(text, text, text, text, text, text, text,
    timestamptz, timestamptz, timestamptz, timestamptz, jsonb, jsonb, boolean, integer, text,
    text, text) TO voiplog_requester;
GRANT EXECUTE ON FUNCTION voiplog_request_decide(integer, text, text, boolean, text, text)
    TO voiplog_requester, voiplog_approver;
GRANT EXECUTE ON FUNCTION voiplog_request_run(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) TO voiplog_requester;
-- The same run, with the records' inclusion proofs (migration 0012): for exports.
GRANT EXECUTE ON FUNCTION voiplog_request_run_proven(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) TO voiplog_requester;
ALTER FUNCTION voiplog_index_uri_users(date) OWNER TO voiplog_admin;
-- An export writes what it delivered beside the run that read its records.
ALTER FUNCTION voiplog_export_record(integer, bigint, text, text, jsonb, text, text)
    OWNER TO voiplog_admin;
REVOKE ALL ON FUNCTION voiplog_export_record(integer, bigint, text, text, jsonb, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION voiplog_export_record(integer, bigint, text, text, jsonb, text, text)
    TO voiplog_requester;
-- Tamper evidence (migration 0007). The writer inserts every column of a
-- record but inserted_by and stored_at, which the database fills (the login
-- and the time). An admin binds each writer login to its POP, whose records
-- alone it may then write:
--   INSERT INTO writer_pop (role, pop) VALUES ('voiplog_pop_ams1', 'ams1');
-- Day seals are append-only and belong to voiplog_audit_owner, as the audit
-- trail does; their leaves (dropped with the day) belong to the admin.
DO $$
DECLARE
    tbl text;
    cols text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['cdr', 'registration'] LOOP
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
        FROM pg_attribute WHERE attrelid = tbl::regclass AND attnum > 0 AND NOT attisdropped
          AND attname NOT IN ('stored_at', 'inserted_by');
        EXECUTE format('REVOKE INSERT ON %I FROM voiplog_writer', tbl);
        EXECUTE format('GRANT INSERT (%s) ON %I TO voiplog_writer', cols, tbl);
    END LOOP;
END
$$;
GRANT SELECT (uid, requested_at) ON registration TO voiplog_writer;
ALTER TABLE writer_pop OWNER TO voiplog_admin;
ALTER TABLE record_conflict OWNER TO voiplog_admin;
ALTER TABLE day_dirty OWNER TO voiplog_admin;
ALTER TABLE day_seal_leaves OWNER TO voiplog_admin;
ALTER TABLE day_seal OWNER TO voiplog_audit_owner;
REVOKE ALL ON writer_pop, record_conflict, day_dirty, day_seal_leaves, day_seal
    FROM voiplog_writer, voiplog_requester, voiplog_approver, voiplog_auditor, PUBLIC;
GRANT SELECT, INSERT ON day_seal TO voiplog_admin;
GRANT SELECT ON day_seal TO voiplog_auditor;
DO $$
DECLARE fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'voiplog_pop_bindings()', 'voiplog_pop_bindings_refresh()',
        'voiplog_pop_bound(text, text)', 'voiplog_pop_unbound(text, text)',
        'voiplog_pop_refuse(text, text, text)', 'voiplog_record_conflicts(text, jsonb)',
        'voiplog_content_sha256(jsonb)',
        'voiplog_day_leaves(date)', 'voiplog_record_leaf(text)',
        'voiplog_day_leaves_v1(date)', 'voiplog_record_leaf_v1(text)', 'voiplog_day_hashes(date)',
        'voiplog_seal_hash(bigint, date, integer, bigint, text, timestamptz, text, text, bytea)',
        'voiplog_days_to_seal(date)',
        'voiplog_seal_add(date, integer, bigint, text, text, bytea, bytea, text)',
        'voiplog_seal_stage(date)',
        'voiplog_days_touched(date[])', 'voiplog_audit_change()', 'voiplog_audit_held()',
        'voiplog_request_run_records(integer, boolean, text, text, text, integer, timestamptz, timestamptz)'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO voiplog_admin', fn);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION voiplog_request_run_records(integer, boolean, text, text, text, integer,
    timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION voiplog_record_conflicts(text, jsonb), voiplog_day_leaves(date),
    voiplog_day_leaves_v1(date), voiplog_day_hashes(date), voiplog_days_to_seal(date),
    voiplog_seal_add(date, integer, bigint, text, text, bytea, bytea, text),
    voiplog_seal_stage(date), voiplog_days_touched(date[])
    TO voiplog_writer, voiplog_admin;
GRANT EXECUTE ON FUNCTION voiplog_record_leaf(text), voiplog_record_leaf_v1(text) TO voiplog_admin;
