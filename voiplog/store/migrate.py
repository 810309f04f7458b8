"""Schema migrations (Alembic), run only through `voiplog db` under an advisory lock."""

from __future__ import annotations

import logging
from pathlib import Path

# Alembic narrates every step at INFO, from its import on; voiplog's own
# messages say what matters.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

import voiplog.migrations  # noqa: E402
from voiplog.store.errors import SchemaBehindError  # noqa: E402


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(voiplog.migrations.__file__).parent))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this version of voiplog expects."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def current(engine: Engine) -> str | None:
    """The revision the database is at, None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.connect() as connection:
        command.upgrade(_config(connection), revision)
        connection.commit()


def downgrade(engine: Engine, revision: str) -> None:
    with engine.connect() as connection:
        command.downgrade(_config(connection), revision)
        connection.commit()


def require_current(engine: Engine, where: str) -> None:
    """Refuse to write into a schema other than the one this version expects."""
    at, wanted = current(engine), head()
    if at == wanted:
        return
    if at is None:
        raise SchemaBehindError(
            f"{where}: the database has no voiplog schema; run `voiplog db upgrade` first"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if at in known:
        raise SchemaBehindError(
            f"{where}: the database schema is at revision {at}, this voiplog needs {wanted}; "
            "run `voiplog db upgrade`"
        )
    raise SchemaBehindError(
        f"{where}: the database schema is at revision {at}, newer than this voiplog knows "
        f"({wanted}); upgrade voiplog"
    )
