"""A scratch database per test on a real Postgres server (VOIPLOG_TEST_DSN)."""

from __future__ import annotations

import datetime as dt
import os
import uuid

import psycopg2
import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_dsn() -> str:
    return os.environ.get("VOIPLOG_TEST_DSN") or DEFAULT_DSN


def dsn_for(database: str) -> str:
    params = psycopg2.extensions.parse_dsn(admin_dsn())
    params["dbname"] = database
    return " ".join(f"{key}={value}" for key, value in params.items())


def _admin():
    try:
        connection = psycopg2.connect(admin_dsn(), connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"Postgres at {admin_dsn()} is not reachable ({exc}); scripts/test starts it, "
            "or point VOIPLOG_TEST_DSN at one"
        )
    connection.autocommit = True
    return connection


def _scratch_database(migrated: bool):
    """DSN of a new database (at the current schema when `migrated`), dropped after."""
    name = f"voiplog_test_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        if migrated:
            from voiplog.store import migrate
            from voiplog.store.database import make_engine

            engine = make_engine(dsn_for(name))
            migrate.upgrade(engine)
            engine.dispose()
        yield dsn_for(name)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def scratch_dsn():
    """DSN of a new empty database, dropped after the test."""
    yield from _scratch_database(migrated=False)


@pytest.fixture
def store_dsn():
    """A scratch database migrated to the current schema."""
    yield from _scratch_database(migrated=True)


@pytest.fixture
def other_dsn():
    """A second store on the same server, migrated, dropped after the test."""
    yield from _scratch_database(migrated=True)


@pytest.fixture
def signer(tmp_path):
    """A POP's signing key and self-signed certificate (cert.pem in tmp_path)."""
    from voiplog.export import signing

    key, cert = signing.new_key_and_certificate("pop ams1", None, 30, dt.datetime.now(dt.UTC))
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "cert.pem").write_bytes(cert)
    return signing.load_signer(tmp_path / "key.pem", tmp_path / "cert.pem")


def query(dsn: str, sql: str, params=()):
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    connection.close()
    return rows
