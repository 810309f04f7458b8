"""The store writer: records into the spool, a drainer thread from the spool into Postgres.

`put` is all the pipeline sees: it renders the record to binary COPY rows
and appends them to the durable spool. A background thread seals the open
segment every `seal_interval_s` and drains sealed segments into Postgres, one
transaction per segment (binary COPY, or through staging tables when some
records are stored already; see `_ingest`). Several drainers (one connection
each) take segments in parallel. A segment leaves the spool only after its
transaction committed, so a crash at any point leaves each record either
stored or still spooled, and draining it again stores nothing twice.

Postgres unreachable (or refusing for a reason that is not the data, such as a
missing privilege): the drainers back off (up to 30 s between attempts) and
the spool grows; nothing is dropped. A segment Postgres refuses as data is
split: good records are stored, each refused one is kept in ``rejected/`` next
to the spool (as spool entries, with the reason beside them) and logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

import orjson
import psycopg2

from voiplog.store import _ingest, migrate
from voiplog.store.database import connect, describe
from voiplog.store.errors import SchemaBehindError
from voiplog.store.spool import Spool, frame, iter_entries

log = logging.getLogger("voiplog.store")

_MAX_BACKOFF_S = 30.0
_COPY_CHUNK = 1 << 20  # bytes handed to libpq per call: fewer round trips through Python
_INDEX_EVERY_S = 600.0  # how often the first drainer has the days that are over indexed
# Refusals of the data itself: the record is set aside, the rest stored. Any
# other database error (a missing privilege, a schema changed underneath) is
# the store's problem, not the record's: the segment stays spooled.
_REFUSED_AS_DATA = (psycopg2.DataError, psycopg2.IntegrityError)


class _Link:
    """One drainer's connection to Postgres."""

    def __init__(self) -> None:
        self.connection = None
        self.media_oid = 0  # of the media_stream type, which media arrays name


class StoreWriter:
    """Spool-backed, batched, idempotent writer of records into the Postgres store."""

    def __init__(
        self,
        dsn: str,
        spool: Spool,
        *,
        pop: str | None = None,
        sensor: str | None = None,
        partitions_ahead_days: int = 7,
        accept_past_days: int = 7300,
        seal_interval_s: float = 1.0,
        drainers: int = 2,
        memo_bytes: int = 128 << 20,
        today=None,
    ) -> None:
        self.dsn = dsn
        self.spool = spool
        self.pop = pop
        self.sensor = sensor
        self.partitions_ahead_days = partitions_ahead_days
        self.accept_past_days = accept_past_days
        self.seal_interval_s = seal_interval_s
        self.drainers = max(1, drainers)
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._lock = threading.Lock()
        self._claimed: set[Path] = set()
        self._days: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._link = _Link()  # for drain_once called from the caller's thread
        self._media_oid = 0  # as the database last named it; records are rendered with it
        # Segments' COPY streams are kept in memory as they are spooled (up to
        # memo_bytes), so that draining them takes no pass over their records;
        # a backlog beyond that (an outage) is read back from the files.
        spool.keep_memos(_ingest.Batch, memo_bytes)
        self._outage_since: float | None = None
        self._backoff_s = 0.0
        self.records_put = 0
        self.records_stored = 0  # records drained (already-stored duplicates included)
        self.records_rejected = 0
        self.last_batch_s = 0.0

    # -- pipeline side -------------------------------------------------------

    def put(self, record) -> None:
        """Spool a record (anything with the contract's `to_dict`)."""
        self.put_dict(record.to_dict())

    def put_dict(self, doc: dict) -> None:
        """Spool a record given as its contract dict.

        A record that cannot be stored (a value its column cannot take) is kept
        as its JSON line in ``rejected/`` next to the spool, and logged.
        """
        try:
            rendered = _ingest.render(doc, self.pop, self.sensor, self._media_oid)
        except _ingest.RenderError as exc:
            self._reject_json(doc, str(exc))
            return
        self.spool.append(rendered)
        self.records_put += 1

    def _reject_json(self, doc: dict, reason: str) -> None:
        rejected_dir = self.spool.directory / "rejected"
        rejected_dir.mkdir(exist_ok=True, mode=0o700)
        with open(rejected_dir / "unstorable.jsonl", "ab") as kept:
            kept.write(orjson.dumps({"reason": reason, "record": doc}, default=str) + b"\n")
        with self._lock:
            self.records_rejected += 1
        log.error(
            "record %s cannot be stored (%s); kept in %s",
            doc.get("uid"),
            reason,
            rejected_dir / "unstorable.jsonl",
        )

    @property
    def healthy(self) -> bool:
        return self._outage_since is None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> StoreWriter:
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"voiplog-store-{n}", daemon=True)
            for n in range(self.drainers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self, drain_timeout_s: float = 30.0) -> int:
        """Stop the drainers, seal the spool and store what can be stored within the time.

        Returns the number of records left in the spool (0 when all landed).
        """
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        self.spool.close()
        deadline = time.monotonic() + drain_timeout_s
        while self.spool.ready() and time.monotonic() < deadline:
            if not self.drain_once():
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        left_s = deadline - time.monotonic()
        if not self.spool.ready() and left_s > 0.5 and self._outage_since is None:
            # Records of past days (a replayed capture) are indexed now, not at
            # the next start, if that fits in the time left.
            self.index_closed_days(self._link, timeout_s=left_s)
        self._disconnect(self._link)
        return self.spool.pending_records()

    def __enter__(self) -> StoreWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, number: int) -> None:
        link = _Link()
        last_seal = time.monotonic()
        last_index = last_seal - _INDEX_EVERY_S
        try:
            while not self._stop.is_set():
                if number == 0:
                    self.spool.tick()
                    now = time.monotonic()
                    if now - last_seal >= self.seal_interval_s:
                        self.spool.seal()
                        last_seal = now
                    if now - last_index >= _INDEX_EVERY_S and self._outage_since is None:
                        last_index = now
                        self.index_closed_days(link)
                if self._outage_since is not None and self._stop.wait(self._backoff_s):
                    break
                try:
                    drained = self.drain_once(link, newest_first=number % 2 == 1)
                except Exception:
                    # A bug must not silently stop the draining: the records
                    # stay spooled, the error is logged, and it is tried again.
                    log.exception("store drainer %d failed; retrying in 5 s", number)
                    self._disconnect(link)
                    self._stop.wait(5.0)
                    continue
                if not drained:
                    self._stop.wait(0.05)
        finally:
            self._disconnect(link)

    # -- draining ------------------------------------------------------------

    def drain_once(self, link: _Link | None = None, newest_first: bool = False) -> bool:
        """Store the oldest (or newest) unclaimed sealed segment; False when none or
        Postgres failed.

        With a backlog, odd-numbered drainers take the newest segments: two
        drainers then write far-apart times, not the same right edge of the
        time-ordered indexes, which would make them wait on each other's pages.
        """
        link = link or self._link
        with self._lock:
            ready = self.spool.ready()
            if newest_first:
                ready.reverse()
            segment = next((s for s in ready if s not in self._claimed), None)
            if segment is None:
                return False
            self._claimed.add(segment)
        try:
            try:
                self._store_segment(link, segment)
            except (psycopg2.Error, SchemaBehindError) as exc:
                self._outage(link, exc)
                return False
            self.spool.remove(segment)
        finally:
            with self._lock:
                self._claimed.discard(segment)
        with self._lock:
            if self._outage_since is not None:
                log.warning(
                    "database %s is back after %.1f s; draining the spool",
                    describe(self.dsn),
                    time.monotonic() - self._outage_since,
                )
            self._outage_since = None
            self._backoff_s = 0.0
        return True

    def index_closed_days(self, link: _Link | None = None, timeout_s: float | None = None) -> int:
        """Have the look-up indexes built on day partitions before today; returns how many.

        The day being written has none, so that rows land at full speed (see
        migration 0003); a day that is over gets them in one bulk build. A
        failure is logged and left for the next call: records are not at stake.
        """
        link = link or self._link
        try:
            connection = self._connect(link)
            with connection.cursor() as cursor:
                if timeout_s is not None:
                    cursor.execute("SET LOCAL statement_timeout = %s", (int(timeout_s * 1000),))
                started = time.perf_counter()
                cursor.execute("SELECT voiplog_index_closed_days(%s)", (self._today(),))
                made = cursor.fetchone()[0]
            connection.commit()
        except (psycopg2.Error, SchemaBehindError) as exc:
            self._disconnect(link)
            log.warning(
                "indexing the day partitions that are over failed (%s); tried again later",
                _first_line(exc),
            )
            return 0
        if made:
            log.info(
                "indexed %d day partition(s) that are over in %.1f s",
                made,
                time.perf_counter() - started,
            )
        return made

    def _outage(self, link: _Link, exc: Exception) -> None:
        self._disconnect(link)
        with self._lock:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log.error(
                    "database %s unusable (%s); records stay in the spool %s until it is back",
                    describe(self.dsn),
                    _first_line(exc),
                    self.spool.directory,
                )
            self._backoff_s = min(_MAX_BACKOFF_S, max(0.25, self._backoff_s * 2))

    def _connect(self, link: _Link):
        if link.connection is None or link.connection.closed:
            connection = connect(self.dsn)
            try:
                self._check_schema(connection)
                link.media_oid = self._media_oid = self._type_oid(connection)
                self._ensure_days(connection, self._window_days(), force=True)
            except Exception:
                connection.close()
                raise
            link.connection = connection
        return link.connection

    def _check_schema(self, connection) -> None:
        # Checked on every new connection: the database may have been swapped
        # or migrated while records waited in the spool.
        with connection.cursor() as cursor:
            try:
                cursor.execute("SELECT version_num FROM alembic_version")
                row = cursor.fetchone()
            except psycopg2.errors.UndefinedTable:
                row = None
        connection.rollback()
        wanted = migrate.head()
        if row is None or row[0] != wanted:
            raise SchemaBehindError(
                f"database {describe(self.dsn)}: schema at revision "
                f"{row[0] if row else 'none'}, this voiplog writes {wanted}; "
                "run `voiplog db upgrade`"
            )

    @staticmethod
    def _type_oid(connection) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'media_stream'::regtype::oid")
            (oid,) = cursor.fetchone()
        connection.rollback()
        return oid

    @staticmethod
    def _disconnect(link: _Link) -> None:
        if link.connection is not None:
            with contextlib.suppress(psycopg2.Error):
                link.connection.close()
            link.connection = None

    def _window_days(self) -> list[str]:
        today = self._today()
        return [
            (today + dt.timedelta(days=n)).isoformat()
            for n in range(-1, self.partitions_ahead_days + 1)
        ]

    def _ensure_days(self, connection, days: Iterable[str], force: bool = False) -> None:
        with self._lock:
            wanted = sorted(set(days) if force else set(days) - self._days)
        if not wanted:
            return
        today = self._today()
        oldest = today - dt.timedelta(days=self.accept_past_days)
        newest = today + dt.timedelta(days=self.partitions_ahead_days)
        with connection.cursor() as cursor:
            for day in wanted:
                try:
                    date = dt.date.fromisoformat(day)
                except ValueError:
                    date = None
                if date is None or not oldest <= date <= newest:
                    log.warning(
                        "records dated %s are far outside the partition window (%s .. %s): "
                        "they go to the default partitions; check the capture's clock",
                        day,
                        oldest,
                        newest,
                    )
                else:
                    cursor.execute("SELECT voiplog_ensure_day_partitions(%s)", (date,))
        connection.commit()
        with self._lock:
            self._days.update(wanted)

    def _store_segment(self, link: _Link, segment: Path) -> None:
        connection = self._connect(link)
        started = time.perf_counter()
        memo = self.spool.memo(segment)
        if memo is not None:
            groups, days = memo.streams(link.media_oid)
            count = memo.count
        else:
            records = list(iter_entries(segment.read_bytes()))
            groups, days = _ingest.split(records, link.media_oid)
            count = len(records)
        self._ensure_days(connection, (_day_text(day) for day in days))
        try:
            self._copy(connection, groups)
        except psycopg2.errors.UniqueViolation:
            # Some records are stored already: redo the batch skipping them.
            connection.rollback()
            try:
                self._merge(connection, groups)
            except _REFUSED_AS_DATA as exc:
                connection.rollback()
                self._store_one_by_one(link, segment, exc)
        except _REFUSED_AS_DATA as exc:
            connection.rollback()
            self._store_one_by_one(link, segment, exc)
        elapsed = time.perf_counter() - started
        with self._lock:
            self.last_batch_s = elapsed
            self.records_stored += count

    @staticmethod
    def _copy(connection, groups: dict[bytes, bytes]) -> None:
        with connection.cursor() as cursor:
            for tag, rows in groups.items():
                table, columns = _ingest.TABLES[tag]
                cursor.copy_expert(_ingest.copy_sql(table, columns), BytesIO(rows), _COPY_CHUNK)
        connection.commit()

    @staticmethod
    def _merge(connection, groups: dict[bytes, bytes]) -> None:
        with connection.cursor() as cursor:
            for tag, rows in groups.items():
                table, columns = _ingest.TABLES[tag]
                cursor.execute(_ingest.staging_sql(table))
                cursor.copy_expert(
                    _ingest.copy_sql(f"stage_{table}", columns), BytesIO(rows), _COPY_CHUNK
                )
                cursor.execute(_ingest.merge_sql(table, columns))
        connection.commit()

    def _store_one_by_one(self, link: _Link, segment: Path, exc: Exception) -> None:
        connection = link.connection
        records = list(iter_entries(segment.read_bytes()))
        log.warning(
            "spool segment %s refused as a whole (%s); storing its records one by one",
            segment.name,
            _first_line(exc),
        )
        rejected_dir = self.spool.directory / "rejected"
        for number, record in enumerate(records, 1):
            try:
                self._merge(connection, _ingest.split([record], link.media_oid)[0])
            except _REFUSED_AS_DATA as error:
                connection.rollback()
                reason = _first_line(error)
                rejected_dir.mkdir(exist_ok=True, mode=0o700)
                # Kept as spool entries: once the cause is fixed, the file can be
                # moved back into the spool as seg-<anything>.ready to retry.
                with open(rejected_dir / f"{segment.stem}.entries", "ab") as kept:
                    kept.write(frame(record))
                with open(rejected_dir / f"{segment.stem}.reasons", "a") as why:
                    why.write(f"record {number}: {reason}\n")
                with self._lock:
                    self.records_rejected += 1
                log.error(
                    "spool segment %s record %d refused by the database (%s); kept in %s",
                    segment.name,
                    number,
                    reason,
                    rejected_dir,
                )


def _first_line(exc: Exception) -> str:
    """The first line of a database error's message, or its type when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
