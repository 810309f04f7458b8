"""The store's tables as SQLAlchemy 2 typed models (the migrations create them).

`cdr` and `registration` are range-partitioned by day on the time
their record starts, so that retention drops whole partitions. Partitions are
named ``<table>_pYYYYMMDD`` and each table has a ``<table>_default`` partition
for timestamps far outside any day partition. A record's uid is derived from
its start time among other facts, so unique (uid, started_at) is unique uid.

A call is one row. Its media streams are a column of it, an array of the
composite type `media_stream`, rather than JSONB or rows of a child table:
typed fields keep the store honest about what it holds (an address is an inet,
SQL's network operators apply, a malformed value is refused at the door rather
than found years later), `unnest(media)` gives them as rows SQL can join,
count and filter, and one row per call instead of one per stream more besides
is what lets ingest keep up (migration 0004 measured about a third faster). The
subscriber and far-end objects are composite columns too (`subscriber_info`,
`remote_info`): Postgres parses JSON on every insert, and `(subscriber).id` is
a column SQL can compare and index. What has no fixed shape (a location's free
keys, keys beyond the contract) is JSONB; `extra` is NULL when a record has no
such keys.

Indexes are chosen for the questions asked of the store and for the ingest
rate (each index costs about as much as parsing the row). Records by number
(caller, callee) and by subscriber address are found through B-trees that are
not on `cdr` itself but on each day partition once the day is over
(``<partition>_<column>_idx``, built by the SQL function
`voiplog_index_closed_days`, which the writer calls): filled row by row as
records land, such indexes took a third of the ingest rate; built in one
sorted pass after the day, they cost about as much in all but not at the busy
hour. Questions about the current day scan its one partition. The primary
key leads with the start time, so that inserts append at the right edge of the
index instead of landing at random pages. Questions by media address scan the
day partitions concerned; an operator who asks them often can add an index in
a migration of their own.

Text compared in indexes (uids, numbers) uses the "C" collation: byte order is
what exact lookups need, and it is several times cheaper than a locale's.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CIDR, INET, INT4RANGE, JSONB, TSTZRANGE
from sqlalchemy.dialects.postgresql import base as postgresql_base
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Tables partitioned by day, with the column that decides the partition.
PARTITIONED = {"cdr": "started_at", "registration": "requested_at"}

Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Composite(UserDefinedType):
    """A composite type the migrations create (its fields are listed there)."""

    cache_ok = True
    type_name = ""

    def get_col_spec(self, **kw) -> str:
        return self.type_name


class MediaStreamType(_Composite):
    type_name = "media_stream"


class SubscriberInfoType(_Composite):
    type_name = "subscriber_info"


class RemoteInfoType(_Composite):
    type_name = "remote_info"


# Reflection (the schema check, autogenerate) then knows the columns' types.
postgresql_base.ischema_names.update(
    {t.type_name: t for t in (MediaStreamType, SubscriberInfoType, RemoteInfoType)}
)


class Cdr(Base):
    """One call-detail record, every field of the CDR contract v1 typed."""

    __tablename__ = "cdr"
    __table_args__ = (
        # The legs of one call behind a B2BUA, by the session they share: only
        # linked legs are in it, so that ingest keeps its speed (migration 0009).
        Index(
            "cdr_session_uid_idx",
            text("(extra->>'session_uid')"),
            postgresql_where=text("(extra->>'session_link') IS NOT NULL"),
        ),
        {"postgresql_partition_by": "RANGE (started_at)"},
    )

    started_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    uid: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(Text)
    caller: Mapped[str | None] = mapped_column(Text(collation="C"))
    callee: Mapped[str | None] = mapped_column(Text(collation="C"))
    caller_uri: Mapped[str | None] = mapped_column(Text)
    callee_uri: Mapped[str | None] = mapped_column(Text)
    request_uri: Mapped[str | None] = mapped_column(Text)
    caller_ip: Mapped[str | None] = mapped_column(INET)
    caller_port: Mapped[int | None] = mapped_column(Integer)
    callee_ip: Mapped[str | None] = mapped_column(INET)
    callee_port: Mapped[int | None] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(Text)
    subscriber_ip: Mapped[str | None] = mapped_column(INET)
    direction: Mapped[str | None] = mapped_column(Text)
    ringing_at: Mapped[datetime | None] = mapped_column(Timestamp)
    answered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    ended_at: Mapped[datetime | None] = mapped_column(Timestamp)
    duration_s: Mapped[float] = mapped_column(Float)
    setup_ms: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str] = mapped_column(Text)
    final_status: Mapped[int | None] = mapped_column(SmallInteger)
    ended_by: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    version: Mapped[int] = mapped_column(SmallInteger)
    extra: Mapped[dict | None] = mapped_column(JSONB)  # NULL: no keys beyond the contract
    pop: Mapped[str | None] = mapped_column(Text)
    sensor: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    # The login that inserted the row, filled by the database (migration 0007).
    inserted_by: Mapped[str | None] = mapped_column(Text, server_default=text("SESSION_USER"))
    # One element per RTP stream (one SSRC from one source address and port).
    media: Mapped[list] = mapped_column(ARRAY(MediaStreamType), server_default=text("'{}'"))
    subscriber: Mapped[object | None] = mapped_column(SubscriberInfoType)
    remote: Mapped[object | None] = mapped_column(RemoteInfoType)


class Registration(Base):
    """One REGISTER transaction (challenge and retry together): AoR <-> contact <-> time."""

    __tablename__ = "registration"
    __table_args__ = {"postgresql_partition_by": "RANGE (requested_at)"}

    requested_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    uid: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(Text)
    aor: Mapped[str | None] = mapped_column(Text)
    user: Mapped[str | None] = mapped_column(Text(collation="C"), index=True)
    contact_uri: Mapped[str | None] = mapped_column(Text)
    contact_ip: Mapped[str | None] = mapped_column(INET)
    contact_port: Mapped[int | None] = mapped_column(Integer)
    source_ip: Mapped[str | None] = mapped_column(INET, index=True)
    source_port: Mapped[int | None] = mapped_column(Integer)
    registrar_ip: Mapped[str | None] = mapped_column(INET)
    registrar_port: Mapped[int | None] = mapped_column(Integer)
    transport: Mapped[str | None] = mapped_column(Text)
    expires_s: Mapped[int | None] = mapped_column(Integer)
    auth_user: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(SmallInteger)
    result: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None] = mapped_column(Timestamp)
    subscriber_ip: Mapped[str | None] = mapped_column(INET)
    direction: Mapped[str | None] = mapped_column(Text)
    subscriber: Mapped[dict | None] = mapped_column(JSONB)
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    version: Mapped[int] = mapped_column(SmallInteger)
    extra: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'"))
    pop: Mapped[str | None] = mapped_column(Text)
    sensor: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    # The login that inserted the row, filled by the database (migration 0007).
    inserted_by: Mapped[str | None] = mapped_column(Text, server_default=text("SESSION_USER"))


class LegalHold(Base):
    """A case's order to keep matching records past their retention period."""

    __tablename__ = "legal_hold"
    __table_args__ = (
        CheckConstraint("selector IN ('number', 'ip', 'subscriber')", name="selector"),
        CheckConstraint("valid_to > valid_from", name="window"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_ref: Mapped[str] = mapped_column(Text)
    selector: Mapped[str] = mapped_column(Text)  # number, ip or subscriber
    value: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(Timestamp)
    valid_to: Mapped[datetime] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    created_by: Mapped[str] = mapped_column(Text)
    released_at: Mapped[datetime | None] = mapped_column(Timestamp)
    released_by: Mapped[str | None] = mapped_column(Text)


class HeldRecord(Base):
    """A copy of a record under a legal hold, taken before its partition was dropped."""

    __tablename__ = "held_record"

    hold_id: Mapped[int] = mapped_column(ForeignKey("legal_hold.id"), primary_key=True)
    uid: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    record: Mapped[dict] = mapped_column(JSONB)  # the whole record, media included
    held_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))


class PurgeLog(Base):
    """One row per purge that changed something: when, who, up to when, what went."""

    __tablename__ = "purge_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purged_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    os_user: Mapped[str] = mapped_column(Text)
    db_user: Mapped[str] = mapped_column(Text, server_default=text("current_user"))
    cutoff: Mapped[datetime] = mapped_column(Timestamp)
    partitions: Mapped[list[str]] = mapped_column(ARRAY(Text))
    rows_dropped: Mapped[int] = mapped_column(BigInteger)
    rows_held: Mapped[int] = mapped_column(BigInteger)
    held_released: Mapped[int] = mapped_column(BigInteger)
    # The last seal of each day dropped: [{day, version, records, root, hash}].
    seals: Mapped[list | None] = mapped_column(JSONB)


class Lease(Base):
    """Who held an address or prefix over a time range (RADIUS, DHCP/BNG exports)."""

    __tablename__ = "lease"
    __table_args__ = (Index("lease_subscriber_idx", "subscriber_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    network: Mapped[str] = mapped_column(CIDR)
    valid: Mapped[object] = mapped_column(TSTZRANGE)
    subscriber_id: Mapped[str] = mapped_column(Text)
    account: Mapped[str | None] = mapped_column(Text)
    access_line: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class CgnatBlock(Base):
    """A CGNAT port block: public address and ports to a private address, over a time range."""

    __tablename__ = "cgnat_block"
    __table_args__ = (Index("cgnat_block_private_idx", "private_ip"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    public_ip: Mapped[str] = mapped_column(INET)
    port: Mapped[object] = mapped_column(INT4RANGE)
    private_ip: Mapped[str] = mapped_column(INET)
    valid: Mapped[object] = mapped_column(TSTZRANGE)
    source: Mapped[str] = mapped_column(Text)


class AccessRequest(Base):
    """A lawful-access request: who asked, on what authority, for which selectors and window.

    States follow ETSI TS 103 120 lawful disclosure. Rows are written only by
    the SQL functions of migration 0005 (register, decide, run, expire); the
    database refuses an approval by the role that registered the request.
    """

    __tablename__ = "access_request"
    __table_args__ = (
        CheckConstraint(
            "state IN ('awaiting_approval', 'approved', 'disclosed', 'rejected', 'cancelled', 'expired')",
            name="state",
        ),
        CheckConstraint("approved_by <> registered_by", name="second_person"),
        CheckConstraint(
            "state NOT IN ('approved', 'disclosed') OR approved_by IS NOT NULL", name="approved"
        ),
        CheckConstraint("valid_until > valid_from", name="validity"),
        CheckConstraint("window_to > window_from", name="window"),
        CheckConstraint("max_records BETWEEN 1 AND 1000000", name="max_records"),
        CheckConstraint("authorisation_sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
        CheckConstraint(
            "jsonb_typeof(selectors) = 'array' AND jsonb_array_length(selectors) > 0",
            name="selectors",
        ),
        Index("ix_access_request_case_ref", "case_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, Identity(always=True), primary_key=True)
    state: Mapped[str] = mapped_column(Text, server_default=text("'awaiting_approval'"))
    case_ref: Mapped[str] = mapped_column(Text)
    agency: Mapped[str] = mapped_column(Text)
    officer_name: Mapped[str] = mapped_column(Text)
    officer_rank: Mapped[str | None] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    authorisation_ref: Mapped[str] = mapped_column(Text)
    authorisation_sha256: Mapped[str | None] = mapped_column(Text)  # of the order document
    valid_from: Mapped[datetime] = mapped_column(Timestamp)  # the authorisation's validity
    valid_until: Mapped[datetime] = mapped_column(Timestamp)
    window_from: Mapped[datetime] = mapped_column(Timestamp)  # the records asked for
    window_to: Mapped[datetime] = mapped_column(Timestamp)
    selectors_entered: Mapped[dict] = mapped_column(JSONB)  # as the officer gave them
    selectors: Mapped[dict] = mapped_column(JSONB)  # as searched
    broad: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    max_records: Mapped[int] = mapped_column(Integer, server_default=text("10000"))
    delivery: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    registered_by: Mapped[str] = mapped_column(Text, server_default=text("SESSION_USER"))
    registered_os_user: Mapped[str] = mapped_column(Text)
    approved_at: Mapped[datetime | None] = mapped_column(Timestamp)
    approved_by: Mapped[str | None] = mapped_column(Text)
    approved_os_user: Mapped[str | None] = mapped_column(Text)
    disclosed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    closed_by: Mapped[str | None] = mapped_column(Text)
    closed_os_user: Mapped[str | None] = mapped_column(Text)
    close_reason: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    """One entry of the append-only, hash-chained audit trail (never record data)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_at", "at"),
        Index("ix_audit_event_case_ref", "case_ref"),
        Index("ix_audit_event_request_id", "request_id"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(Timestamp)
    event: Mapped[dict] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text, Computed("event->>'action'"))
    request_id: Mapped[int | None] = mapped_column(
        Integer, Computed("(event->>'request_id')::integer")
    )
    case_ref: Mapped[str | None] = mapped_column(Text, Computed("event->>'case_ref'"))


class WriterPop(Base):
    """The POP whose records a writer login may write (filled by the admin)."""

    __tablename__ = "writer_pop"

    role: Mapped[str] = mapped_column(Text, primary_key=True)
    pop: Mapped[str] = mapped_column(Text)
    bound_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    bound_by: Mapped[str] = mapped_column(Text, server_default=text("SESSION_USER"))


class RecordConflict(Base):
    """A record that arrived under a stored key with other content; the stored one stays."""

    __tablename__ = "record_conflict"
    __table_args__ = (
        UniqueConstraint("tbl", "uid", "at", "arrived_sha256"),
        Index("ix_record_conflict_uid", "uid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    tbl: Mapped[str] = mapped_column(Text)
    uid: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(Timestamp)
    seen_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    inserted_by: Mapped[str] = mapped_column(Text, server_default=text("SESSION_USER"))
    stored_sha256: Mapped[str] = mapped_column(Text)
    arrived_sha256: Mapped[str] = mapped_column(Text)
    arrived: Mapped[dict] = mapped_column(JSONB)


class DaySeal(Base):
    """One version of a day's seal: Merkle root and count, chained, optionally signed."""

    __tablename__ = "day_seal"
    __table_args__ = (UniqueConstraint("day", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    record_count: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(Text)
    sealed_at: Mapped[datetime] = mapped_column(Timestamp)
    sealed_by: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    certificate: Mapped[str | None] = mapped_column(Text)


class DaySealLeaves(Base):
    """The leaves and keys of the last seal version of a day, kept while the day is stored."""

    __tablename__ = "day_seal_leaves"

    seal_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    keys: Mapped[str] = mapped_column(Text)
    leaves: Mapped[bytes] = mapped_column(LargeBinary)
    # How the leaves hash a row: 1 the whole row (0007), 2 without type OIDs (0008).
    form: Mapped[int] = mapped_column(SmallInteger, server_default=text("2"))


class DayDirty(Base):
    """A day that took records after its last seal, or was never sealed: sealed (again)
    once it is over, as a new version (migration 0014)."""

    __tablename__ = "day_dirty"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # The transaction that made the mark (pg_current_xact_id(); 0 before migration
    # 0014): a seal clears it only when the snapshot it read the day in sees it.
    marked_in: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, server_default=text("0")
    )
    since: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
