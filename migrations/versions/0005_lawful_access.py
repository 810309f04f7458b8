"""Lawful access: requests approved by a second person, records read only through audited functions.

The database, not the command line, enforces the rules a regulator checks:

- `access_request` holds each request as registered (case, agency, officer,
  legal basis, authorisation and its validity, selectors as entered and as
  searched, the time window, the maximum number of records). Its states are
  those of the lawful-disclosure task of ETSI TS 103 120. A CHECK refuses an
  approval by the database role that registered the request, whoever writes
  the row, and a trigger refuses state changes outside the life cycle and any
  change to what was approved.
- `audit_event` is append-only and hash-chained: each row carries the hash of
  the previous one. Rows are written only by `voiplog_audit_append`, which
  takes an advisory lock so that two writers never fork the chain; triggers
  refuse UPDATE, DELETE and TRUNCATE for every role, the table owner included
  (roles.sql gives the table to a role nobody logs in as, so that only a
  superuser can switch the triggers off, and `voiplog audit verify` then
  names the row that was changed). The only deletion is
  `voiplog_audit_prune`, which drops the oldest rows past the audit retention
  in one piece; the chain stays verifiable from a checkpoint.
- Records are read only through `voiplog_request_run`, a SECURITY DEFINER
  function that checks the request's state, the authorisation's validity and
  the window, searches calls, registrations and held records, and writes the
  audit row in the same transaction. A refused attempt is not an exception
  (that would roll its audit row back): the function returns the refusal and
  the audit row stays.
- Holds added or released and purges are audited by triggers on `legal_hold`
  and `purge_log`, so that the commands that write them need not know.

The number lookups of a run use the caller and callee indexes of the closed
days and one on the Request-URI user (`voiplog_uri_user`), which
`voiplog_index_uri_users` builds on the days that are over. It is a function
of its own, run by the admin (nightly, beside the purge) rather than by the
writer: the writer's indexing stays what ingest was measured with, and a day
without that index (today, the default partition) is still searched, by a scan.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

AUDIT_LOCK = 7956807324837737  # beside the partition (…735) and index (…736) locks

STATES = ("awaiting_approval", "approved", "disclosed", "rejected", "cancelled", "expired")

TABLES = f"""
CREATE TABLE access_request (
    id integer GENERATED ALWAYS AS IDENTITY,
    state text NOT NULL DEFAULT 'awaiting_approval',
    case_ref text NOT NULL,
    agency text NOT NULL,
    officer_name text NOT NULL,
    officer_rank text,
    legal_basis text NOT NULL,
    authorisation_ref text NOT NULL,
    authorisation_sha256 text,
    valid_from timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    window_from timestamptz NOT NULL,
    window_to timestamptz NOT NULL,
    selectors_entered jsonb NOT NULL,
    selectors jsonb NOT NULL,
    broad boolean NOT NULL DEFAULT false,
    max_records integer NOT NULL DEFAULT 10000,
    delivery text,
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text NOT NULL DEFAULT session_user,
    registered_os_user text NOT NULL,
    approved_at timestamptz,
    approved_by text,
    approved_os_user text,
    disclosed_at timestamptz,
    closed_at timestamptz,
    closed_by text,
    closed_os_user text,
    close_reason text,
    CONSTRAINT pk_access_request PRIMARY KEY (id),
    CONSTRAINT ck_access_request_state CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
    CONSTRAINT ck_access_request_second_person CHECK (approved_by <> registered_by),
    CONSTRAINT ck_access_request_approved CHECK (
        state NOT IN ('approved', 'disclosed') OR approved_by IS NOT NULL),
    CONSTRAINT ck_access_request_validity CHECK (valid_until > valid_from),
    CONSTRAINT ck_access_request_window CHECK (window_to > window_from),
    CONSTRAINT ck_access_request_max_records CHECK (max_records BETWEEN 1 AND 1000000),
    CONSTRAINT ck_access_request_sha256 CHECK (authorisation_sha256 ~ '^[0-9a-f]{{64}}$'),
    CONSTRAINT ck_access_request_selectors CHECK (
        jsonb_typeof(selectors) = 'array' AND jsonb_array_length(selectors) > 0)
);
CREATE INDEX ix_access_request_case_ref ON access_request (case_ref);

CREATE TABLE audit_event (
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    event jsonb NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    action text GENERATED ALWAYS AS (event->>'action') STORED,
    request_id integer GENERATED ALWAYS AS ((event->>'request_id')::integer) STORED,
    case_ref text GENERATED ALWAYS AS (event->>'case_ref') STORED,
    CONSTRAINT pk_audit_event PRIMARY KEY (seq)
);
CREATE INDEX ix_audit_event_at ON audit_event (at);
CREATE INDEX ix_audit_event_case_ref ON audit_event (case_ref);
CREATE INDEX ix_audit_event_request_id ON audit_event (request_id);
"""

# The text a row's hash covers. `voiplog.store.audit` recomputes it in Python
# from (seq, at, prev_hash, event::text), so the two must stay in step.
AUDIT = f"""
CREATE FUNCTION voiplog_audit_hash(seq bigint, at timestamptz, prev_hash text, event jsonb)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT encode(sha256(convert_to(
        seq::text || '|' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        || '|' || prev_hash || '|' || event::text, 'UTF8')), 'hex')
$fn$;

-- The one writer of audit_event. `event` holds what happened (action, outcome,
-- request, case, selectors as entered, window, legal basis, delivery target,
-- records returned, OS user and host as the client reports them); the role
-- and client address come from the session, not from the caller.
CREATE FUNCTION voiplog_audit_append(event jsonb) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    last_seq bigint;
    last_hash text;
    n bigint;
    t timestamptz;
    body jsonb;
BEGIN
    -- Under REPEATABLE READ the statement after the lock would not see the
    -- row another transaction appended just before: the chain would fork.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'voiplog_audit_append needs READ COMMITTED isolation';
    END IF;
    PERFORM pg_advisory_xact_lock({AUDIT_LOCK});
    SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_event a ORDER BY a.seq DESC LIMIT 1;
    n := COALESCE(last_seq, 0) + 1;
    t := clock_timestamp();
    body := jsonb_strip_nulls(event || jsonb_build_object(
        'db_role', session_user::text, 'client_addr', host(inet_client_addr())));
    INSERT INTO audit_event (seq, at, event, prev_hash, hash)
    VALUES (n, t, body, COALESCE(last_hash, repeat('0', 64)),
            voiplog_audit_hash(n, t, COALESCE(last_hash, repeat('0', 64)), body));
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_audit_append(jsonb) FROM PUBLIC;

-- A refusal the database itself raised (a missing privilege) cannot leave an
-- audit row from inside the failed transaction; the client reports it here.
CREATE FUNCTION voiplog_audit_denied(action text, request_id integer, reason text, os_user text, client_host text)
RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
    SELECT voiplog_audit_append(jsonb_build_object(
        'action', action, 'outcome', 'denied', 'request_id', request_id, 'reason', reason,
        'os_user', os_user, 'host', client_host,
        'case_ref', (SELECT r.case_ref FROM access_request r WHERE r.id = request_id)))
$fn$;
REVOKE ALL ON FUNCTION voiplog_audit_denied(text, integer, text, text, text) FROM PUBLIC;

CREATE FUNCTION voiplog_audit_refuse() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $fn$
BEGIN
    IF TG_TABLE_NAME = 'audit_event' AND TG_OP = 'DELETE'
       AND current_setting('voiplog.audit_prune', true) = 'on'
       AND current_user = (SELECT tableowner FROM pg_tables
                           WHERE schemaname = 'public' AND tablename = 'audit_event') THEN
        RETURN OLD;  -- voiplog_audit_prune, running as the owner
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_refuse();
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_refuse();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_refuse();

-- Drops the rows older than `keep_days`, always keeping the newest row, and
-- logs the pruning itself: the first kept row's prev_hash is the hash of the
-- last pruned one, which a checkpoint taken before lets a verifier check.
CREATE FUNCTION voiplog_audit_prune(keep_days integer, os_user text, client_host text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    upto bigint;
    gone bigint;
BEGIN
    IF keep_days < 1 THEN
        RAISE EXCEPTION 'audit retention must be at least one day';
    END IF;
    PERFORM pg_advisory_xact_lock({AUDIT_LOCK});
    SELECT max(seq) INTO upto FROM audit_event
    WHERE at < now() - make_interval(days => keep_days)
      AND seq < (SELECT max(seq) FROM audit_event);
    IF upto IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM set_config('voiplog.audit_prune', 'on', true);
    DELETE FROM audit_event WHERE seq <= upto;
    GET DIAGNOSTICS gone = ROW_COUNT;
    PERFORM set_config('voiplog.audit_prune', 'off', true);
    PERFORM voiplog_audit_append(jsonb_build_object(
        'action', 'audit.prune', 'outcome', 'ok', 'pruned_through', upto, 'records', gone,
        'keep_days', keep_days, 'os_user', os_user, 'host', client_host));
    RETURN gone;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_audit_prune(integer, text, text) FROM PUBLIC;

-- Holds and purges are audited where they are written.
CREATE FUNCTION voiplog_audit_hold() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM voiplog_audit_append(jsonb_build_object(
            'action', 'hold.add', 'outcome', 'ok', 'hold_id', NEW.id, 'case_ref', NEW.case_ref,
            'selectors', jsonb_build_array(jsonb_build_object('type', NEW.selector, 'value', NEW.value)),
            'window', jsonb_build_array(NEW.valid_from, NEW.valid_to), 'os_user', NEW.created_by));
    ELSIF NEW.released_at IS NOT NULL AND OLD.released_at IS NULL THEN
        PERFORM voiplog_audit_append(jsonb_build_object(
            'action', 'hold.release', 'outcome', 'ok', 'hold_id', NEW.id,
            'case_ref', NEW.case_ref, 'os_user', NEW.released_by));
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER legal_hold_audit AFTER INSERT OR UPDATE ON legal_hold
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_hold();

CREATE FUNCTION voiplog_audit_purge() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    PERFORM voiplog_audit_append(jsonb_build_object(
        'action', 'purge', 'outcome', 'ok', 'cutoff', NEW.cutoff, 'partitions', NEW.partitions,
        'rows_dropped', NEW.rows_dropped, 'rows_held', NEW.rows_held,
        'held_released', NEW.held_released, 'os_user', NEW.os_user));
    RETURN NULL;
END
$fn$;
CREATE TRIGGER purge_log_audit AFTER INSERT ON purge_log
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_purge();
"""

# The life cycle of a request (ETSI TS 103 120 lawful disclosure states):
# awaiting_approval -> approved | rejected | cancelled | expired
# approved -> disclosed | cancelled | expired;  disclosed -> cancelled | expired
# What was registered and approved never changes afterwards.
LIFE_CYCLE = """
CREATE FUNCTION voiplog_access_request_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $fn$
BEGIN
    IF (NEW.case_ref, NEW.agency, NEW.officer_name, NEW.officer_rank, NEW.legal_basis,
        NEW.authorisation_ref, NEW.authorisation_sha256, NEW.valid_from, NEW.valid_until,
        NEW.window_from, NEW.window_to, NEW.selectors_entered, NEW.selectors, NEW.broad,
        NEW.max_records, NEW.delivery, NEW.registered_at, NEW.registered_by,
        NEW.registered_os_user)
       IS DISTINCT FROM
       (OLD.case_ref, OLD.agency, OLD.officer_name, OLD.officer_rank, OLD.legal_basis,
        OLD.authorisation_ref, OLD.authorisation_sha256, OLD.valid_from, OLD.valid_until,
        OLD.window_from, OLD.window_to, OLD.selectors_entered, OLD.selectors, OLD.broad,
        OLD.max_records, OLD.delivery, OLD.registered_at, OLD.registered_by,
        OLD.registered_os_user) THEN
        RAISE EXCEPTION 'access request %: what was registered cannot be changed', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.approved_by IS NOT NULL AND NEW.approved_by IS DISTINCT FROM OLD.approved_by THEN
        RAISE EXCEPTION 'access request %: the approval cannot be changed', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
        (OLD.state = 'awaiting_approval' AND NEW.state IN ('approved', 'rejected', 'cancelled', 'expired'))
        OR (OLD.state = 'approved' AND NEW.state IN ('disclosed', 'cancelled', 'expired'))
        OR (OLD.state = 'disclosed' AND NEW.state IN ('cancelled', 'expired'))) THEN
        RAISE EXCEPTION 'access request %: % -> % is not a step of the life cycle',
            OLD.id, OLD.state, NEW.state USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER access_request_guard BEFORE UPDATE ON access_request
    FOR EACH ROW EXECUTE FUNCTION voiplog_access_request_guard();
CREATE TRIGGER access_request_no_delete BEFORE DELETE OR TRUNCATE ON access_request
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_refuse();

-- The request's fields an audit row repeats (never record data).
CREATE FUNCTION voiplog_request_event(r access_request, action text, outcome text,
                                      os_user text, client_host text)
RETURNS jsonb LANGUAGE sql STABLE AS $fn$
    SELECT jsonb_build_object(
        'action', action, 'outcome', outcome, 'request_id', r.id, 'case_ref', r.case_ref,
        'state', r.state, 'selectors', r.selectors_entered,
        'window', jsonb_build_array(r.window_from, r.window_to), 'legal_basis', r.legal_basis,
        'authorisation_ref', r.authorisation_ref, 'delivery', r.delivery,
        'os_user', os_user, 'host', client_host)
$fn$;

CREATE FUNCTION voiplog_request_register(
    case_ref text, agency text, officer_name text, officer_rank text, legal_basis text,
    authorisation_ref text, authorisation_sha256 text, valid_from timestamptz,
    valid_until timestamptz, window_from timestamptz, window_to timestamptz,
    selectors_entered jsonb, selectors jsonb, broad boolean, max_records integer,
    delivery text, os_user text, client_host text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    r access_request;
    sel jsonb;
BEGIN
    -- A shared (CGNAT) public address names many subscribers at once: without
    -- a port and a time it is a broad request, which the approver must see.
    IF NOT broad AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(selectors) s
                                 WHERE s->>'type' <> 'app') THEN
        RAISE EXCEPTION 'an app name alone selects every call of that app: add a selector or mark the request broad'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR sel IN SELECT * FROM jsonb_array_elements(selectors) LOOP
        -- A selector the search cannot use is refused now, not when it is run.
        PERFORM voiplog_access_match(sel, 'cdr'), voiplog_access_match(sel, 'held_registration'),
                (sel->>'at')::timestamptz;
        IF sel->>'type' = 'ip' AND NOT broad AND (masklen((sel->>'value')::inet)
           <> (CASE family((sel->>'value')::inet) WHEN 4 THEN 32 ELSE 128 END)) THEN
            RAISE EXCEPTION '% is a network: a prefix is searched only in a request marked broad', sel->>'value'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF sel->>'type' = 'ip' AND NOT broad AND (sel->>'port' IS NULL OR sel->>'at' IS NULL)
           AND EXISTS (SELECT 1 FROM cgnat_block b WHERE b.public_ip <<= (sel->>'value')::inet) THEN
            RAISE EXCEPTION '% is a shared (CGNAT) address: give a port and a time, or mark the request broad',
                sel->>'value' USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    INSERT INTO access_request (
        case_ref, agency, officer_name, officer_rank, legal_basis, authorisation_ref,
        authorisation_sha256, valid_from, valid_until, window_from, window_to,
        selectors_entered, selectors, broad, max_records, delivery, registered_by,
        registered_os_user)
    VALUES (case_ref, agency, officer_name, officer_rank, legal_basis, authorisation_ref,
        authorisation_sha256, valid_from, valid_until, window_from, window_to,
        selectors_entered, selectors, broad, COALESCE(max_records, 10000), delivery,
        session_user, os_user)
    RETURNING * INTO r;
    PERFORM voiplog_audit_append(voiplog_request_event(r, 'request.add', 'ok', os_user, client_host)
        || jsonb_build_object('agency', r.agency, 'officer', concat_ws(' ', r.officer_rank, r.officer_name),
                              'authorisation_sha256', r.authorisation_sha256, 'broad', r.broad,
                              'max_records', r.max_records,
                              'valid', jsonb_build_array(r.valid_from, r.valid_until)));
    RETURN r.id;
END
$fn$;

-- Requests whose authorisation ran out become expired (one audit row each).
CREATE FUNCTION voiplog_requests_expire(os_user text, client_host text)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    r access_request;
    n integer := 0;
BEGIN
    FOR r IN UPDATE access_request SET state = 'expired', closed_at = now()
             WHERE state IN ('awaiting_approval', 'approved', 'disclosed') AND valid_until <= now()
             RETURNING * LOOP
        PERFORM voiplog_audit_append(voiplog_request_event(r, 'request.expire', 'ok', os_user, client_host));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$fn$;

-- approve, reject or cancel. Returns NULL when done, else the reason it was
-- refused (and the refusal is audited). A self-approval is refused here with a
-- readable reason; the CHECK on the table refuses it whoever writes the row.
CREATE FUNCTION voiplog_request_decide(request_id integer, decision text, reason text,
                                       broad_seen boolean, os_user text, client_host text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    r access_request;
    refusal text;
    action text := 'request.' || decision;
BEGIN
    IF decision NOT IN ('approve', 'reject', 'cancel') THEN
        RAISE EXCEPTION 'unknown decision %', decision;
    END IF;
    SELECT * INTO r FROM access_request a WHERE a.id = request_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM voiplog_audit_append(jsonb_build_object('action', action, 'outcome', 'denied',
            'request_id', request_id, 'reason', 'no such request', 'os_user', os_user, 'host', client_host));
        RETURN 'no such request';
    END IF;
    IF r.valid_until <= now() AND r.state IN ('awaiting_approval', 'approved', 'disclosed') THEN
        UPDATE access_request a SET state = 'expired', closed_at = now() WHERE a.id = r.id
            RETURNING * INTO r;
        refusal := 'the authorisation expired at ' || r.valid_until;
    ELSIF decision IN ('approve', 'reject') AND r.state <> 'awaiting_approval' THEN
        refusal := 'the request is ' || r.state || ', not awaiting approval';
    ELSIF decision = 'cancel' AND r.state NOT IN ('awaiting_approval', 'approved', 'disclosed') THEN
        refusal := 'the request is ' || r.state || ' already';
    ELSIF decision IN ('approve', 'reject') AND to_regrole('voiplog_approver') IS NOT NULL
          AND NOT pg_has_role(session_user, 'voiplog_approver', 'MEMBER') THEN
        refusal := session_user || ' is not an approver (voiplog_approver)';
    ELSIF decision = 'cancel' AND to_regrole('voiplog_requester') IS NOT NULL
          AND NOT pg_has_role(session_user, 'voiplog_requester', 'MEMBER')
          AND NOT pg_has_role(session_user, 'voiplog_approver', 'MEMBER') THEN
        refusal := session_user || ' is neither a requester nor an approver';
    ELSIF decision IN ('approve', 'reject') AND session_user = r.registered_by THEN
        refusal := 'registered by ' || r.registered_by || ', who cannot also ' || decision || ' it';
    ELSIF decision = 'approve' AND r.broad AND NOT broad_seen THEN
        refusal := 'a broad request (prefixes or shared addresses without port and time) must be approved as broad';
    END IF;
    IF refusal IS NOT NULL THEN
        PERFORM voiplog_audit_append(voiplog_request_event(r, action, 'denied', os_user, client_host)
            || jsonb_build_object('reason', refusal));
        RETURN refusal;
    END IF;
    IF decision = 'approve' THEN
        UPDATE access_request a SET state = 'approved', approved_at = now(),
            approved_by = session_user, approved_os_user = os_user
        WHERE a.id = r.id RETURNING * INTO r;
    ELSE
        UPDATE access_request a SET
            state = CASE decision WHEN 'reject' THEN 'rejected' ELSE 'cancelled' END,
            closed_at = now(), closed_by = session_user, closed_os_user = os_user,
            close_reason = reason
        WHERE a.id = r.id RETURNING * INTO r;
    END IF;
    PERFORM voiplog_audit_append(voiplog_request_event(r, action, 'ok', os_user, client_host)
        || jsonb_strip_nulls(jsonb_build_object('reason', reason)));
    RETURN NULL;
END
$fn$;
"""

# The Request-URI's user part (sip:USER@host, tel:NUMBER), indexable. Numbers
# are looked up in it as in caller and callee (a forwarded call's Request-URI
# names the number dialled). String functions rather than a regular
# expression: the current day is scanned, and this runs on each of its rows.
URI_USER = """
CREATE FUNCTION voiplog_uri_user(uri text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE
        WHEN strpos(uri, '@') > strpos(uri, ':') AND strpos(uri, ':') > 0
            THEN split_part(substr(uri, strpos(uri, ':') + 1, strpos(uri, '@') - strpos(uri, ':') - 1), ';', 1)
        WHEN uri LIKE 'tel:%' THEN split_part(substr(uri, 5), ';', 1)
    END
$fn$;
"""

# A selector (one element of access_request.selectors, normalised by
# voiplog.store.access) as an SQL condition on one source: 'cdr' and
# 'registration' rows (alias c, typed columns) or held copies of either
# ('held_cdr', 'held_registration': alias h, the record as JSON).
_READ_HELPERS = """
CREATE FUNCTION voiplog_access_field(src text, field text, type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT CASE
        WHEN src IN ('cdr', 'registration') THEN 'c.' || quote_ident(field)
        WHEN type = 'text' THEN format('(h.record->>%L)', field)
        ELSE format('(h.record->>%L)::%s', field, type)
    END
$fn$;

CREATE FUNCTION voiplog_access_match(sel jsonb, src text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = public, pg_temp AS $fn$
DECLARE
    kind text := sel->>'type';
    held boolean := src LIKE 'held_%';
    base text := CASE WHEN src LIKE 'held_%' THEN substr(src, 6) ELSE src END;
    v text := quote_literal(sel->>'value');
    f text;
    net text;
    op text;
    port text;
    ends text[];
    media text;
    conds text[] := '{}';
    i integer;
BEGIN
    IF kind = 'number' THEN
        v := quote_literal(ARRAY(SELECT jsonb_array_elements_text(sel->'variants'))) || '::text[]';
        IF base = 'registration' THEN
            RETURN format('%s = ANY(%s)', voiplog_access_field(src, 'user', 'text'), v);
        END IF;
        IF sel->>'role' IN ('caller', 'any') THEN
            conds := conds || format('%s = ANY(%s)', voiplog_access_field(src, 'caller', 'text'), v);
        END IF;
        IF sel->>'role' IN ('callee', 'any') THEN
            -- Every spelling contains the shortest one: a cheap LIKE spares the
            -- scanned current day from taking the Request-URI apart row by
            -- row, and the closed days still use the uri_user index.
            conds := conds || format('%s = ANY(%s)', voiplog_access_field(src, 'callee', 'text'), v)
                || format('(%1$s LIKE %2$L AND voiplog_uri_user(%1$s) = ANY(%3$s))',
                          voiplog_access_field(src, 'request_uri', 'text'),
                          '%' || (SELECT x FROM jsonb_array_elements_text(sel->'variants') x
                                  ORDER BY length(x) LIMIT 1) || '%', v);
        END IF;
        RETURN '(' || array_to_string(conds, ' OR ') || ')';
    ELSIF kind = 'call_id' THEN
        RETURN format('%s = %s', voiplog_access_field(src, 'call_id', 'text'), v);
    ELSIF kind = 'app' THEN
        IF base = 'registration' THEN
            RETURN 'false';
        END IF;
        RETURN format('%s = %s', CASE WHEN held THEN 'h.record->''app''->>''name'''
                                      ELSE 'c.extra->''app''->>''name''' END, v);
    ELSIF kind IN ('subscriber', 'account', 'access_line') THEN
        f := CASE kind WHEN 'subscriber' THEN 'id' ELSE kind END;
        IF held THEN
            RETURN format('h.record->''subscriber''->>%L = %s', f, v);
        ELSIF base = 'registration' THEN
            RETURN format('c.subscriber->>%L = %s', f, v);
        END IF;
        -- A subscriber object of another shape than the contract's is kept whole in extra.
        RETURN format('((c.subscriber).%I = %s OR c.extra->''subscriber''->>%L = %s)', f, v, f, v);
    ELSIF kind IS DISTINCT FROM 'ip' THEN
        RAISE EXCEPTION 'unknown selector type %', kind;
    END IF;

    -- An address (=) or, in a broad request, a network (<<=); with a port, the
    -- endpoint must have both; with a time, the record must be alive then.
    net := quote_literal(sel->>'value') || '::inet';
    op := CASE WHEN masklen((sel->>'value')::inet) = CASE family((sel->>'value')::inet) WHEN 4 THEN 32 ELSE 128 END
               THEN '=' ELSE '<<=' END;
    port := sel->>'port';
    ends := CASE base WHEN 'cdr' THEN ARRAY['caller_ip', 'caller_port', 'callee_ip', 'callee_port']
                      ELSE ARRAY['source_ip', 'source_port', 'contact_ip', 'contact_port'] END;
    FOR i IN 1 .. 2 LOOP
        conds := conds || format('(%s %s %s%s)', voiplog_access_field(src, ends[2 * i - 1], 'inet'), op, net,
            CASE WHEN port IS NULL THEN '' ELSE format(' AND %s = %s', voiplog_access_field(src, ends[2 * i], 'integer'), port::integer) END);
    END LOOP;
    IF port IS NULL THEN
        conds := conds || format('%s %s %s', voiplog_access_field(src, 'subscriber_ip', 'inet'), op, net);
    END IF;
    IF base = 'cdr' AND NOT held THEN
        -- Media streams are typed: compared as columns, not through JSON.
        conds := conds || format(
            'EXISTS (SELECT 1 FROM unnest(c.media) m WHERE (m.src_ip %1$s %2$s%3$s) OR (m.dst_ip %1$s %2$s%4$s))',
            op, net, CASE WHEN port IS NULL THEN '' ELSE format(' AND m.src_port = %s', port::integer) END,
            CASE WHEN port IS NULL THEN '' ELSE format(' AND m.dst_port = %s', port::integer) END);
    END IF;
    IF base = 'cdr' THEN
        FOREACH media IN ARRAY CASE WHEN held
            THEN ARRAY['h.record->''media''', 'h.record->''app_flows''']
            ELSE ARRAY['c.extra->''app_flows'''] END LOOP
            conds := conds || format(
                'EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(%1$s) = ''array'' THEN %1$s ELSE ''[]'' END) m '
                'WHERE ((m->>''src_ip'')::inet %2$s %3$s%4$s) OR ((m->>''dst_ip'')::inet %2$s %3$s%5$s))',
                media, op, net, CASE WHEN port IS NULL THEN '' ELSE format(' AND (m->>''src_port'')::integer = %s', port::integer) END,
                CASE WHEN port IS NULL THEN '' ELSE format(' AND (m->>''dst_port'')::integer = %s', port::integer) END);
        END LOOP;
    END IF;
    f := '(' || array_to_string(conds, ' OR ') || ')';
    IF sel->>'at' IS NOT NULL THEN
        IF base = 'cdr' THEN
            -- Calls alive at the moment; a call is looked for up to six hours back.
            f := f || format(' AND %1$s <= %2$L::timestamptz + interval ''1 second'' * %3$s'
                             ' AND %1$s >= %2$L::timestamptz - interval ''6 hours'''
                             ' AND COALESCE(%4$s, %1$s) >= %2$L::timestamptz - interval ''1 second'' * %3$s',
                             CASE WHEN held THEN 'h.started_at' ELSE 'c.started_at' END, sel->>'at',
                             COALESCE((sel->>'slack_s')::integer, 60),
                             voiplog_access_field(src, 'ended_at', 'timestamptz'));
        ELSE
            f := f || format(' AND %1$s <= %2$L::timestamptz + interval ''1 second'' * %3$s'
                             ' AND %1$s >= %2$L::timestamptz - interval ''1 day''',
                             CASE WHEN held THEN 'h.started_at' ELSE 'c.requested_at' END, sel->>'at',
                             COALESCE((sel->>'slack_s')::integer, 60));
        END IF;
    END IF;
    RETURN f;
END
$fn$;
"""

# A run: checks, the search, the audit row and the state change in one
# transaction. Returns a status row ('status', {...}) first, then at most
# max_records records ('cdr' | 'registration' | 'held', the record as JSON).
_RUN = """
CREATE FUNCTION voiplog_request_run(request_id integer, count_only boolean, os_user text,
    client_host text, delivery_target text, retention_days integer,
    narrow_from timestamptz, narrow_to timestamptz)
RETURNS TABLE (source text, doc jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
-- The searches are index probes and one scanned day: compiling them (JIT,
-- which their cost estimates over 30 partitions trigger) took longer than
-- running them.
SET jit = off AS $fn$
DECLARE
    r access_request;
    refusal text;
    action text := CASE WHEN count_only THEN 'request.count' ELSE 'request.run' END;
    lo timestamptz;
    hi timestamptz;
    live_lo timestamptz;
    sel jsonb;
    where_cdr text[] := '{}';
    where_reg text[] := '{}';
    where_held_cdr text[] := '{}';
    where_held_reg text[] := '{}';
    app_cdr text[] := '{}';
    app_held text[] := '{}';
    binding text[] := '{}';
    query text;
    n bigint;
    srcs text[];
    docs jsonb[];
    truncated boolean := false;
    seq bigint;
BEGIN
    SELECT * INTO r FROM access_request a WHERE a.id = request_id FOR UPDATE;
    IF NOT FOUND THEN
        seq := voiplog_audit_append(jsonb_build_object('action', action, 'outcome', 'denied',
            'request_id', request_id, 'reason', 'no such request', 'os_user', os_user,
            'host', client_host, 'delivery', delivery_target));
        source := 'status';
        doc := jsonb_build_object('ok', false, 'reason', 'no such request', 'audit_seq', seq);
        RETURN NEXT;
        RETURN;
    END IF;
    lo := COALESCE(narrow_from, r.window_from);
    hi := COALESCE(narrow_to, r.window_to);
    IF r.valid_until <= now() AND r.state IN ('awaiting_approval', 'approved', 'disclosed') THEN
        UPDATE access_request a SET state = 'expired', closed_at = now() WHERE a.id = r.id
            RETURNING * INTO r;
        refusal := 'the authorisation expired at ' || r.valid_until;
    ELSIF r.state NOT IN ('approved', 'disclosed') THEN
        refusal := 'the request is ' || r.state || ', not approved';
    ELSIF r.valid_from > now() THEN
        refusal := 'the authorisation is valid only from ' || r.valid_from;
    ELSIF lo < r.window_from OR hi > r.window_to OR hi <= lo THEN
        refusal := format('%s .. %s is outside the approved window %s .. %s', lo, hi,
                          r.window_from, r.window_to);
    END IF;
    IF refusal IS NOT NULL THEN
        seq := voiplog_audit_append(voiplog_request_event(r, action, 'denied', os_user, client_host)
            || jsonb_build_object('reason', refusal, 'delivery', delivery_target,
                                  'searched', jsonb_build_array(lo, hi)));
        source := 'status';
        doc := jsonb_build_object('ok', false, 'reason', refusal, 'state', r.state, 'audit_seq', seq);
        RETURN NEXT;
        RETURN;
    END IF;

    -- Records past the retention period are answered only from held copies.
    live_lo := CASE WHEN retention_days IS NULL THEN lo
                    ELSE greatest(lo, now() - make_interval(days => retention_days)) END;
    FOR sel IN SELECT * FROM jsonb_array_elements(r.selectors) LOOP
        IF sel->>'type' = 'app' THEN
            app_cdr := app_cdr || voiplog_access_match(sel, 'cdr');
            app_held := app_held || voiplog_access_match(sel, 'held_cdr');
            CONTINUE;
        END IF;
        where_cdr := where_cdr || voiplog_access_match(sel, 'cdr');
        where_reg := where_reg || voiplog_access_match(sel, 'registration');
        where_held_cdr := where_held_cdr || voiplog_access_match(sel, 'held_cdr');
        where_held_reg := where_held_reg || voiplog_access_match(sel, 'held_registration');
        IF sel->>'type' = 'number' THEN
            -- The registration that bound the number when the window opened.
            binding := binding || format(
                '(SELECT ''registration'' AS source, c.uid::text AS uid, c.requested_at AS t, '
                '(to_jsonb(c) - ''extra'' - ''stored_at'') || COALESCE(c.extra, ''{}'') AS doc, 0 AS pref '
                'FROM registration c WHERE %s AND c.requested_at < %L AND c.requested_at >= %L '
                'AND c.status BETWEEN 200 AND 299 ORDER BY c.requested_at DESC LIMIT 1)',
                voiplog_access_match(sel, 'registration'), lo, greatest(live_lo, lo) - interval '1 day');
        END IF;
    END LOOP;
    IF cardinality(where_cdr) = 0 THEN  -- an app alone: every call of it (a broad request)
        where_cdr := ARRAY['true'];
        where_held_cdr := ARRAY['true'];
        where_reg := ARRAY['false'];
        where_held_reg := ARRAY['false'];
    END IF;
    IF cardinality(app_cdr) > 0 THEN
        where_reg := ARRAY['false'];
        where_held_reg := ARRAY['false'];
    END IF;
    query := format(
        'SELECT ''cdr'' AS source, c.uid::text AS uid, c.started_at AS t, '
        '(to_jsonb(c) - ''extra'' - ''stored_at'') || COALESCE(c.extra, ''{}'') AS doc, 0 AS pref '
        'FROM cdr c WHERE c.started_at >= %1$L::timestamptz - interval ''1 day'' AND c.started_at >= %5$L '
        'AND c.started_at < %2$L AND COALESCE(c.ended_at, c.started_at) >= %6$L AND (%3$s) AND (%4$s)',
        lo, hi, array_to_string(where_cdr, ' OR '),
        COALESCE(NULLIF(array_to_string(app_cdr, ' OR '), ''), 'true'),
        live_lo - interval '1 day', live_lo)
    || format(
        ' UNION ALL SELECT ''registration'', c.uid::text, c.requested_at, '
        '(to_jsonb(c) - ''extra'' - ''stored_at'') || COALESCE(c.extra, ''{}''), 0 '
        'FROM registration c WHERE c.requested_at >= %1$L AND c.requested_at < %2$L AND (%3$s)',
        live_lo, hi, array_to_string(where_reg, ' OR '))
    || format(
        ' UNION ALL SELECT ''held'', h.uid, h.started_at, h.record, 1 FROM held_record h '
        'WHERE h.started_at >= %1$L::timestamptz - interval ''1 day'' AND h.started_at < %2$L '
        'AND COALESCE((h.record->>''ended_at'')::timestamptz, h.started_at) >= %1$L '
        'AND ((h.kind <> ''registration'' AND (%3$s) AND (%4$s)) OR (h.kind = ''registration'' AND (%5$s)))',
        lo, hi, array_to_string(where_held_cdr, ' OR '),
        COALESCE(NULLIF(array_to_string(app_held, ' OR '), ''), 'true'),
        array_to_string(where_held_reg, ' OR '))
    || COALESCE(' UNION ALL ' || NULLIF(array_to_string(binding, ' UNION ALL '), ''), '');
    IF count_only THEN
        EXECUTE 'SELECT count(DISTINCT uid) FROM (' || query || ') u' INTO n;
    ELSE
        EXECUTE format(
            'SELECT array_agg(source ORDER BY t, uid), array_agg(doc ORDER BY t, uid) FROM ('
            '  SELECT * FROM (SELECT DISTINCT ON (uid) source, uid, t, doc FROM (%s) u ORDER BY uid, pref) d'
            '  ORDER BY t, uid LIMIT %s) x', query, r.max_records + 1)
            INTO srcs, docs;
        n := COALESCE(cardinality(srcs), 0);
        IF n > r.max_records THEN
            truncated := true;
            n := r.max_records;
            srcs := srcs[1:n];
            docs := docs[1:n];
        END IF;
        IF r.state = 'approved' THEN
            UPDATE access_request a SET state = 'disclosed', disclosed_at = now()
            WHERE a.id = r.id RETURNING * INTO r;
        END IF;
    END IF;
    seq := voiplog_audit_append(voiplog_request_event(r, action, 'ok', os_user, client_host)
        || jsonb_build_object('records', n, 'truncated', truncated, 'delivery', delivery_target,
                              'searched', jsonb_build_array(lo, hi)));
    source := 'status';
    doc := jsonb_build_object('ok', true, 'state', r.state, 'records', n, 'truncated', truncated,
                              'max_records', r.max_records, 'searched', jsonb_build_array(lo, hi),
                              'answered_from', live_lo, 'audit_seq', seq);
    RETURN NEXT;
    IF NOT count_only AND n > 0 THEN
        RETURN QUERY SELECT x.s, x.d FROM unnest(srcs, docs) AS x(s, d);
    END IF;
END
$fn$;
"""


INDEX_URI_USERS = """
CREATE FUNCTION voiplog_index_uri_users(before date) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    part text;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7956807324837736);
    FOR part IN
        SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
        WHERE h.inhparent = 'cdr'::regclass
          AND c.relname ~ '^cdr_p[0-9]{8}$'
          AND to_date(substr(c.relname, 6), 'YYYYMMDD') < before
          AND to_regclass(c.relname || '_uri_user_idx') IS NULL
        ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I (voiplog_uri_user(request_uri))',
                       part || '_uri_user_idx', part);
        made := made + 1;
    END LOOP;
    RETURN made;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_index_uri_users(date) FROM PUBLIC;
"""


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(AUDIT)
    op.execute(LIFE_CYCLE)
    op.execute(URI_USER)
    op.execute(_READ_HELPERS)
    op.execute(_RUN)
    op.execute(INDEX_URI_USERS)
    # Days already over get the new index now (a bulk build per partition).
    op.execute("SELECT voiplog_index_uri_users((now() AT TIME ZONE 'UTC')::date)")


def downgrade() -> None:
    op.execute(
        """
        DO $$
        DECLARE idx text;
        BEGIN
            FOR idx IN
                SELECT n.relname FROM pg_inherits i
                JOIN pg_index x ON x.indrelid = i.inhrelid
                JOIN pg_class n ON n.oid = x.indexrelid
                WHERE i.inhparent = 'cdr'::regclass AND n.relname ~ '_uri_user_idx$'
            LOOP
                EXECUTE format('DROP INDEX %I', idx);
            END LOOP;
        END
        $$
        """
    )
    op.execute("DROP FUNCTION voiplog_index_uri_users(date)")
    op.execute("DROP TRIGGER purge_log_audit ON purge_log")
    op.execute("DROP TRIGGER legal_hold_audit ON legal_hold")
    for function in (
        "voiplog_request_run(integer, boolean, text, text, text, integer, timestamptz, timestamptz)",
        "voiplog_access_match(jsonb, text)",
        "voiplog_access_field(text, text, text)",
        "voiplog_requests_expire(text, text)",
        "voiplog_request_decide(integer, text, text, boolean, text, text)",
        "voiplog_request_register(text, text, text, text, text, text, text, timestamptz, timestamptz, timestamptz, timestamptz, jsonb, jsonb, boolean, integer, text, text, text)",
        "voiplog_request_event(access_request, text, text, text, text)",
        "voiplog_audit_purge()",
        "voiplog_audit_hold()",
        "voiplog_audit_prune(integer, text, text)",
        "voiplog_audit_denied(text, integer, text, text, text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP TABLE audit_event")
    op.execute("DROP TABLE access_request")
    for function in (
        "voiplog_access_request_guard()",
        "voiplog_audit_refuse()",
        "voiplog_audit_append(jsonb)",
        "voiplog_audit_hash(bigint, timestamptz, text, jsonb)",
        "voiplog_uri_user(text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
