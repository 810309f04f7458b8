"""Errors of the store: each says what failed and which command or setting fixes it."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be used as asked."""


class SchemaBehindError(StoreError):
    """The database schema is not the revision this version of voiplog writes."""


class EmbeddedPostgresError(StoreError):
    """The embedded Postgres could not be set up or started."""


class WrongDatabaseError(StoreError):
    """The database is not the one the spool's records are for (the message names both)."""
