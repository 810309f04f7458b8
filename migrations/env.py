"""Alembic environment: run migrations under a Postgres advisory lock.

Several POPs share one database; the lock makes concurrent `voiplog db upgrade`
runs take turns instead of racing each other. The connection is handed in by
`voiplog.store.migrate` through ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from voiplog.store._models import PARTITIONED, Base

MIGRATION_LOCK = 0x766F69706C6F67  # "voiplog"


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # Day partitions are made at run time, not by migrations.
    if type_ == "table" and reflected and compare_to is None:
        return not any(name.startswith(f"{table}_") for table in PARTITIONED)
    return True


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=_include,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        connection.commit()


run_migrations_online()
