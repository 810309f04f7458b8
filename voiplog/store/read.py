"""Reading records back out of the store as contract dicts (the JSON lines' objects)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from voiplog.cdr import format_ts
from voiplog.store._ingest import CDR_KEYS, MEDIA_KEYS, REGISTRATION_KEYS

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    delta = value - _EPOCH
    return format_ts((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


_CDR_TIMES = {"started_at", "ringing_at", "answered_at", "ended_at"}
_REGISTRATION_TIMES = {"requested_at", "answered_at"}
# Composite columns read as JSON objects: their fields are the contract's keys.
_AS_JSON = {"subscriber", "remote"}


def iter_records(connection, where: str = "TRUE", params=()) -> Iterator[dict]:
    """Every cdr row matching `where` (SQL over alias c) as its contract dict, media included.

    `connection` is a psycopg2 connection; rows come in (started_at, uid) order.
    """
    columns = ", ".join(f'to_jsonb(c."{k}")' if k in _AS_JSON else f'c."{k}"' for k in CDR_KEYS)
    media = ", ".join(f'm."{k}"' for k in MEDIA_KEYS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, c.extra FROM cdr c WHERE {where} ORDER BY c.started_at, c.uid",
            params,
        )
        rows = cursor.fetchall()
    streams_by_row = []
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT c.uid, c.started_at, {media} "
                f"FROM cdr c, unnest(c.media) WITH ORDINALITY AS m WHERE {where} "
                f"ORDER BY c.uid, c.started_at, m.ordinality",
                params,
            )
            by_key: dict[tuple, list[dict]] = {}
            for uid, started, *values in cursor.fetchall():
                stream = dict(zip(MEDIA_KEYS, values, strict=True))
                stream["first_at"] = _ts(stream["first_at"])
                stream["last_at"] = _ts(stream["last_at"])
                by_key.setdefault((uid, started), []).append(stream)
        streams_by_row = [by_key.get((row[0], row[1]), []) for row in rows]
    for row, streams in zip(rows, streams_by_row, strict=True):
        doc = dict(zip(CDR_KEYS, row[: len(CDR_KEYS)], strict=True))
        for key in _CDR_TIMES:
            doc[key] = _ts(doc[key])
        doc["flags"] = list(doc["flags"])
        doc["media"] = streams
        # Objects kept whole because they did not fit their typed columns
        # (see _ingest) come back from extra, as they came.
        doc.update(row[len(CDR_KEYS)] or {})
        yield doc


def iter_registrations(connection, where: str = "TRUE", params=()) -> Iterator[dict]:
    """Every registration row matching `where` (alias c) as its contract dict."""
    columns = ", ".join(f'c."{k}"' for k in REGISTRATION_KEYS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns}, c.extra FROM registration c WHERE {where} "
            "ORDER BY c.requested_at, c.uid",
            params,
        )
        for row in cursor.fetchall():
            doc = dict(zip(REGISTRATION_KEYS, row[: len(REGISTRATION_KEYS)], strict=True))
            for key in _REGISTRATION_TIMES:
                doc[key] = _ts(doc[key])
            doc["flags"] = list(doc["flags"])
            doc.update(row[len(REGISTRATION_KEYS)] or {})
            yield doc
