"""Moments on the command line, read the same way by every command.

ISO 8601 with a zone (``Z`` or an offset such as ``+02:00``), or a date alone,
which means 00:00 UTC of that day. A time without a zone is refused: on a POP
that logs in UTC and an officer who reads local time, a guess is a wrong record.
"""

from __future__ import annotations

import datetime as dt

import click


def moment(value: str, option: str) -> dt.datetime:
    """``value`` as an aware UTC datetime; `click.BadParameter` naming ``option`` if not one."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        found = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time", param_hint=option
        ) from None
    if found.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no time zone; add Z or an offset such as +01:00", param_hint=option
        )
    return found.astimezone(dt.UTC)


def moment_us(value: str, option: str) -> int:
    """The same moment in microseconds since the epoch."""
    found = moment(value, option)
    return (found - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
