"""Opening the retention store: DSN or embedded server, schema check, the spool directory.

What cannot be opened raises `WiringError` with the status the commands exit
with: 2 for what the operator must change (a schema behind, a spool directory
that cannot be trusted or is in use), 1 for what may pass (a database that does
not answer, an embedded server that does not start).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from voiplog.wiring import WiringError

if TYPE_CHECKING:
    from voiplog.config import PopConfig

log = logging.getLogger("voiplog.store")

# The schema check before a command touches the store: each statement at most
# this long, the wait for a lock on the version table (a migration running
# elsewhere) half of it; the whole check, a server that answers nothing
# included, a little more.
_CHECK_TIMEOUT_S = 10.0


class _NoAnswer(Exception):
    """The database took the connection and then said nothing within the bound."""


def _check_schema(dsn: str, where: str) -> None:
    """`migrate.require_current`, bounded whatever the server does (see `_CHECK_TIMEOUT_S`)."""
    import threading

    from voiplog.store import migrate
    from voiplog.store.database import make_engine

    engine = make_engine(
        dsn, statement_timeout_s=_CHECK_TIMEOUT_S, lock_timeout_s=_CHECK_TIMEOUT_S / 2
    )
    outcome: list = []

    def check() -> None:
        try:
            migrate.require_current(engine, where)
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=check, name="voiplog-schema-check", daemon=True)
    thread.start()
    thread.join(_CHECK_TIMEOUT_S + 5)
    if thread.is_alive():
        # Left behind, blocked on its socket: it holds nothing but that connection.
        raise _NoAnswer(f"no answer to the schema check within {_CHECK_TIMEOUT_S + 5:.0f} s")
    engine.dispose()
    if outcome[0] is not None:
        raise outcome[0]


@dataclass
class StoreHandle:
    dsn: str
    engine: object
    config: object  # voiplog.config.PopConfig
    embedded: bool
    where: str = ""  # the store in words, for messages: "database writer@db:5432/cdr"


@contextlib.contextmanager
def open_store(
    cfg: PopConfig,
    *,
    require_schema: bool = True,
    spool_if_down: bool = False,
    admin: bool = False,
) -> Iterator[StoreHandle]:
    """The store the POP config names (or the embedded one), checked and ready.

    `WiringError` (status 2) when the schema is not the one this version writes
    (the message names the command that fixes it) or the role may not do what
    the command does; status 1 when the database cannot be reached or the
    embedded server cannot start, except with `spool_if_down`: records are then
    spooled, and stored (after the same schema check) once the database is
    back. `admin` work (purge, holds) uses VOIPLOG_ADMIN_DATABASE_URL when it
    is set.
    """
    import psycopg2
    import psycopg2.errors
    from sqlalchemy.exc import OperationalError

    from voiplog.errors import UsageError
    from voiplog.store import migrate
    from voiplog.store.database import describe, make_engine, resolve_dsn
    from voiplog.store.errors import SchemaBehindError, StoreError

    try:
        dsn = resolve_dsn(cfg.store.database_url, admin=admin)
    except UsageError as exc:
        raise WiringError(str(exc), status=2) from None
    with contextlib.ExitStack() as stack:
        embedded = dsn is None
        if embedded:
            from voiplog.store.embedded import EmbeddedPostgres

            try:
                server = stack.enter_context(EmbeddedPostgres())
            except StoreError as exc:
                raise WiringError(str(exc), status=1) from None
            dsn = server.dsn
            log.info("no database configured: using the embedded Postgres in %s", server.root)
        engine = make_engine(dsn)
        stack.callback(engine.dispose)
        where = f"the embedded store in {server.root}" if embedded else f"database {describe(dsn)}"
        try:
            if embedded:
                migrate.upgrade(engine)  # voiplog's own server follows its version
            elif require_schema:
                _check_schema(dsn, where)
        except SchemaBehindError as exc:
            raise WiringError(str(exc), status=2) from None
        except (OperationalError, psycopg2.OperationalError, _NoAnswer) as exc:
            original = getattr(exc, "orig", exc)
            reason = str(original).strip().splitlines()[0]
            timed_out = (_NoAnswer, psycopg2.errors.QueryCanceled, psycopg2.errors.LockNotAvailable)
            problem = (
                f"no answer in time from {where} to the schema check"
                if isinstance(original, timed_out)
                else f"cannot connect to {where}"
            )
            if not spool_if_down or embedded:
                raise WiringError(f"{problem}: {reason}", status=1) from None
            log.error("%s (%s); records are spooled and stored once it is back", problem, reason)
        try:
            yield StoreHandle(dsn, engine, cfg, embedded, where)
        except Exception as exc:
            denied = _permission_denied(exc)
            if denied is None:
                raise
            role = psycopg2.extensions.parse_dsn(dsn).get("user") or "this login"
            raise WiringError(
                f"{where}: the role {role} may not do this ({denied}); run it with "
                "the credentials of a role that may (voiplog_admin for purges and holds: "
                "VOIPLOG_ADMIN_DATABASE_URL)"
            ) from None


def spool_dir(cfg) -> Path:
    """store.spool_dir, else <state directory>/spool/<pop> (see `state_dir`)."""
    if cfg.store.spool_dir:
        return Path(cfg.store.spool_dir)
    from voiplog.store.embedded import state_dir

    return state_dir() / "spool" / cfg.pop


@contextlib.contextmanager
def locked_spool_dir(cfg) -> Iterator[Path]:
    """The POP's spool directory, held by this process alone.

    `WiringError`, with the reason, for a directory that cannot be trusted
    (another user's, writable by others, a symbolic link) or used; see `Spool`.
    """
    from voiplog.store.spool_files import SpoolDirError, open_directory, open_file

    directory = spool_dir(cfg)
    try:
        directory_fd = open_directory(directory)
        try:
            lock_fd = open_file(directory_fd, "lock", os.O_RDWR | os.O_CREAT)
        finally:
            os.close(directory_fd)
    except SpoolDirError as exc:
        raise WiringError(str(exc), status=2) from None
    except OSError as exc:
        raise WiringError(f"spool {directory}: cannot use {exc.filename}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(lock_fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WiringError(
                f"spool {directory} is in use by another voiplog process (pid {holder}); "
                "wait for it or give this one its own store.spool_dir"
            ) from None
        # Who holds it, for the message above; a full file system may refuse it.
        with contextlib.suppress(OSError):
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, str(os.getpid()).encode(), 0)
        yield directory
    finally:
        os.close(lock_fd)


def _permission_denied(exc: BaseException) -> str | None:
    """The first line of a "permission denied" from Postgres, wrapped or not; else None."""
    from psycopg2 import errors

    original = getattr(exc, "orig", exc)
    if isinstance(original, errors.InsufficientPrivilege):
        return str(original).strip().splitlines()[0]
    return None
