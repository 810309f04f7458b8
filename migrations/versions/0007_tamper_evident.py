"""A tamper-evident store: kept conflicts, bound writers, sealed days, provable purges.

- **Conflicts are kept.** A record whose key (time, uid) is stored already
  with other content is not dropped: the stored row stays as it is and the
  newcomer goes to `record_conflict` with the SHA-256 of both contents
  (`voiplog_record_conflicts`, called by the writer for the records its merge
  skipped). A lawful-access run shows each record's conflicts right after it.
- **Who wrote it.** `inserted_by` is the login that inserted a row, filled by
  its default (`session_user`); the writer role may insert every column but
  that one and `stored_at` (column privileges in roles.sql). `writer_pop`,
  filled by the admin, binds a writer login to its POP: a CHECK constraint
  refuses rows of a writer login whose `pop` is not the one it is bound to (an
  unbound login may write only rows without a POP), through an inlined SQL
  function rewritten from `writer_pop`: COPY keeps its speed.
- **Sealed days.** A day's records (calls, then registrations, each in
  (time, uid) order) are leaves of a Merkle tree: a leaf is SHA-256(0x00 ||
  the row in binary form, as record_send gives it), a node SHA-256(0x01 ||
  left || right), an odd node going up unchanged. `day_seal` keeps its root and count,
  one row per version, each row hash-chained to the one before it and
  optionally signed; `day_seal_leaves` keeps the leaves and keys of the last
  version so that a changed, removed or added record can be named. Seal rows are
  append-only (as `audit_event`). `day_dirty` lists sealed days that took
  late records: they are sealed again as a new version.
- **Provable purges.** `purge_log.seals` keeps the seal (version, root,
  count) of every day a purge dropped. Changes to `purge_log`, `legal_hold`
  and `held_record` other than those the purge and hold commands make are
  written to the audit trail of migration 0005, as are the bindings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SEAL_LOCK = 7956807324837738  # beside the partition, index and audit locks

RUN_ARGS = "integer, boolean, text, text, text, integer, timestamptz, timestamptz"

TABLES = """
ALTER TABLE cdr ADD COLUMN inserted_by text;
ALTER TABLE cdr ALTER COLUMN inserted_by SET DEFAULT session_user;
ALTER TABLE registration ADD COLUMN inserted_by text;
ALTER TABLE registration ALTER COLUMN inserted_by SET DEFAULT session_user;

CREATE TABLE writer_pop (
    role text NOT NULL,
    pop text NOT NULL,
    bound_at timestamptz NOT NULL DEFAULT now(),
    bound_by text NOT NULL DEFAULT session_user,
    CONSTRAINT pk_writer_pop PRIMARY KEY (role)
);

CREATE TABLE record_conflict (
    id bigint GENERATED ALWAYS AS IDENTITY,
    tbl text NOT NULL,
    uid text NOT NULL,
    at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    inserted_by text NOT NULL DEFAULT session_user,
    stored_sha256 text NOT NULL,
    arrived_sha256 text NOT NULL,
    arrived jsonb NOT NULL,
    CONSTRAINT pk_record_conflict PRIMARY KEY (id),
    CONSTRAINT uq_record_conflict_tbl_uid_at_arrived_sha256 UNIQUE (tbl, uid, at, arrived_sha256)
);
CREATE INDEX ix_record_conflict_uid ON record_conflict (uid);

CREATE TABLE day_seal (
    id bigint NOT NULL,
    day date NOT NULL,
    version integer NOT NULL,
    record_count bigint NOT NULL,
    root text NOT NULL,
    sealed_at timestamptz NOT NULL,
    sealed_by text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    signature bytea,
    certificate text,
    CONSTRAINT pk_day_seal PRIMARY KEY (id),
    CONSTRAINT uq_day_seal_day_version UNIQUE (day, version)
);

CREATE TABLE day_seal_leaves (
    seal_id bigint NOT NULL,
    keys text NOT NULL,
    leaves bytea NOT NULL,
    CONSTRAINT pk_day_seal_leaves PRIMARY KEY (seal_id)
);

CREATE TABLE day_dirty (
    day date NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_day_dirty PRIMARY KEY (day)
);

ALTER TABLE purge_log ADD COLUMN seals jsonb;
"""

# A writer login's rows carry the POP it is bound to. The check is a CHECK
# constraint calling `voiplog_pop_bound(inserted_by, pop)`, an SQL function
# that Postgres inlines: a CASE over the bound logins, rewritten from
# `writer_pop` whenever the admin changes it. A row trigger, or a statement
# trigger reading the statement's rows, cost a third of the ingest rate; a CASE
# costs next to nothing. A row of another POP calls `voiplog_pop_refuse`, which
# raises (as a missing privilege: the writer keeps the records spooled).
# Superusers (as they were when the table last changed) and logins outside
# voiplog_writer may write any POP; a writer login bound to none writes only
# rows without one.
POP_BOUND = """
CREATE FUNCTION voiplog_pop_refuse(login text, pop text, bound text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    RAISE EXCEPTION 'login % may write records of %, not of POP %', login,
        COALESCE('POP ' || bound, 'no POP (it is not bound to one in writer_pop)'), pop
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;

CREATE FUNCTION voiplog_pop_unbound(login text, pop text) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'voiplog_writer')
       OR COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = login), true)
       OR NOT pg_has_role(login, 'voiplog_writer', 'MEMBER') THEN
        RETURN true;
    END IF;
    RETURN voiplog_pop_refuse(login, pop, NULL);
END
$fn$;

CREATE FUNCTION voiplog_pop_bound(login text, pop text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT login IS NULL OR pop IS NULL OR voiplog_pop_unbound(login, pop)
$fn$;

CREATE FUNCTION voiplog_pop_bindings_refresh() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    cases text;
BEGIN
    SELECT string_agg(c, ' ') INTO cases FROM (
        SELECT format('WHEN %L THEN pop IS NOT DISTINCT FROM %L OR voiplog_pop_refuse(login, pop, %L)',
                      w.role, w.pop, w.pop) AS c
        FROM writer_pop w
        UNION ALL
        SELECT format('WHEN %L THEN true', r.rolname) FROM pg_roles r
        WHERE r.rolsuper AND NOT EXISTS (SELECT 1 FROM writer_pop w WHERE w.role = r.rolname)
    ) x;
    EXECUTE format(
        'CREATE OR REPLACE FUNCTION voiplog_pop_bound(login text, pop text) RETURNS boolean '
        'LANGUAGE sql IMMUTABLE AS %L',
        'SELECT CASE login ' || COALESCE(cases, '')
        || ' ELSE login IS NULL OR pop IS NULL OR voiplog_pop_unbound(login, pop) END');
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_pop_bindings_refresh() FROM PUBLIC;

CREATE FUNCTION voiplog_pop_bindings() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    PERFORM voiplog_pop_bindings_refresh();
    RETURN NULL;
END
$fn$;
CREATE TRIGGER writer_pop_bindings AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON writer_pop
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_pop_bindings();

ALTER TABLE cdr ADD CONSTRAINT ck_cdr_pop_bound CHECK (voiplog_pop_bound(inserted_by, pop));
-- A day made after its rows landed in the default partition is filled first,
-- then attached: it needs the constraint before attaching.
DO $$
BEGIN
    EXECUTE replace(pg_get_functiondef('voiplog_ensure_day_partitions(date)'::regprocedure),
                    'INCLUDING DEFAULTS)', 'INCLUDING DEFAULTS INCLUDING CONSTRAINTS)');
END
$$;
ALTER TABLE registration ADD CONSTRAINT ck_registration_pop_bound
    CHECK (voiplog_pop_bound(inserted_by, pop));
"""

# The content of a record for comparing two arrivals: the row as JSON
# without what the database adds (when and by whom it was stored).
CONFLICTS = """
CREATE FUNCTION voiplog_content_sha256(doc jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $fn$
    SELECT encode(sha256(convert_to((doc - 'stored_at' - 'inserted_by')::text, 'UTF8')), 'hex')
$fn$;

-- `arrivals`: rows (as JSON, times in UTC) whose key was stored already. Those
-- whose content differs from the stored row are kept in record_conflict (once
-- per distinct content); returns the uids of the new conflicts.
CREATE FUNCTION voiplog_record_conflicts(tbl text, arrivals jsonb)
RETURNS TABLE (uid text, at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET extra_float_digits = 1 AS $fn$
DECLARE
    col text;
BEGIN
    IF tbl NOT IN ('cdr', 'registration') THEN
        RAISE EXCEPTION 'records are stored in cdr or registration, not %', tbl;
    END IF;
    col := CASE tbl WHEN 'cdr' THEN 'started_at' ELSE 'requested_at' END;
    RETURN QUERY EXECUTE format(
        'INSERT INTO record_conflict AS k (tbl, uid, at, stored_sha256, arrived_sha256, arrived) '
        'SELECT %1$L, s.uid, s.%2$I, voiplog_content_sha256(to_jsonb(s)), '
        '       voiplog_content_sha256(a.doc), a.doc '
        'FROM jsonb_array_elements($1) a(doc) '
        'JOIN %1$I s ON s.uid = a.doc->>''uid'' AND s.%2$I = (a.doc->>%2$L)::timestamptz '
        'WHERE voiplog_content_sha256(to_jsonb(s)) <> voiplog_content_sha256(a.doc) '
        'ON CONFLICT DO NOTHING RETURNING k.uid, k.at', tbl, col)
        USING COALESCE(arrivals, '[]');
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_record_conflicts(text, jsonb) FROM PUBLIC;
"""

# The run of migration 0005, renamed, does all it did; the run under its old
# name adds after each record the conflicts kept for its key.
RUN = f"""
ALTER FUNCTION voiplog_request_run({RUN_ARGS}) RENAME TO voiplog_request_run_records;
REVOKE ALL ON FUNCTION voiplog_request_run_records({RUN_ARGS}) FROM PUBLIC;
CREATE FUNCTION voiplog_request_run(request_id integer, count_only boolean, os_user text,
    client_host text, delivery_target text, retention_days integer,
    narrow_from timestamptz, narrow_to timestamptz)
RETURNS TABLE (source text, doc jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET jit = off AS $fn$
DECLARE
    s text;
    d jsonb;
    c jsonb;
BEGIN
    FOR s, d IN SELECT x.source, x.doc FROM voiplog_request_run_records(request_id, count_only,
            os_user, client_host, delivery_target, retention_days, narrow_from, narrow_to) x LOOP
        source := s;
        doc := d;
        RETURN NEXT;
        CONTINUE WHEN s NOT IN ('cdr', 'registration', 'held');
        FOR c IN
            SELECT jsonb_build_object('uid', k.uid, 'stored_in', k.tbl, 'seen_at', k.seen_at,
                       'inserted_by', k.inserted_by, 'stored_sha256', k.stored_sha256,
                       'arrived_sha256', k.arrived_sha256, 'arrived', k.arrived)
            FROM record_conflict k
            WHERE k.uid = d->>'uid'
              AND k.at = COALESCE(d->>'started_at', d->>'requested_at')::timestamptz
            ORDER BY k.id
        LOOP
            source := 'conflict';
            doc := c;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_request_run({RUN_ARGS}) FROM PUBLIC;
"""

# The leaves of a day, in the order of the tree: calls then registrations,
# each by (time, uid). A leaf hashes the row in Postgres' binary form
# (record_send: each column's type OID and binary value), which depends on no
# session setting and costs a fifth of rendering the row as JSON text (the
# day's hashes are most of what sealing and verifying cost). `keys` names each
# leaf ("cdr <uid> <time>"), one per line.
SEALS = f"""
CREATE FUNCTION voiplog_day_leaves(day date)
RETURNS TABLE (records bigint, keys text, leaves bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET extra_float_digits = 1 SET jit = off AS $fn$
    SELECT count(*), COALESCE(string_agg(y.k, E'\\n'), ''), COALESCE(string_agg(y.h, ''::bytea), ''::bytea)
    FROM (
        SELECT x.k, x.h FROM (
            SELECT 0 AS t, c.started_at AS at, c.uid,
                   'cdr ' || c.uid || ' ' || to_char(c.started_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS k,
                   sha256('\\x00'::bytea || record_send(c)) AS h
            FROM cdr c
            WHERE c.started_at >= day::timestamp AT TIME ZONE 'UTC'
              AND c.started_at < (day + 1)::timestamp AT TIME ZONE 'UTC'
            UNION ALL
            SELECT 1, r.requested_at, r.uid,
                   'registration ' || r.uid || ' ' || to_char(r.requested_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                   sha256('\\x00'::bytea || record_send(r))
            FROM registration r
            WHERE r.requested_at >= day::timestamp AT TIME ZONE 'UTC'
              AND r.requested_at < (day + 1)::timestamp AT TIME ZONE 'UTC'
        ) x ORDER BY x.t, x.at, x.uid COLLATE "C"
    ) y
$fn$;
REVOKE ALL ON FUNCTION voiplog_day_leaves(date) FROM PUBLIC;

-- One record's leaf preimage (its binary row) and, for reading it, its columns
-- (name and type, in order) and its JSON (what `voiplog store prove` shows).
CREATE FUNCTION voiplog_record_leaf(record_uid text)
RETURNS TABLE (tbl text, day date, key text, row_bytes bytea, columns jsonb, doc text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'
SET extra_float_digits = 1 AS $fn$
    SELECT x.tbl, x.day, x.key, x.row_bytes,
           (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod))
                             ORDER BY a.attnum)
            FROM pg_attribute a WHERE a.attrelid = x.tbl::regclass AND a.attnum > 0
              AND NOT a.attisdropped),
           x.doc
    FROM (
        SELECT 'cdr' AS tbl, (c.started_at AT TIME ZONE 'UTC')::date AS day,
               'cdr ' || c.uid || ' ' || to_char(c.started_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS key,
               record_send(c) AS row_bytes, to_jsonb(c)::text AS doc
        FROM cdr c WHERE c.uid = record_uid
        UNION ALL
        SELECT 'registration', (r.requested_at AT TIME ZONE 'UTC')::date,
               'registration ' || r.uid || ' ' || to_char(r.requested_at, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               record_send(r), to_jsonb(r)::text
        FROM registration r WHERE r.uid = record_uid
    ) x
$fn$;
REVOKE ALL ON FUNCTION voiplog_record_leaf(text) FROM PUBLIC;

-- The text a seal row's hash covers; `voiplog.store.seal` recomputes it.
CREATE FUNCTION voiplog_seal_hash(id bigint, day date, version integer, record_count bigint,
    root text, sealed_at timestamptz, sealed_by text, prev_hash text, signature bytea)
RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
    SELECT encode(sha256(convert_to(
        id::text || '|' || to_char(day, 'YYYY-MM-DD') || '|' || version::text || '|'
        || record_count::text || '|' || root || '|'
        || to_char(sealed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || '|'
        || sealed_by || '|' || prev_hash || '|' || COALESCE(encode(signature, 'hex'), ''),
        'UTF8')), 'hex')
$fn$;

-- Closed days (day partitions before `before`) that have no seal, or took
-- records after their last one; with that seal's version and root.
CREATE FUNCTION voiplog_days_to_seal(before date)
RETURNS TABLE (day date, version integer, root text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
    SELECT d.day, s.version, s.root
    FROM (SELECT to_date(substr(c.relname, 6), 'YYYYMMDD') AS day
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'cdr'::regclass AND c.relname ~ '^cdr_p[0-9]{{8}}$') d
    LEFT JOIN LATERAL (SELECT x.version, x.root FROM day_seal x WHERE x.day = d.day
                       ORDER BY x.version DESC LIMIT 1) s ON true
    WHERE d.day < before
      AND (s.version IS NULL OR EXISTS (SELECT 1 FROM day_dirty y WHERE y.day = d.day))
    ORDER BY d.day
$fn$;
REVOKE ALL ON FUNCTION voiplog_days_to_seal(date) FROM PUBLIC;

-- A new seal of `day`; `version` must follow the day's last one (two sealers
-- at once: the second is refused and finds the day sealed). The row is
-- chained to the seal row before it; returns its id. A version with the
-- same root as the last one is not added (NULL): the day is marked clean again.
CREATE FUNCTION voiplog_seal_add(day date, version integer, record_count bigint, root text,
    keys text, leaves bytea, signature bytea, certificate text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    last day_seal;
    n bigint;
    t timestamptz := clock_timestamp();
    prev text;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'voiplog_seal_add needs READ COMMITTED isolation';
    END IF;
    IF root !~ '^[0-9a-f]{{64}}$' OR length(leaves) <> 32 * record_count THEN
        RAISE EXCEPTION 'seal of %: root or leaves malformed', day;
    END IF;
    PERFORM pg_advisory_xact_lock({SEAL_LOCK});
    SELECT * INTO last FROM day_seal s WHERE s.day = voiplog_seal_add.day
        ORDER BY s.version DESC LIMIT 1;
    IF COALESCE(last.version, 0) + 1 <> version THEN
        RAISE EXCEPTION 'seal of %: version % follows %, not %', day, COALESCE(last.version, 0) + 1,
            COALESCE(last.version, 0), version USING ERRCODE = 'serialization_failure';
    END IF;
    DELETE FROM day_dirty y WHERE y.day = voiplog_seal_add.day;
    IF last.root = root AND last.record_count = record_count THEN
        RETURN NULL;
    END IF;
    SELECT s.id, s.hash INTO n, prev FROM day_seal s ORDER BY s.id DESC LIMIT 1;
    n := COALESCE(n, 0) + 1;
    prev := COALESCE(prev, repeat('0', 64));
    INSERT INTO day_seal (id, day, version, record_count, root, sealed_at, sealed_by, prev_hash,
                          hash, signature, certificate)
    VALUES (n, day, version, record_count, root, t, session_user, prev,
            voiplog_seal_hash(n, day, version, record_count, root, t, session_user, prev, signature),
            signature, certificate);
    -- Only the last version's leaves are kept: they name what changed since.
    DELETE FROM day_seal_leaves l USING day_seal s
    WHERE s.id = l.seal_id AND s.day = voiplog_seal_add.day;
    INSERT INTO day_seal_leaves (seal_id, keys, leaves) VALUES (n, keys, leaves);
    RETURN n;
END
$fn$;
REVOKE ALL ON FUNCTION voiplog_seal_add(date, integer, bigint, text, text, bytea, bytea, text) FROM PUBLIC;

-- Records were written for these days: those already sealed are sealed again.
CREATE FUNCTION voiplog_days_touched(days date[]) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
    WITH marked AS (
        INSERT INTO day_dirty (day)
        SELECT DISTINCT s.day FROM day_seal s WHERE s.day = ANY (days)
        ON CONFLICT DO NOTHING RETURNING 1)
    SELECT count(*)::integer FROM marked
$fn$;
REVOKE ALL ON FUNCTION voiplog_days_touched(date[]) FROM PUBLIC;

-- Seals are never changed or deleted (voiplog_audit_refuse, migration 0005).
CREATE TRIGGER day_seal_no_update BEFORE UPDATE ON day_seal
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_refuse();
CREATE TRIGGER day_seal_no_delete BEFORE DELETE ON day_seal
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_refuse();
CREATE TRIGGER day_seal_no_truncate BEFORE TRUNCATE ON day_seal
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_refuse();
"""

# Changes to holds, held copies, the purge log and the writer bindings are
# written to the audit trail. Held copies are records: the trail gets their
# hashes, never their content.
AUDIT = """
CREATE OR REPLACE FUNCTION voiplog_audit_purge() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    PERFORM voiplog_audit_append(jsonb_build_object(
        'action', 'purge', 'outcome', 'ok', 'cutoff', NEW.cutoff, 'partitions', NEW.partitions,
        'rows_dropped', NEW.rows_dropped, 'rows_held', NEW.rows_held,
        'held_released', NEW.held_released, 'seals', NEW.seals, 'os_user', NEW.os_user));
    RETURN NULL;
END
$fn$;

CREATE FUNCTION voiplog_audit_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    before jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
    after jsonb := CASE WHEN TG_OP IN ('UPDATE', 'INSERT') THEN to_jsonb(NEW) END;
BEGIN
    PERFORM voiplog_audit_append(jsonb_build_object(
        'action', TG_TABLE_NAME || '.' || lower(TG_OP), 'outcome', 'ok',
        'before', before, 'after', after));
    RETURN NULL;
END
$fn$;

CREATE FUNCTION voiplog_audit_held() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
DECLARE
    items jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        items := '[]';
    ELSIF TG_OP = 'INSERT' THEN
        SELECT jsonb_agg(jsonb_build_object('hold_id', n.hold_id, 'uid', n.uid,
                   'after_sha256', encode(sha256(convert_to(n.record::text, 'UTF8')), 'hex')))
        INTO items FROM new_rows n;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT jsonb_agg(jsonb_build_object('hold_id', o.hold_id, 'uid', o.uid,
                   'before_sha256', encode(sha256(convert_to(o.record::text, 'UTF8')), 'hex')))
        INTO items FROM old_rows o;
    ELSE
        SELECT jsonb_agg(jsonb_build_object('hold_id', o.hold_id, 'uid', o.uid,
                   'before_sha256', encode(sha256(convert_to(o.record::text, 'UTF8')), 'hex'),
                   'after', to_jsonb(n) - 'record',
                   'after_sha256', encode(sha256(convert_to(n.record::text, 'UTF8')), 'hex')))
        INTO items FROM old_rows o JOIN new_rows n ON n.hold_id = o.hold_id AND n.uid = o.uid;
    END IF;
    IF TG_OP = 'TRUNCATE' OR items IS NOT NULL THEN
        PERFORM voiplog_audit_append(jsonb_build_object(
            'action', 'held_record.' || lower(TG_OP), 'outcome', 'ok', 'held', items,
            'records', jsonb_array_length(items)));
    END IF;
    RETURN NULL;
END
$fn$;

CREATE TRIGGER purge_log_audit_change AFTER UPDATE OR DELETE ON purge_log
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_change();
CREATE TRIGGER purge_log_audit_truncate AFTER TRUNCATE ON purge_log
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_change();
-- A hold's first release is audited as hold.release (migration 0005).
CREATE TRIGGER legal_hold_audit_change AFTER UPDATE ON legal_hold
    FOR EACH ROW WHEN (OLD.released_at IS NOT NULL OR NEW.released_at IS NULL
        OR (OLD.case_ref, OLD.selector, OLD.value, OLD.valid_from, OLD.valid_to, OLD.created_at,
            OLD.created_by, OLD.id)
           IS DISTINCT FROM
           (NEW.case_ref, NEW.selector, NEW.value, NEW.valid_from, NEW.valid_to, NEW.created_at,
            NEW.created_by, NEW.id))
    EXECUTE FUNCTION voiplog_audit_change();
CREATE TRIGGER legal_hold_audit_delete AFTER DELETE ON legal_hold
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_change();
CREATE TRIGGER legal_hold_audit_truncate AFTER TRUNCATE ON legal_hold
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_change();
CREATE TRIGGER held_record_audit_insert AFTER INSERT ON held_record
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_held();
CREATE TRIGGER held_record_audit_update AFTER UPDATE ON held_record
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_held();
CREATE TRIGGER held_record_audit_delete AFTER DELETE ON held_record
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_held();
CREATE TRIGGER held_record_audit_truncate AFTER TRUNCATE ON held_record
    FOR EACH STATEMENT EXECUTE FUNCTION voiplog_audit_held();
CREATE TRIGGER writer_pop_audit AFTER INSERT OR UPDATE OR DELETE ON writer_pop
    FOR EACH ROW EXECUTE FUNCTION voiplog_audit_change();
"""

FUNCTIONS = (
    "voiplog_pop_bindings()",
    "voiplog_pop_bindings_refresh()",
    "voiplog_pop_bound(text, text)",
    "voiplog_pop_unbound(text, text)",
    "voiplog_pop_refuse(text, text, text)",
    "voiplog_record_conflicts(text, jsonb)",
    "voiplog_content_sha256(jsonb)",
    "voiplog_seal_add(date, integer, bigint, text, text, bytea, bytea, text)",
    "voiplog_days_touched(date[])",
    "voiplog_days_to_seal(date)",
    "voiplog_seal_hash(bigint, date, integer, bigint, text, timestamptz, text, text, bytea)",
    "voiplog_record_leaf(text)",
    "voiplog_day_leaves(date)",
    "voiplog_audit_held()",
    "voiplog_audit_change()",
)


def upgrade() -> None:
    op.execute(TABLES)
    op.execute(POP_BOUND)
    op.execute("SELECT voiplog_pop_bindings_refresh()")
    op.execute(CONFLICTS)
    op.execute(RUN)
    op.execute(SEALS)
    op.execute(AUDIT)


def downgrade() -> None:
    for trigger, table in (
        ("writer_pop_audit", "writer_pop"),
        ("held_record_audit_truncate", "held_record"),
        ("held_record_audit_delete", "held_record"),
        ("held_record_audit_update", "held_record"),
        ("held_record_audit_insert", "held_record"),
        ("legal_hold_audit_truncate", "legal_hold"),
        ("legal_hold_audit_delete", "legal_hold"),
        ("legal_hold_audit_change", "legal_hold"),
        ("purge_log_audit_truncate", "purge_log"),
        ("purge_log_audit_change", "purge_log"),
        ("writer_pop_bindings", "writer_pop"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    op.execute(
        """
DO $$
BEGIN
    EXECUTE replace(pg_get_functiondef('voiplog_ensure_day_partitions(date)'::regprocedure),
                    'INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', 'INCLUDING DEFAULTS)');
END
$$
"""
    )
    op.execute("ALTER TABLE cdr DROP CONSTRAINT ck_cdr_pop_bound")
    op.execute("ALTER TABLE registration DROP CONSTRAINT ck_registration_pop_bound")
    op.execute(f"DROP FUNCTION voiplog_request_run({RUN_ARGS})")
    op.execute(
        f"ALTER FUNCTION voiplog_request_run_records({RUN_ARGS}) RENAME TO voiplog_request_run"
    )
    op.execute(
        """
CREATE OR REPLACE FUNCTION voiplog_audit_purge() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $fn$
BEGIN
    PERFORM voiplog_audit_append(jsonb_build_object(
        'action', 'purge', 'outcome', 'ok', 'cutoff', NEW.cutoff, 'partitions', NEW.partitions,
        'rows_dropped', NEW.rows_dropped, 'rows_held', NEW.rows_held,
        'held_released', NEW.held_released, 'os_user', NEW.os_user));
    RETURN NULL;
END
$fn$;
"""
    )
    for table in ("day_dirty", "day_seal_leaves", "day_seal", "record_conflict", "writer_pop"):
        op.execute(f"DROP TABLE {table}")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute("ALTER TABLE purge_log DROP COLUMN seals")
    op.execute("ALTER TABLE cdr DROP COLUMN inserted_by")
    op.execute("ALTER TABLE registration DROP COLUMN inserted_by")
