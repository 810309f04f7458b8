"""Connecting to the store: the DSN from config or environment, or the embedded server."""

from __future__ import annotations

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


def connect(dsn: str):
    """A raw psycopg2 connection (URL or key=value DSN), in UTC."""
    # Timeouts and keepalives so that a vanished server is noticed, not waited for.
    return psycopg2.connect(
        dsn,
        options="-c timezone=UTC",
        connect_timeout=10,
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
    )


def make_engine(dsn: str) -> Engine:
    """A SQLAlchemy engine over psycopg2 for any libpq DSN form."""
    return create_engine("postgresql+psycopg2://", creator=lambda: connect(dsn), pool_pre_ping=True)


def describe(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        params = psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.ProgrammingError:
        return "(unparsable DSN)"
    host = params.get("host", "local socket")
    port = params.get("port", "5432")
    return f"{params.get('user', '')}@{host}:{port}/{params.get('dbname', '')}"
