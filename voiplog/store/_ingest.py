"""How records travel from the spool into the store: binary COPY rows, tagged by table.

A record is rendered once, when it is spooled, into rows in Postgres' binary
COPY format: its `cdr` row and its `cdr_media` rows (or its `registration`
row), behind a small header with the UTC day of its partition and the length
of each part. Draining a segment is then byte moving: the parts are gathered
by table and COPYed (Postgres routes them to the day partitions). Binary rows spare
Postgres the parsing of times, addresses, numbers and arrays, which is a good
part of what ingest costs.

Idempotence: the tables' primary keys refuse a record stored before (a segment
drained twice after a crash, a capture replayed twice). The fast path COPYs
straight into the tables; on a unique violation the batch is redone through
temporary staging tables with INSERT ... ON CONFLICT DO NOTHING, so that the
records already there are skipped and the first write wins. Neither path reads
a store record, so the insert-only writer role suffices.
"""

from __future__ import annotations

import socket
import struct

import orjson

# The keys of the CDR contract v1 in column order; anything else a record
# carries goes into the `extra` column.
CDR_KEYS = (
    "uid", "started_at", "kind", "call_id", "caller", "callee", "caller_uri", "callee_uri",
    "request_uri", "caller_ip", "caller_port", "callee_ip", "callee_port", "transport",
    "subscriber_ip", "direction", "ringing_at", "answered_at", "ended_at", "duration_s",
    "setup_ms", "disposition", "final_status", "ended_by", "user_agent", "flags", "subscriber",
    "remote", "version",
)  # fmt: skip
CDR_COLUMNS = (*CDR_KEYS, "extra", "pop", "sensor")
_CDR_CONTRACT = frozenset((*CDR_KEYS, "media"))

MEDIA_KEYS = (
    "src_ip", "src_port", "dst_ip", "dst_port", "ssrc", "payload_type", "codec", "packets",
    "lost", "jitter_max_ms", "jitter_mean_ms", "first_at", "last_at",
)  # fmt: skip
MEDIA_COLUMNS = ("uid", "started_at", "ordinal", *MEDIA_KEYS)

REGISTRATION_KEYS = (
    "uid", "requested_at", "kind", "call_id", "aor", "user", "contact_uri", "contact_ip",
    "contact_port", "source_ip", "source_port", "registrar_ip", "registrar_port", "transport",
    "expires_s", "auth_user", "user_agent", "status", "result", "answered_at", "subscriber_ip",
    "direction", "subscriber", "flags", "version",
)  # fmt: skip
REGISTRATION_COLUMNS = (*REGISTRATION_KEYS, "extra", "pop", "sensor")
_REGISTRATION_CONTRACT = frozenset(REGISTRATION_KEYS)

TABLES = {b"c": ("cdr", CDR_COLUMNS), b"m": ("cdr_media", MEDIA_COLUMNS), b"r": ("registration", REGISTRATION_COLUMNS)}  # fmt: skip

NUL_FLAG = "nul_replaced"
_NUL_STANDIN = "\u2400"  # SYMBOL FOR NULL: Postgres text and jsonb cannot hold NUL
_NUL_JSON = b"\\u0000"

_PG_EPOCH_DAYS = 10_957  # 2000-01-01, Postgres' epoch, in days since 1970-01-01
_DAY_US = 86_400_000_000
# A rendered record: UTC day of its partition (days since 1970-01-01), then the
# lengths of its cdr row, its cdr_media rows and its registration row, then
# those bytes. Splitting a segment by table is then three slices per record.
_HEAD = struct.Struct(">iIII")
_I16 = struct.Struct(">h")
_NULL = struct.pack(">i", -1)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = _I16.pack(-1)


class RenderError(ValueError):
    """A record holds a value its column cannot take (named in the message)."""


def _days(date_text: str) -> int:
    return _date_days(int(date_text[:4]), int(date_text[5:7]), int(date_text[8:10]))


def _date_days(year: int, month: int, day: int) -> int:
    # Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def epoch_us(text: str) -> int:
    """Microseconds since 1970 of a contract time ('2026-03-01T10:00:00.000001Z')."""
    if len(text) != 27 or text[10] != "T" or text[26] != "Z":
        raise RenderError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        seconds = int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
        return (_days(text) * 86_400 + seconds) * 1_000_000 + int(text[20:26])
    except ValueError:
        raise RenderError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from None


def _text(value) -> bytes:
    data = str(value).encode("utf-8", "surrogatepass")
    return struct.pack(">i", len(data)) + data


def _timestamp(value) -> bytes:
    return struct.pack(">iq", 8, epoch_us(value) - _PG_EPOCH_DAYS * _DAY_US)


def _inet(value) -> bytes:
    try:
        if ":" in value:
            return struct.pack(">i4B", 20, 3, 128, 0, 16) + socket.inet_pton(socket.AF_INET6, value)
        return struct.pack(">i4B", 8, 2, 32, 0, 4) + socket.inet_pton(socket.AF_INET, value)
    except (OSError, TypeError):
        raise RenderError(f"{value!r} is not an IP address") from None


def _int2(value) -> bytes:
    return struct.pack(">ih", 2, value)


def _int4(value) -> bytes:
    return struct.pack(">ii", 4, value)


def _int8(value) -> bytes:
    return struct.pack(">iq", 8, value)


def _float8(value) -> bytes:
    return struct.pack(">id", 8, value)


def _text_array(values) -> bytes:
    if not values:
        return struct.pack(">iiii", 12, 0, 0, 25)
    items = [str(v).encode("utf-8", "surrogatepass") for v in values]
    body = struct.pack(">iiiii", 1, 0, 25, len(items), 1) + b"".join(
        struct.pack(">i", len(item)) + item for item in items
    )
    return struct.pack(">i", len(body)) + body


def _jsonb(value) -> bytes:
    data = b"\x01" + orjson.dumps(value)
    return struct.pack(">i", len(data)) + data


_ENCODERS = {
    "text": _text, "timestamptz": _timestamp, "inet": _inet, "smallint": _int2,
    "integer": _int4, "bigint": _int8, "float8": _float8, "text[]": _text_array,
    "jsonb": _jsonb,
}  # fmt: skip


def _encoders(columns):
    return tuple(_ENCODERS[_TYPES.get(column, "text")] for column in columns)


def _tuple(encoders, values, columns) -> bytes:
    parts = [_I16.pack(len(values))]
    for encode, value, column in zip(encoders, values, columns, strict=True):
        if value is None:
            parts.append(_NULL)
            continue
        try:
            parts.append(encode(value))
        except RenderError as exc:
            raise RenderError(f"{column}: {exc}") from None
        except (struct.error, TypeError, ValueError, OverflowError, orjson.JSONEncodeError):
            raise RenderError(f"{column}: {value!r} does not fit the column") from None
    return b"".join(parts)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", _NUL_STANDIN)
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def render(doc: dict, pop: str | None, sensor: str | None) -> bytes:
    """The framed binary COPY rows of one record (its contract dict).

    Raises RenderError, naming the key, for a value its column cannot take.
    """
    if _NUL_JSON in orjson.dumps(doc):
        # NUL reaches text fields through SIP (%00 or a raw NUL byte). Postgres
        # cannot store it: it becomes U+2400 and the record's flags say so.
        doc = _without_nul(doc)
        doc["flags"] = [*doc.get("flags", ()), NUL_FLAG]
    if doc.get("kind") == "registration":
        extra = {k: v for k, v in doc.items() if k not in _REGISTRATION_CONTRACT}
        values = [doc.get(key) for key in REGISTRATION_KEYS] + [extra, pop, sensor]
        row = _tuple(_REGISTRATION_ENCODERS, values, REGISTRATION_COLUMNS)
        return _HEAD.pack(_row_day(doc.get("requested_at")), 0, 0, len(row)) + row
    extra = {k: v for k, v in doc.items() if k not in _CDR_CONTRACT}
    values = [doc.get(key) for key in CDR_KEYS] + [extra, pop, sensor]
    row = _tuple(_CDR_ENCODERS, values, CDR_COLUMNS)
    day = _row_day(doc.get("started_at"))
    uid, started = doc.get("uid"), doc.get("started_at")
    media = b"".join(
        _tuple(
            _MEDIA_ENCODERS, [uid, started, ordinal] + [s.get(k) for k in MEDIA_KEYS], MEDIA_COLUMNS
        )
        for ordinal, s in enumerate(doc.get("media") or ())
    )
    return _HEAD.pack(day, len(row), len(media), 0) + row + media


def _row_day(started: str | None) -> int:
    if not isinstance(started, str):
        raise RenderError(f"no start time ({started!r})")
    return epoch_us(started) // _DAY_US


def parts(record: bytes) -> tuple[int, bytes, bytes, bytes]:
    """(day, cdr row, cdr_media rows, registration row) of a rendered record."""
    day, c, m, r = _HEAD.unpack_from(record)
    start = _HEAD.size
    return day, record[start : start + c], record[start + c : start + c + m], record[start + c + m : start + c + m + r]  # fmt: skip


def split(records) -> tuple[dict[bytes, bytes], set[int]]:
    """Rendered records grouped into one binary COPY stream per table, and their days."""
    cdr: list[bytes] = []
    media: list[bytes] = []
    registration: list[bytes] = []
    days: set[int] = set()
    unpack, size = _HEAD.unpack_from, _HEAD.size
    for record in records:
        day, c, m, r = unpack(record)
        days.add(day)
        if c:
            cdr.append(record[size : size + c])
        if m:
            media.append(record[size + c : size + c + m])
        if r:
            registration.append(record[size + c + m : size + c + m + r])
    streams = {}
    for tag, rows in ((b"c", cdr), (b"m", media), (b"r", registration)):
        if rows:
            streams[tag] = COPY_HEADER + b"".join(rows) + COPY_TRAILER
    return streams, days


def copy_sql(table: str, columns) -> str:
    return f"COPY {table} ({', '.join(_q(c) for c in columns)}) FROM STDIN WITH (FORMAT binary)"


def _q(name: str) -> str:
    return f'"{name}"'


# Column types of the staging tables. Spelled out rather than copied with
# LIKE, which would need the right to read the store's tables.
_TYPES = {
    "started_at": "timestamptz", "ringing_at": "timestamptz", "answered_at": "timestamptz",
    "ended_at": "timestamptz", "requested_at": "timestamptz", "first_at": "timestamptz",
    "last_at": "timestamptz", "caller_ip": "inet", "callee_ip": "inet", "subscriber_ip": "inet",
    "contact_ip": "inet", "source_ip": "inet", "registrar_ip": "inet", "src_ip": "inet",
    "dst_ip": "inet", "caller_port": "integer", "callee_port": "integer",
    "contact_port": "integer", "source_port": "integer", "registrar_port": "integer",
    "src_port": "integer", "dst_port": "integer", "setup_ms": "integer", "expires_s": "integer",
    "final_status": "smallint", "status": "smallint", "version": "smallint",
    "payload_type": "smallint", "ordinal": "smallint", "ssrc": "bigint", "packets": "bigint",
    "lost": "bigint", "duration_s": "float8", "jitter_max_ms": "float8",
    "jitter_mean_ms": "float8", "flags": "text[]", "subscriber": "jsonb", "remote": "jsonb",
    "extra": "jsonb",
}  # fmt: skip


def staging_sql(table: str) -> str:
    columns = {"cdr": CDR_COLUMNS, "cdr_media": MEDIA_COLUMNS, "registration": REGISTRATION_COLUMNS}[table]  # fmt: skip
    definitions = ", ".join(f"{_q(c)} {_TYPES.get(c, 'text')}" for c in columns)
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_{table} ({definitions}) ON COMMIT DELETE ROWS"  # fmt: skip


def merge_sql(table: str, columns) -> str:
    """INSERT from the staging table, skipping records stored before."""
    names = ", ".join(_q(c) for c in columns)
    if table == "cdr_media":
        return ""  # written together with their cdr rows, below
    if table != "cdr":
        return f"INSERT INTO {table} ({names}) SELECT {names} FROM stage_{table} ON CONFLICT DO NOTHING"  # fmt: skip
    # A call's media rows go in only with its new cdr row; DISTINCT ON drops a
    # record spooled twice within one batch.
    media = ", ".join(_q(c) for c in MEDIA_COLUMNS)
    return f"""
WITH new AS (
    INSERT INTO cdr ({names}) SELECT {names} FROM stage_cdr ON CONFLICT DO NOTHING
    RETURNING uid, started_at)
INSERT INTO cdr_media ({media})
SELECT DISTINCT ON (m.uid, m.started_at, m.ordinal) {", ".join("m." + _q(c) for c in MEDIA_COLUMNS)}
FROM stage_cdr_media m JOIN new ON new.uid = m.uid AND new.started_at = m.started_at
"""


_CDR_ENCODERS = _encoders(CDR_COLUMNS)
_MEDIA_ENCODERS = _encoders(MEDIA_COLUMNS)
_REGISTRATION_ENCODERS = _encoders(REGISTRATION_COLUMNS)
