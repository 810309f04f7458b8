"""The store writer: records into the spool, a drainer thread from the spool into Postgres.

`put` is all the pipeline sees: it renders the record to binary COPY rows
and appends them to the durable spool. A keeper thread, which never touches
the database, fsyncs the spool as its policy says and seals the open segment
every `seal_interval_s`; drainer threads take sealed segments into Postgres, one
transaction per segment (binary COPY, or through staging tables when some
records are stored already; see `_ingest`). Several drainers (one connection
each) take segments in parallel. A segment leaves the spool only after its
transaction committed, so a crash at any point leaves each record either
stored or still spooled, and draining it again stores nothing twice.

Postgres unreachable (or refusing for a reason that is not the data, such as a
missing privilege): the drainers back off (up to 30 s between attempts) and
the spool grows; nothing is dropped. Every database call is bounded: the
connection attempt, each statement and each lock wait (a table another session
holds) on the server, and, for a server that keeps the connection open and
says nothing, the keeper: it cuts the connection of a call that outlived its
bound, so that its drainer gives up the segment, which stays spooled for a
later attempt. `close` is bounded the same way: a drainer that does not stop in
time is abandoned, its segment left in the spool. A segment Postgres refuses as data is
split: good records are stored, each refused one is kept in ``rejected/`` next
to the spool (as spool entries, with the reason beside them) and logged.

One file, over 600 lines: the writer is one machine (spool, keeper, drainers,
their links and the bounds on each database call), whose parts hand segments
and connections to each other and are read together; the row rendering
(`_ingest`), the spool (`spool`) and the seals (`seal`) are apart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

import orjson
import psycopg2

from voiplog.store import _ingest, migrate
from voiplog.store.database import connect, describe
from voiplog.store.errors import SchemaBehindError, WrongDatabaseError
from voiplog.store.spool import Spool
from voiplog.store.spool_files import frame, iter_entries

log = logging.getLogger("voiplog.store")

_MAX_BACKOFF_S = 30.0
_COPY_CHUNK = 1 << 20  # bytes handed to libpq per call: fewer round trips through Python
_INDEX_EVERY_S = 600.0  # how often the first drainer has the days that are over indexed
_INDEX_BOUND_S = 3600.0  # building a day's look-up indexes takes long; records wait on no lock
_KEEPER_TICK_S = 0.05
_CLOSE_GRACE_S = 0.5  # at close, calls are cut this long before the end, for drainers to stop
# Refusals of the data itself: the record is set aside, the rest stored. Any
# other database error (a missing privilege, a schema changed underneath) is
# the store's problem, not the record's: the segment stays spooled.
_REFUSED_AS_DATA = (psycopg2.DataError, psycopg2.IntegrityError)


class _Link:
    """One drainer's connection to Postgres."""

    def __init__(self) -> None:
        self.connection = None
        self.media_oid = 0  # of the media_stream type, which media arrays name


class _WatchedCursor(psycopg2.extensions.cursor):
    """A cursor whose calls say until when they may take (see `_WatchedConnection`)."""

    def execute(self, query, vars=None):
        with self.connection.bounded():
            return super().execute(query, vars)

    def copy_expert(self, sql, file, size=8192):
        with self.connection.bounded():
            return super().copy_expert(sql, file, size)


class _WatchedConnection(psycopg2.extensions.connection):
    """A connection that publishes the deadline of the call in progress.

    The server bounds statements and lock waits itself; this bounds what it
    cannot see: a connection that stays open while nothing comes back (a
    stalled network path, a hung server). The writer's keeper cuts the
    connection of a call past its deadline, and the call fails as if the
    server had gone.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cursor_factory = _WatchedCursor
        self.bound_s = 60.0
        self.busy_until: float | None = None

    @contextlib.contextmanager
    def bounded(self, seconds: float | None = None):
        outer = self.busy_until
        self.busy_until = time.monotonic() + (self.bound_s if seconds is None else seconds)
        try:
            yield
        finally:
            self.busy_until = outer

    def commit(self) -> None:
        with self.bounded():
            super().commit()

    def rollback(self) -> None:
        with self.bounded():
            super().rollback()

    def sever(self) -> None:
        """Cut the connection under a call in progress (from another thread)."""
        with contextlib.suppress(OSError, psycopg2.Error):
            stream = socket.socket(fileno=os.dup(self.fileno()))
            with stream:
                stream.shutdown(socket.SHUT_RDWR)


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
        statement_timeout_s: float = 60.0,
        lock_timeout_s: float = 10.0,
        stall_timeout_s: float | None = None,
        today=None,
        signer=None,
    ) -> None:
        self.dsn = dsn
        # Signs the seals of the days that are over (voiplog.export.signing.Signer).
        self.signer = signer
        self.spool = spool
        self.pop = pop
        self.sensor = sensor
        self.partitions_ahead_days = partitions_ahead_days
        self.accept_past_days = accept_past_days
        self.seal_interval_s = seal_interval_s
        self.drainers = max(1, drainers)
        self.statement_timeout_s = statement_timeout_s
        self.lock_timeout_s = lock_timeout_s
        # A call with no answer for this long is given up (the server would
        # have ended it by now if it were there to do so).
        self.stall_timeout_s = (
            statement_timeout_s + 10.0 if stall_timeout_s is None else stall_timeout_s
        )
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._lock = threading.Lock()
        self._claimed: set[Path] = set()
        self._days: set[str] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._links: list[_Link] = []  # every drainer's, which the keeper watches
        self._link = self._new_link()  # for drain_once called from the caller's thread
        self._keeper: threading.Thread | None = None
        self._keeper_stop = threading.Event()
        self._close_by: float | None = None  # while closing: every call ends by then
        self._media_oid = 0  # as the database last named it; records are rendered with it
        # Segments' COPY streams are kept in memory as they are spooled (up to
        # memo_bytes), so that draining them takes no pass over their records;
        # a backlog beyond that (an outage) is read back from the files.
        spool.keep_memos(_ingest.Batch, memo_bytes)
        if spool.binding() is None:
            # Named before it is ever reached: records spooled while it is down
            # are for it, not for whichever database is configured later.
            spool.bind({"dsn": describe(dsn)})
        self._outage_since: float | None = None
        self._backoff_s = 0.0
        self.records_put = 0
        self.records_stored = 0  # records drained (already-stored duplicates included)
        self.records_rejected = 0
        # Records whose key was stored with other content: kept in record_conflict.
        self.records_conflicting = 0
        self.last_batch_s = 0.0
        self._refused: Exception | None = None  # the database is not the spool's own

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
        try:
            kept = self.spool.keep_aside(
                "unstorable.jsonl",
                orjson.dumps({"reason": reason, "record": doc}, default=str) + b"\n",
            )
        except OSError as exc:
            kept = f"nowhere ({exc.strerror}): it is lost"
            self.spool.records_lost += 1
        with self._lock:
            self.records_rejected += 1
        log.error("record %s cannot be stored (%s); kept in %s", doc.get("uid"), reason, kept)

    @property
    def healthy(self) -> bool:
        return self._outage_since is None

    @property
    def refused(self) -> WrongDatabaseError | None:
        """Why the database was refused (not the spool's own), or None."""
        return self._refused

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> StoreWriter:
        self._start_keeper()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"voiplog-store-{n}", daemon=True)
            for n in range(self.drainers)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self, drain_timeout_s: float = 30.0) -> int:
        """Seal the spool, then store what can be stored within `drain_timeout_s`.

        Bounded whatever the database does: the records are on disk before
        the first database call, calls still running at the end are cut, and
        a drainer that does not stop is abandoned (its segment stays spooled).
        Returns the number of records left in the spool (0 when all landed).
        """
        deadline = time.monotonic() + drain_timeout_s
        self.spool.close()  # every record safe on disk, whatever comes next
        self._close_by = deadline - min(_CLOSE_GRACE_S, drain_timeout_s / 4)
        self._start_keeper()  # it cuts the calls still running then
        self._stop.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [thread.name for thread in self._threads if thread.is_alive()]
        if stuck:
            log.warning(
                "store drainer(s) %s did not stop in time; abandoned, their segments stay spooled",
                ", ".join(stuck),
            )
        self._threads = []
        # Records kept in memory while the spool's file system was full are
        # written out as draining makes room (the keeper does it), then drained.
        while (self.spool.ready() or self.spool.records_in_memory) and (
            time.monotonic() < self._close_by
        ):
            if self._refused is not None:
                break
            if not self.drain_once():
                time.sleep(min(0.5, max(0.0, self._close_by - time.monotonic())))
                self.spool.close()  # what the keeper wrote out of memory, sealed
        left_s = deadline - time.monotonic()
        if not self.spool.ready() and left_s > 0.5 and self._outage_since is None:
            # Records of past days (a replayed capture) are indexed now, not at
            # the next start, if that fits in the time left.
            self.index_closed_days(self._link, timeout_s=left_s)
        self._disconnect(self._link)
        self._keeper_stop.set()
        if self._keeper is not None:
            self._keeper.join()
            self._keeper = None
        self.spool.abandon_reserve()  # counted in spool.records_lost, logged
        self.spool.close()
        return self.spool.pending_records()

    def __enter__(self) -> StoreWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_keeper(self) -> None:
        if self._keeper is None:
            self._keeper_stop.clear()
            self._keeper = threading.Thread(
                target=self._keep, name="voiplog-spool-keeper", daemon=True
            )
            self._keeper.start()

    def _keep(self) -> None:
        """The spool's own schedule (fsync, sealing) and the watch over database calls.

        Nothing here waits for the database: a drainer stuck in a call neither
        delays the fsync policy nor keeps the open segment from being sealed.
        """
        last_seal = time.monotonic()
        while not self._keeper_stop.wait(_KEEPER_TICK_S):
            now = time.monotonic()
            try:
                self.spool.tick()
                if now - last_seal >= self.seal_interval_s:
                    self.spool.seal()
                    last_seal = now
            except OSError as exc:
                log.error("spool %s: %s", self.spool.directory, exc)
            except Exception:
                # A bug must not stop the spool's own schedule: logged, tried again.
                log.exception("spool %s: keeping it failed", self.spool.directory)
            self._cut_stalled(now)

    def _cut_stalled(self, now: float) -> None:
        close_by = self._close_by
        with self._lock:
            links = list(self._links)
        for link in links:
            connection = link.connection
            until = getattr(connection, "busy_until", None)
            if until is None:
                continue
            if close_by is not None:
                until = min(until, close_by)
            if now >= until:
                connection.busy_until = None  # cut once
                if close_by is None or now < close_by:
                    log.error(
                        "database %s: no answer to a call within %.0f s; connection cut, "
                        "the segment stays spooled for a later attempt",
                        describe(self.dsn),
                        self.stall_timeout_s,
                    )
                connection.sever()

    def _new_link(self) -> _Link:
        link = _Link()
        with self._lock:
            self._links.append(link)
        return link

    def _run(self, number: int) -> None:
        link = self._new_link()
        last_index = time.monotonic() - _INDEX_EVERY_S
        try:
            while not self._stop.is_set():
                if number == 0:
                    now = time.monotonic()
                    if now - last_index >= _INDEX_EVERY_S and self._outage_since is None:
                        last_index = now
                        self.make_days_ahead(link)
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
            with self._lock:
                self._links.remove(link)

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
            except (psycopg2.Error, SchemaBehindError, WrongDatabaseError) as exc:
                if isinstance(exc, WrongDatabaseError):
                    self._refused = exc
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

    @contextlib.contextmanager
    def _long_job(self, link: _Link, timeout_s: float | None):
        """A connection of `link` for a job of several statements each bounded by
        `timeout_s` (default: an index build's bound) instead of the stall bound."""
        connection = self._connect(link)
        bound_s = _INDEX_BOUND_S if timeout_s is None else timeout_s
        connection.bound_s = bound_s + 5.0
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET statement_timeout = %s", (int(bound_s * 1000),))
            connection.commit()
            yield connection
        finally:
            connection.bound_s = self.stall_timeout_s
            with contextlib.suppress(psycopg2.Error):  # a broken link is dropped by the caller
                connection.rollback()
                with connection.cursor() as cursor:
                    cursor.execute("RESET statement_timeout")
                connection.commit()

    def make_days_ahead(self, link: _Link | None = None) -> bool:
        """Have the day partitions of the window (yesterday to `partitions_ahead_days`
        ahead) made, those of days that came since connecting included: a day is then
        made a week before its records come, not by the batch that first needs it. A
        failure (a session reading the default partition past the lock timeout) is
        logged and left for the next call: the batches make what they need."""
        link = link or self._link
        try:
            self._ensure_days(self._connect(link), self._window_days())
        except (psycopg2.Error, SchemaBehindError, WrongDatabaseError) as exc:
            self._disconnect(link)
            log.warning(
                "making the day partitions ahead failed (%s); tried again later", _first_line(exc)
            )
            return False
        return True

    def index_closed_days(self, link: _Link | None = None, timeout_s: float | None = None) -> int:
        """Have the look-up indexes built on day partitions before today; returns how many.

        The day being written has none, so that rows land at full speed (see
        migration 0003); a day that is over gets them in one bulk build, and is
        then sealed. A failure is logged and left for the next call: records are
        not at stake.
        """
        link = link or self._link
        try:
            with self._long_job(link, timeout_s) as connection:
                with connection.cursor() as cursor:
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
        self.seal_closed_days(link, timeout_s)
        return made

    def seal_closed_days(self, link: _Link | None = None, timeout_s: float | None = None) -> int:
        """Seal the days that are over and not sealed, or sealed before late records came;
        returns how many seals were written. A failure is logged and left for the next call."""
        from voiplog.store import seal

        link = link or self._link
        try:
            with self._long_job(link, timeout_s) as connection:
                made = seal.seal_closed_days(connection, self._today(), self.signer)
        except (psycopg2.Error, SchemaBehindError) as exc:
            self._disconnect(link)
            log.warning(
                "sealing the days that are over failed (%s); tried again later", _first_line(exc)
            )
            return 0
        for sealed in made:
            log.info(
                "sealed %s (version %d, %d records) in %.1f s",
                sealed.day,
                sealed.version,
                sealed.records,
                sealed.seconds,
            )
        return len(made)

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
            connect_timeout_s = 10.0
            if self._close_by is not None:
                connect_timeout_s = min(connect_timeout_s, self._close_by - time.monotonic())
                if connect_timeout_s < 2:  # libpq's shortest
                    raise psycopg2.OperationalError("no time left to connect")
            connection = connect(
                self.dsn,
                connect_timeout_s=connect_timeout_s,
                statement_timeout_s=self.statement_timeout_s,
                lock_timeout_s=self.lock_timeout_s,
                connection_factory=_WatchedConnection,
            )
            connection.bound_s = self.stall_timeout_s
            # Watched by the keeper from its first call: the checks below wait on
            # the database like any call, and a path that stalls now must be cut
            # (at close, by the deadline) rather than hang the caller.
            link.connection = connection
            try:
                self._check_schema(connection)
                self._check_database(connection)
                link.media_oid = self._media_oid = self._type_oid(connection)
                self._ensure_days(connection, self._window_days(), force=True)
            except Exception:
                link.connection = None
                connection.close()
                raise
        return link.connection

    def _check_database(self, connection) -> None:
        """Refuse a database other than the one the spool's records are for.

        The spool names its database (`Spool.binding`): the cluster's system
        identifier and the database's name once it was reached, where it was
        configured before that. A spool holding none of the records of an
        earlier run follows the configuration and is bound anew.
        """
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            (name,) = cursor.fetchone()
        connection.rollback()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT system_identifier::text FROM pg_control_system()")
                (system,) = cursor.fetchone()
        except psycopg2.errors.InsufficientPrivilege:
            system = None  # a server that keeps it from this role: the name must do
        connection.rollback()
        here = {"database": name, "dsn": describe(self.dsn), "system_identifier": system}
        bound = self.spool.binding()
        if bound is None:
            same = True
        elif bound.get("database") and bound.get("system_identifier") and system:
            same = (bound["system_identifier"], bound["database"]) == (system, name)
        elif bound.get("database"):
            same = bound["database"] == name and bound.get("dsn") == here["dsn"]
        else:
            same = bound.get("dsn") == here["dsn"]
        if same:
            if bound != here:
                self.spool.bind(here)
            return
        if any(segment in self.spool.inherited for segment in self.spool.ready()):
            raise WrongDatabaseError(
                f"spool {self.spool.directory} holds records for {_named(bound)}, not for "
                f"{_named(here)}: drain it with the first one's DSN (or remove "
                f"{self.spool.directory / 'database'} to store them into the second)"
            )
        log.warning(
            "spool %s was for %s and holds none of its records; it is now for %s",
            self.spool.directory,
            _named(bound),
            _named(here),
        )
        self.spool.bind(here)

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
            records = list(iter_entries(self.spool.read(segment)))
            groups, days = _ingest.split(records, link.media_oid)
            count = len(records)
        day_texts = sorted({_day_text(day) for day in days})
        self._ensure_days(connection, day_texts)
        try:
            self._copy(connection, groups, day_texts)
        except psycopg2.errors.UniqueViolation:
            # Some records are stored already: redo the batch skipping them.
            connection.rollback()
            try:
                self._merge(connection, groups, day_texts)
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
    def _mark_days(cursor, days: list[str]) -> None:
        """Mark the days of the records just written, in their transaction: a day sealed
        before they commit is sealed again (migration 0014), whether it was over then
        or not by this writer's clock. Last before the commit: two drainers marking the
        same day wait for each other only as long as a commit takes."""
        cursor.execute("SELECT voiplog_days_touched(%s::date[])", (days,))

    @classmethod
    def _copy(cls, connection, groups: dict[bytes, bytes], days: list[str]) -> None:
        with connection.cursor() as cursor:
            for tag, rows in groups.items():
                table, columns = _ingest.TABLES[tag]
                cursor.copy_expert(_ingest.copy_sql(table, columns), BytesIO(rows), _COPY_CHUNK)
            cls._mark_days(cursor, days)
        connection.commit()

    def _merge(self, connection, groups: dict[bytes, bytes], days: list[str]) -> None:
        conflicts = []
        with connection.cursor() as cursor:
            for tag, rows in groups.items():
                table, columns = _ingest.TABLES[tag]
                cursor.execute(_ingest.staging_sql(table))
                cursor.copy_expert(
                    _ingest.copy_sql(f"stage_{table}", columns), BytesIO(rows), _COPY_CHUNK
                )
                cursor.execute(_ingest.merge_sql(table, columns))
                # What stayed staged has a stored twin: kept if its content differs.
                cursor.execute(_ingest.CONFLICT_SETTINGS_SQL)
                cursor.execute(_ingest.conflicts_sql(table))
                conflicts += [(table, uid, at) for uid, at in cursor.fetchall()]
            self._mark_days(cursor, days)
        connection.commit()
        for table, uid, at in conflicts:
            log.warning(
                "record %s (%s, %s) arrived with content other than the stored one: "
                "the stored record is kept, the newcomer is in record_conflict",
                uid,
                table,
                at.isoformat(),
            )
        if conflicts:
            with self._lock:
                self.records_conflicting += len(conflicts)

    def _store_one_by_one(self, link: _Link, segment: Path, exc: Exception) -> None:
        connection = link.connection
        records = list(iter_entries(self.spool.read(segment)))
        log.warning(
            "spool segment %s refused as a whole (%s); storing its records one by one",
            segment.name,
            _first_line(exc),
        )
        rejected_dir = self.spool.directory / "rejected"
        for number, record in enumerate(records, 1):
            groups, days = _ingest.split([record], link.media_oid)
            try:
                self._merge(connection, groups, [_day_text(day) for day in days])
            except _REFUSED_AS_DATA as error:
                connection.rollback()
                reason = _first_line(error)
                # Kept as spool entries: once the cause is fixed, the file can be
                # moved back into the spool as seg-<anything>.ready to retry.
                self.spool.keep_aside(f"{segment.stem}.entries", frame(record))
                self.spool.keep_aside(
                    f"{segment.stem}.reasons", f"record {number}: {reason}\n".encode()
                )
                with self._lock:
                    self.records_rejected += 1
                log.error(
                    "spool segment %s record %d refused by the database (%s); kept in %s",
                    segment.name,
                    number,
                    reason,
                    rejected_dir,
                )


def _named(identity: dict) -> str:
    """A spool's database in words, for messages."""
    if not identity.get("database"):
        return f"the database at {identity.get('dsn') or 'an unknown place'} (never reached)"
    system = identity.get("system_identifier") or "unknown"
    return f"database {identity['database']} (system {system}) at {identity.get('dsn')}"


def _first_line(exc: Exception) -> str:
    """The first line of a database error's message, or its type when it has none."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _day_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
