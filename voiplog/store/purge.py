"""Retention: drop whole day partitions older than the cutoff, keeping held records.

The plan lists every day partition wholly before the cutoff (a day is dropped
only once all of it is past the cutoff), the rows in each, the rows of the
default partitions before the cutoff, the records that active legal holds
want kept and are not yet kept, and held copies whose hold was released and
whose record is past the cutoff. `execute` does exactly that, under an
advisory lock so that two POPs never purge at once: for each day, held records
are first copied into `held_record` (whole record, media included), then the
day's partitions are dropped, never emptied with DELETE. Rows that ended up in
a default partition (clock far off) are deleted individually, after the same
copying. One purge-log row records when, who, the cutoff, the partitions and
the row counts.

Each day is checked against its seal first (see `seal`): a day whose records
no longer match it stops the purge before anything is dropped. A day that
took records after its seal, or was never sealed, is sealed as it is dropped,
its partitions locked. The purge-log row keeps the seal (version, record
count, root, hash) of every day dropped, so that a record exported earlier,
with its inclusion proof, can be shown to be one of the day purged and the
purge to have removed exactly what was sealed. The leaves kept with a seal
(they name the day's calls) go with the day.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field

import psycopg2
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

PURGE_LOCK = 0x766F69706C7067  # distinct from the migration lock
_PARTITION = re.compile(r"^(cdr|registration)_p(\d{8})$")
_TIME_COLUMN = {"cdr": "started_at", "registration": "requested_at"}

# The whole record of a cdr row `c` as a JSON document, media included.
# Objects kept whole in extra (they did not fit their typed columns) win.
_CDR_DOC = "(to_jsonb(c) - 'extra' - 'stored_at') || COALESCE(c.extra, '{}')"
_REGISTRATION_DOC = "(to_jsonb(c) - 'extra' - 'stored_at') || c.extra"

# Which records a hold `h` covers: its selector, and a lifetime overlapping its window.
_CDR_MATCH = """
h.released_at IS NULL
AND c.started_at < h.valid_to AND COALESCE(c.ended_at, c.started_at) >= h.valid_from
AND CASE h.selector
    WHEN 'number' THEN c.caller = h.value OR c.callee = h.value
    WHEN 'subscriber' THEN (c.subscriber).id = h.value OR c.extra->'subscriber'->>'id' = h.value
    WHEN 'ip' THEN c.caller_ip <<= h.value::inet OR c.callee_ip <<= h.value::inet
        OR c.subscriber_ip <<= h.value::inet
        OR EXISTS (SELECT 1 FROM unnest(c.media) m
                   WHERE m.src_ip <<= h.value::inet OR m.dst_ip <<= h.value::inet)
    END
"""
_REGISTRATION_MATCH = """
h.released_at IS NULL
AND c.requested_at < h.valid_to AND c.requested_at >= h.valid_from
AND CASE h.selector
    WHEN 'number' THEN c."user" = h.value
    WHEN 'subscriber' THEN c.subscriber->>'id' = h.value
    WHEN 'ip' THEN c.source_ip <<= h.value::inet OR c.contact_ip <<= h.value::inet
        OR c.subscriber_ip <<= h.value::inet
    END
"""


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    table: str
    name: str
    day: dt.date
    rows: int


@dataclass(frozen=True, slots=True)
class PurgePlan:
    cutoff: dt.datetime
    partitions: tuple[PartitionPlan, ...]
    default_rows: dict[str, int] = field(default_factory=dict)  # rows before the cutoff
    to_hold: int = 0  # (hold, record) pairs to copy before dropping
    released: int = 0  # held copies of released holds, past the cutoff

    @property
    def rows_dropped(self) -> int:
        return sum(p.rows for p in self.partitions) + sum(self.default_rows.values())

    def lines(self) -> list[str]:
        """The plan as text for the operator."""
        out = [f"cutoff: {self.cutoff.isoformat()}"]
        if not self.partitions and not any(self.default_rows.values()):
            out.append("nothing to purge")
        for part in self.partitions:
            out.append(f"drop partition {part.name} ({part.day}): {part.rows} rows")
        for table, rows in sorted(self.default_rows.items()):
            if rows:
                out.append(f"delete from {table}_default: {rows} rows before the cutoff")
        out.append(f"rows dropped: {self.rows_dropped}")
        out.append(f"records kept for legal holds: {self.to_hold}")
        out.append(f"held copies of released holds removed: {self.released}")
        return out


def cutoff_for(
    older_than_days: float | None = None, before: dt.date | None = None, now=None
) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    if before is not None:
        return dt.datetime(before.year, before.month, before.day, tzinfo=dt.UTC)
    return now - dt.timedelta(days=older_than_days)


def _day_partitions(connection: Connection, cutoff: dt.datetime) -> list[tuple[str, str, dt.date]]:
    rows = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname IN ('cdr', 'registration')"
        )
    ).scalars()
    found = []
    for name in rows:
        match = _PARTITION.match(name)
        if not match:
            continue
        day = dt.datetime.strptime(match.group(2), "%Y%m%d").date()
        end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
        if end <= cutoff:
            found.append((match.group(1), name, day))
    return sorted(found, key=lambda item: (item[2], item[0]))


def _count(connection: Connection, sql: str, **params) -> int:
    return int(connection.execute(text(sql), params).scalar_one())


def _hold_sql(source: str, table: str, where: str = "", insert: bool = False) -> str:
    doc, match = (
        (_CDR_DOC, _CDR_MATCH) if table == "cdr" else (_REGISTRATION_DOC, _REGISTRATION_MATCH)
    )
    column = _TIME_COLUMN[table]
    pairs = f"""
FROM {source} c JOIN legal_hold h ON ({match})
WHERE NOT EXISTS (SELECT 1 FROM held_record r WHERE r.hold_id = h.id AND r.uid = c.uid) {where}
"""
    if insert:
        return (
            "INSERT INTO held_record (hold_id, uid, kind, started_at, record) "
            f"SELECT h.id, c.uid, c.kind, c.{column}, {doc} {pairs} ON CONFLICT DO NOTHING"
        )
    return f"SELECT count(*) {pairs}"


def hold_status(connection: Connection, include_released: bool = False) -> list:
    """Holds with what each keeps: records in the store it covers now (active holds
    only) and copies kept past purges, oldest hold first."""
    return connection.execute(
        text(
            "SELECT h.id, h.case_ref, h.selector, h.value, h.valid_from, h.valid_to, "
            "h.created_at, h.created_by, h.released_at, h.released_by, "
            "(SELECT count(*) FROM held_record r WHERE r.hold_id = h.id) AS copied, "
            "CASE WHEN h.released_at IS NULL THEN "
            f"(SELECT count(*) FROM cdr c WHERE {_CDR_MATCH}) "
            f"+ (SELECT count(*) FROM registration c WHERE {_REGISTRATION_MATCH}) "
            "END AS in_store "
            "FROM legal_hold h WHERE :all OR h.released_at IS NULL ORDER BY h.id"
        ),
        {"all": include_released},
    ).all()


_RELEASED = """
FROM held_record r JOIN legal_hold h ON h.id = r.hold_id
WHERE h.released_at IS NOT NULL AND r.started_at < :cutoff
"""


def make_plan(engine: Engine, cutoff: dt.datetime) -> PurgePlan:
    """What a purge at `cutoff` would do; changes nothing."""
    with engine.connect() as connection:
        return _plan(connection, cutoff)


def _plan(connection: Connection, cutoff: dt.datetime) -> PurgePlan:
    partitions = []
    to_hold = 0
    holds = _count(connection, "SELECT count(*) FROM legal_hold WHERE released_at IS NULL")
    for table, name, day in _day_partitions(connection, cutoff):
        rows = _count(connection, f"SELECT count(*) FROM {name}")
        partitions.append(PartitionPlan(table, name, day, rows))
        if holds:
            to_hold += _count(connection, _hold_sql(name, table))
    default_rows = {}
    for table, column in _TIME_COLUMN.items():
        default_rows[table] = _count(
            connection,
            f"SELECT count(*) FROM {table}_default WHERE {column} < :cutoff",
            cutoff=cutoff,
        )
        if holds:
            to_hold += _count(
                connection,
                _hold_sql(f"{table}_default", table, f"AND c.{column} < :cutoff"),
                cutoff=cutoff,
            )
    released = _count(connection, f"SELECT count(*) {_RELEASED}", cutoff=cutoff)
    return PurgePlan(cutoff, tuple(partitions), default_rows, to_hold, released)


class PlanChangedError(Exception):
    """The store changed between the plan shown and the purge (another purge ran)."""


class SealMismatchError(Exception):
    """A day to drop no longer matches its seal: nothing was dropped (message names it)."""


def _day_root(connection: Connection, day: dt.date, form: int | None) -> tuple[int, str]:
    """(count, root) of the day's records as they are now, in leaf `form` (that of new
    seals when None)."""
    from voiplog.store import seal

    return _root(connection, seal.DAY_HASHES[form or seal.FORM], day)


def _root(connection: Connection, function: str, day: dt.date) -> tuple[int, str]:
    """(count, root) of the leaves `function(day)` gives (`seal._root` on this engine)."""
    from voiplog.store import seal

    column = seal.root_column(connection.execute(text(seal.EXTENSION_SCHEMA)).scalar())
    count, value = connection.execute(
        text(f"SELECT records, {column} FROM {function}(:day)"), {"day": day}
    ).one()
    return count, seal.root_of(value)


def _last_seal(connection: Connection, day: dt.date):
    return connection.execute(
        text(
            "SELECT id, version, record_count, root, hash, "
            "EXISTS (SELECT 1 FROM day_dirty y WHERE y.day = s.day) AS dirty, "
            "(SELECT l.form FROM day_seal_leaves l WHERE l.seal_id = s.id) AS form "
            "FROM day_seal s WHERE s.day = :day ORDER BY version DESC LIMIT 1"
        ),
        {"day": day},
    ).one_or_none()


def _check_seals(connection: Connection, days) -> None:
    """Refuse the purge when a day's records no longer match its seal (a day that took
    records after its seal, or was never sealed, is sealed when dropped)."""
    for day in days:
        last = _last_seal(connection, day)
        if last is None or last.dirty:
            continue
        count, root = _day_root(connection, day, last.form)
        if (count, root) != (last.record_count, last.root):
            raise SealMismatchError(
                f"{day}: its records no longer match seal version {last.version} "
                f"({count} records now, {last.record_count} sealed); nothing was purged: "
                f"see `voiplog store verify --day {day}`"
            )


def _seal_for_drop(connection: Connection, day: dt.date, parts) -> dict:
    """The seal of a day about to be dropped, its partitions locked: the last one, which
    `_check_seals` found the records to match (its count is checked again now that no
    record can arrive), else a new version sealed now (late records, or none yet)."""
    for part in parts:
        connection.execute(text(f"LOCK TABLE {part.name} IN ACCESS EXCLUSIVE MODE"))
    last = _last_seal(connection, day)
    if last is not None and not last.dirty:
        count = sum(_count(connection, f"SELECT count(*) FROM {part.name}") for part in parts)
        if count != last.record_count:
            raise SealMismatchError(
                f"{day}: {count} records, seal version {last.version} has "
                f"{last.record_count}; see `voiplog store verify --day {day}`"
            )
    else:
        count, root = _root(connection, "voiplog_seal_stage", day)
        version = (last.version if last is not None else 0) + 1
        connection.execute(
            text("SELECT voiplog_seal_add(:day, :v, :n, :root, NULL, NULL, NULL, NULL)"),
            {"day": day, "v": version, "n": count, "root": root},
        )
        last = _last_seal(connection, day)
    # The keys name the day's calls: past the retention they go with the records.
    connection.execute(
        text("DELETE FROM day_seal_leaves l USING day_seal s WHERE s.id = l.seal_id AND s.day = :day"),
        {"day": day},
    )  # fmt: skip
    return {
        "day": day.isoformat(),
        "version": last.version,
        "records": last.record_count,
        "root": last.root,
        "hash": last.hash,
    }


class PurgeLockError(Exception):
    """A lock the purge needs was not granted in time (the message says which, in a line)."""


def _lock_not_granted(exc: OperationalError) -> bool:
    return isinstance(getattr(exc, "orig", None), psycopg2.errors.LockNotAvailable)


# Dropping a partition takes an ACCESS EXCLUSIVE lock on its parent: while the
# request waits for the sessions reading the table (a seal, a lawful-access run,
# an export), every writer's COPY queues behind it. It is asked for in tries of
# at most this long, with a pause between them for the writers to go on.
DROP_TRY_S = 0.2


def _drop_partition(connection: Connection, name: str, lock_timeout_s: float) -> None:
    """DROP TABLE `name` (its own lock taken already), the parent's lock asked for in
    tries of `DROP_TRY_S` for at most `lock_timeout_s` in all: writers wait behind the
    request no longer than a try, whatever reads the parent meanwhile."""
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try_ms = max(1, int(1000 * min(DROP_TRY_S, deadline - time.monotonic())))
        savepoint = connection.begin_nested()
        try:
            # SET LOCAL: undone with the savepoint, or at the day's commit.
            connection.execute(text(f"SET LOCAL lock_timeout = '{try_ms}ms'"))
            connection.execute(text(f"DROP TABLE {name}"))
        except OperationalError as exc:
            savepoint.rollback()  # the lock asked for goes with it
            if not _lock_not_granted(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(min(DROP_TRY_S, max(0.0, deadline - time.monotonic())))
            continue
        savepoint.commit()
        return


def execute(
    engine: Engine, plan: PurgePlan, os_user: str, lock_timeout_s: float = 30.0
) -> PurgePlan:
    """Carry out `plan`; returns what was done (the plan as re-checked under the lock).

    Each lock (the purge lock, a partition to drop) is waited for at most
    `lock_timeout_s`; then `PurgeLockError`, the days dropped before staying dropped.
    """
    with engine.connect() as connection:
        connection.execute(text(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'"))
        try:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PURGE_LOCK})
        except OperationalError as exc:
            if not _lock_not_granted(exc):
                raise
            raise PurgeLockError(
                f"another purge is running (the purge lock was not free within "
                f"{lock_timeout_s:g} s); nothing was changed"
            ) from None
        try:
            done = _plan(connection, plan.cutoff)  # what is true now, under the lock
            days = sorted({p.day for p in done.partitions})
            _check_seals(connection, days)
            connection.commit()
            seals = []
            for day in days:
                parts = [p for p in done.partitions if p.day == day]
                seals.append(_seal_for_drop(connection, day, parts))
                for part in parts:
                    if done.to_hold:
                        connection.execute(text(_hold_sql(part.name, part.table, insert=True)))
                for part in parts:
                    _drop_partition(connection, part.name, lock_timeout_s)
                connection.commit()  # one day at a time: short locks, progress kept
            for table, column in _TIME_COLUMN.items():
                if not done.default_rows.get(table):
                    continue
                connection.execute(
                    text(_hold_sql(f"{table}_default", table, f"AND c.{column} < :cutoff", insert=True)),
                    {"cutoff": plan.cutoff},
                )  # fmt: skip
                connection.execute(
                    text(f"DELETE FROM {table}_default WHERE {column} < :cutoff"),
                    {"cutoff": plan.cutoff},
                )
            connection.execute(
                text("DELETE FROM held_record r USING legal_hold h WHERE h.id = r.hold_id AND h.released_at IS NOT NULL AND r.started_at < :cutoff"),
                {"cutoff": plan.cutoff},
            )  # fmt: skip
            if done.partitions or done.rows_dropped or done.released:
                connection.execute(
                    text(
                        "INSERT INTO purge_log (os_user, cutoff, partitions, rows_dropped, "
                        "rows_held, held_released, seals) "
                        "VALUES (:who, :cutoff, :parts, :rows, :held, :rel, CAST(:seals AS jsonb))"
                    ),
                    {
                        "who": os_user,
                        "cutoff": plan.cutoff,
                        "parts": [p.name for p in done.partitions],
                        "rows": done.rows_dropped,
                        "held": done.to_hold,
                        "rel": done.released,
                        "seals": json.dumps(seals),
                    },
                )
            connection.commit()
        except OperationalError as exc:
            if not _lock_not_granted(exc):
                raise
            first = str(exc.orig).strip().splitlines()[0]
            raise PurgeLockError(
                f"a table to purge is in use by another session ({first}: not granted within "
                f"{lock_timeout_s:g} s); days dropped before it stay dropped, run it again later"
            ) from None
        finally:
            connection.rollback()  # a statement that failed leaves the transaction aborted
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PURGE_LOCK})
            connection.commit()
    return done
