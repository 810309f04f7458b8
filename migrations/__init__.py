"""Alembic migrations of the voiplog store; run them with `voiplog db upgrade`."""
