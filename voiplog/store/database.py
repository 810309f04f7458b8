"""Connecting to the store: the DSN from config or environment, or the embedded server."""

from __future__ import annotations

import math
import os

import psycopg2
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from voiplog.errors import UsageError

DSN_VARIABLE = "VOIPLOG_DATABASE_URL"
ADMIN_DSN_VARIABLE = "VOIPLOG_ADMIN_DATABASE_URL"
"""Credentials for admin work (purge, legal holds), kept out of the POP config that the
capture daemon reads: the purge unit sets it from a root-only environment file."""


def resolve_dsn(configured: str | None, *, admin: bool = False) -> str | None:
    """The POP config's database_url wins, then VOIPLOG_DATABASE_URL; None means embedded.

    For admin work VOIPLOG_ADMIN_DATABASE_URL, when set, wins over both. Raises
    `UsageError` naming where a DSN came from when libpq cannot read it.
    """
    if admin and os.environ.get(ADMIN_DSN_VARIABLE):
        return check_dsn(os.environ[ADMIN_DSN_VARIABLE], ADMIN_DSN_VARIABLE)
    if configured:
        return check_dsn(configured, "store.database_url")
    found = os.environ.get(DSN_VARIABLE) or None
    return check_dsn(found, DSN_VARIABLE) if found else None


def check_dsn(dsn: str, where: str) -> str:
    """``dsn`` if libpq reads it (URL or key=value); else `UsageError` naming ``where``."""
    try:
        psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError as exc:
        # libpq quotes the string it could not read, password and all.
        reason = str(exc).strip().splitlines()[0].replace(dsn, "...")
        raise UsageError(
            f"{where}: not a PostgreSQL connection URL or key=value string: {reason}"
        ) from None
    return dsn


def connect(
    dsn: str,
    *,
    connect_timeout_s: float = 10.0,
    statement_timeout_s: float | None = None,
    lock_timeout_s: float | None = None,
    connection_factory=None,
):
    """A raw psycopg2 connection (URL or key=value DSN), in UTC.

    Every call on it is bounded against a vanished server: the connection
    attempt (`connect_timeout_s`), idle links (TCP keepalives) and data the
    server never acknowledges (TCP user timeout). `statement_timeout_s` and
    `lock_timeout_s` also bound, on the server, each statement and each wait
    for a lock (a table another session holds); None leaves the server's own.
    A server that stays connected and says nothing is none of these: the store
    writer watches its calls for that (see `voiplog.store.writer`).
    """
    options = "-c timezone=UTC"
    if statement_timeout_s is not None:
        options += f" -c statement_timeout={int(statement_timeout_s * 1000)}"
    if lock_timeout_s is not None:
        options += f" -c lock_timeout={int(lock_timeout_s * 1000)}"
    return psycopg2.connect(
        dsn,
        connection_factory=connection_factory,
        options=options,
        # libpq counts whole seconds, and treats less than 2 as 2.
        connect_timeout=max(2, math.ceil(connect_timeout_s)),
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
        tcp_user_timeout=30_000,
    )


def make_engine(dsn: str, **bounds: float) -> Engine:
    """A SQLAlchemy engine over psycopg2 for any libpq DSN form; `bounds` are
    `connect`'s (statement and lock timeouts) for every connection it makes."""
    return create_engine(
        "postgresql+psycopg2://", creator=lambda: connect(dsn, **bounds), pool_pre_ping=True
    )


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(unparsable DSN)"
    host = params.get("host", "local socket")
    port = params.get("port", "5432")
    return f"{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"
