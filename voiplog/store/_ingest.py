"""How records travel from the spool into the store: binary COPY rows, tagged by table.

A record is rendered once, when it is spooled, into a row in Postgres' binary
COPY format: its `cdr` row (or its `registration` row), behind a small header
with the UTC day of its partition and the length of each part. A call's media
streams are the last column of its `cdr` row, an array of `media_stream`
values, kept as a part of its own because an array names its element type by
OID, which only the database knows: the drainer writes it in. Draining a
segment is then byte moving: the parts are gathered by table and COPYed
(Postgres routes them to the day partitions). Binary rows spare Postgres the
parsing of times, addresses, numbers, arrays and composite values, which is a
good part of what ingest costs; JSON is parsed by the server, so only what has
no fixed shape (a location's free keys, keys beyond the contract) is JSON.

Spool segments written before media and enrichment became typed columns (cdr
rows of 32 fields followed by `cdr_media` rows) are converted as they drain
(`_from_v1`), so an upgrade keeps what waited in the spool.

Idempotence: the tables' primary keys refuse a record stored before (a segment
drained twice after a crash, a capture replayed twice). The fast path COPYs
straight into the tables; on a unique violation the batch is redone through
temporary staging tables with INSERT ... ON CONFLICT DO NOTHING, so that the
records already there are skipped and the first write wins. The skipped ones
are then handed to `voiplog_record_conflicts`, which compares each with the
stored record and keeps a newcomer with other content in `record_conflict`
(migration 0007): nothing arriving under a stored key is dropped unseen.
Neither path reads a store record, so the insert-only writer role suffices.

The `subscriber` and `remote` objects are composite columns (`subscriber_info`,
`remote_info`) holding the contract's keys typed. An object that does not have
exactly those keys with values of those types (a record from elsewhere) keeps
its typed column filled as far as it fits and is also kept verbatim in `extra`
under its own name, which the readers prefer: the record reads back as it came.
"""

from __future__ import annotations

import socket
import struct

import orjson

from voiplog.cdr.record import CALL_KEYS
from voiplog.cdr.registration import REGISTRATION_KEYS as REGISTRATION_RECORD_KEYS

# The columns of a record's contract keys: the uid and the time of the partition
# first, then the record's keys in their order (`voiplog.cdr`'s one definition);
# for calls, `media` has a column of its own, last; anything else a record
# carries goes into the `extra` column.
CDR_KEYS = ("uid", "started_at", *(k for k in CALL_KEYS if k not in ("uid", "started_at", "media")))
# `media` is last: its bytes are a part of their own in a rendered record (see split).
CDR_COLUMNS = (*CDR_KEYS, "extra", "pop", "sensor", "media")
_CDR_CONTRACT = frozenset((*CDR_KEYS, "media"))
_SUBSCRIBER_AT = CDR_KEYS.index("subscriber")
_REMOTE_AT = CDR_KEYS.index("remote")

# The fields of the composite types, in their order, with their column types.
MEDIA_FIELDS = (
    ("src_ip", "inet"), ("src_port", "integer"), ("dst_ip", "inet"), ("dst_port", "integer"),
    ("ssrc", "bigint"), ("payload_type", "smallint"), ("codec", "text"), ("packets", "bigint"),
    ("lost", "bigint"), ("jitter_max_ms", "float8"), ("jitter_mean_ms", "float8"),
    ("first_at", "timestamptz"), ("last_at", "timestamptz"),
)  # fmt: skip
MEDIA_KEYS = tuple(name for name, _ in MEDIA_FIELDS)
_MEDIA_OPTIONAL = frozenset({"codec"})
SUBSCRIBER_FIELDS = (
    ("id", "text"), ("account", "text"), ("access_line", "text"), ("pop", "text"),
    ("location", "jsonb"),
)  # fmt: skip
REMOTE_FIELDS = (("country", "text"), ("asn", "bigint"), ("org", "text"))

REGISTRATION_KEYS = (
    "uid",
    "requested_at",
    *(k for k in REGISTRATION_RECORD_KEYS if k not in ("uid", "requested_at")),
)
REGISTRATION_COLUMNS = (*REGISTRATION_KEYS, "extra", "pop", "sensor")
_REGISTRATION_CONTRACT = frozenset(REGISTRATION_KEYS)

TABLES = {b"c": ("cdr", CDR_COLUMNS), b"r": ("registration", REGISTRATION_COLUMNS)}

NUL_FLAG = "nul_replaced"
_NUL_STANDIN = "\u2400"  # SYMBOL FOR NULL: Postgres text and jsonb cannot hold NUL
_NUL_JSON = b"\\u0000"

_PG_EPOCH_DAYS = 10_957  # 2000-01-01, Postgres' epoch, in days since 1970-01-01
_DAY_US = 86_400_000_000
# A rendered record: UTC day of its partition (days since 1970-01-01), then the
# lengths of its cdr row (without its media), of its media field and of its
# registration row, then those bytes. Splitting a segment by table is then a
# few slices per record.
_HEAD = struct.Struct(">iIII")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_NULL = _I32.pack(-1)
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = _I16.pack(-1)
# The media field: length, dimensions, null flag, element type OID (filled in
# when draining, see split), then for one dimension its size and lower bound.
_MEDIA_OID_AT = 12
_CDR_COUNT = _I16.pack(len(CDR_COLUMNS))
# Built-in type OIDs, which composite values name field by field.
_OIDS = {
    "text": 25, "timestamptz": 1184, "inet": 869, "smallint": 21, "integer": 23,
    "bigint": 20, "float8": 701, "jsonb": 3802,
}  # fmt: skip


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
    return _I32.pack(len(data)) + data


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
        _I32.pack(len(item)) + item for item in items
    )
    return _I32.pack(len(body)) + body


def _jsonb(value) -> bytes:
    data = b"\x01" + orjson.dumps(value)
    return _I32.pack(len(data)) + data


_ENCODERS = {
    "text": _text, "timestamptz": _timestamp, "inet": _inet, "smallint": _int2,
    "integer": _int4, "bigint": _int8, "float8": _float8, "text[]": _text_array,
    "jsonb": _jsonb,
}  # fmt: skip


def _field(encode, value, name: str) -> bytes:
    """One field of a row or composite value, its length first; errors name it."""
    if value is None:
        return _NULL
    try:
        return encode(value)
    except RenderError as exc:
        raise RenderError(f"{name}: {exc}") from None
    except (struct.error, TypeError, ValueError, OverflowError, orjson.JSONEncodeError):
        raise RenderError(f"{name}: {value!r} does not fit the column") from None


def _composite_encoder(fields):
    encoders = tuple((_I32.pack(_OIDS[kind]), _ENCODERS[kind], name) for name, kind in fields)
    count = _I32.pack(len(fields))

    def encode(values) -> bytes:
        body = count + b"".join(
            oid + _field(encode_one, value, name)
            for (oid, encode_one, name), value in zip(encoders, values, strict=True)
        )
        return _I32.pack(len(body)) + body

    return encode


_media_stream = _composite_encoder(MEDIA_FIELDS)
_ENCODERS["subscriber_info"] = _composite_encoder(SUBSCRIBER_FIELDS)
_ENCODERS["remote_info"] = _composite_encoder(REMOTE_FIELDS)


def _tuple(encoders, values, columns) -> bytes:
    return _I16.pack(len(values)) + b"".join(
        _field(encode, value, column)
        for encode, value, column in zip(encoders, values, columns, strict=True)
    )


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", _NUL_STANDIN)
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _fits(kind: str, value) -> bool:
    if value is None or kind == "text":
        return value is None or isinstance(value, str)
    if kind == "bigint":
        return type(value) is int and -(1 << 63) <= value < 1 << 63
    return isinstance(value, dict)  # jsonb: a location's free keys


def _typed_object(key: str, value, fields, extra: dict) -> list | None:
    """The composite values of an enrichment object (subscriber, remote).

    An object without exactly the contract's keys, typed, is also kept whole
    in `extra` under its key, so that it reads back as it came.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        extra[key] = value
        return None
    if len(value) != len(fields) or not all(
        name in value and _fits(kind, value[name]) for name, kind in fields
    ):
        extra[key] = value
    return [value.get(name) if _fits(kind, value.get(name)) else None for name, kind in fields]


def render(doc: dict, pop: str | None, sensor: str | None, media_oid: int = 0) -> bytes:
    """The framed binary COPY row of one record (its contract dict).

    `media_oid` is the store's media_stream type OID when known (0 otherwise:
    `split` and `Batch` write the one of the database they drain into).
    Raises RenderError, naming the key, for a value its column cannot take.
    """
    try:
        as_json = orjson.dumps(doc)
    except orjson.JSONEncodeError as exc:
        raise RenderError(f"the record is not JSON ({exc})") from None
    if _NUL_JSON in as_json:
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
    values = [doc.get(key) for key in CDR_KEYS]
    values[_SUBSCRIBER_AT] = _typed_object("subscriber", values[_SUBSCRIBER_AT], SUBSCRIBER_FIELDS, extra)  # fmt: skip
    values[_REMOTE_AT] = _typed_object("remote", values[_REMOTE_AT], REMOTE_FIELDS, extra)
    try:
        media = _media_field(doc.get("media"), extra, media_oid)
    except RenderError as exc:
        media, refused = b"", exc  # named after any column before it
    else:
        refused = None
    values += (extra or None, pop, sensor)
    row = _CDR_COUNT + _tuple(_CDR_ENCODERS, values, CDR_COLUMNS[:-1])[2:]
    if refused is not None:
        raise refused
    day = _row_day(doc.get("started_at"))
    return _HEAD.pack(day, len(row), len(media), 0) + row + media


def _media_field(streams, extra: dict, oid: int = 0) -> bytes:
    """The media column: an array of media_stream values (element type `oid`)."""
    if not streams:
        return _media_array([], oid)
    if not isinstance(streams, list | tuple):
        raise RenderError(f"media: {streams!r} is not a list of streams")
    elements = []
    for number, stream in enumerate(streams):
        if not isinstance(stream, dict):
            raise RenderError(f"media[{number}]: {stream!r} is not a stream")
        missing = [k for k in MEDIA_KEYS if stream.get(k) is None and k not in _MEDIA_OPTIONAL]
        if missing:
            raise RenderError(f"media[{number}]: no {', '.join(missing)}")
        if len(stream) != len(MEDIA_KEYS) or not all(k in stream for k in MEDIA_KEYS):
            extra["media"] = streams  # keys beyond the contract: kept whole, as it came
        try:
            elements.append(_media_stream([stream.get(k) for k in MEDIA_KEYS]))
        except RenderError as exc:
            raise RenderError(f"media[{number}].{exc}") from None
    return _media_array(elements, oid)


def _media_array(elements: list[bytes], oid: int) -> bytes:
    """The media field: an array of encoded media_stream values, element type `oid`."""
    if not elements:
        return struct.pack(">iiiI", 12, 0, 0, oid)
    body = struct.pack(">iiIii", 1, 0, oid, len(elements), 1) + b"".join(elements)
    return _I32.pack(len(body)) + body


def _row_day(started: str | None) -> int:
    if not isinstance(started, str):
        raise RenderError(f"no start time ({started!r})")
    return epoch_us(started) // _DAY_US


def parts(record: bytes) -> tuple[int, bytes, bytes, bytes]:
    """(day, cdr row without media, media field, registration row) of a rendered record."""
    day, c, m, r = _HEAD.unpack_from(record)
    start = _HEAD.size
    return day, record[start : start + c], record[start + c : start + c + m], record[start + c + m : start + c + m + r]  # fmt: skip


def split(records, media_oid: int) -> tuple[dict[bytes, bytes], set[int]]:
    """Rendered records grouped into one binary COPY stream per table, and their days.

    `media_oid` is the OID of the store's media_stream type, which the media
    arrays name as their element type.
    """
    cdr: list[bytes] = []
    registration: list[bytes] = []
    days: set[int] = set()
    oid = struct.pack(">I", media_oid)
    unpack, size = _HEAD.unpack_from, _HEAD.size
    for record in records:
        day, c, m, r = unpack(record)
        days.add(day)
        if c:
            row = record[size : size + c]
            media = record[size + c : size + c + m]
            if row[:2] == _V1_COUNT:
                row, media = _from_v1(row, media)
            cdr += (row, media[:_MEDIA_OID_AT], oid, media[_MEDIA_OID_AT + 4 :])
        if r:
            registration.append(record[size + c + m : size + c + m + r])
    streams = {}
    for tag, rows in ((b"c", cdr), (b"r", registration)):
        if rows:
            streams[tag] = COPY_HEADER + b"".join(rows) + COPY_TRAILER
    return streams, days


class Batch:
    """The COPY streams of one spool segment, gathered as its records are spooled.

    A spool memo (see `Spool.keep_memos`): draining the segment then costs no
    pass over its records, which at full rate is a good part of a core.
    """

    __slots__ = ("cdr", "count", "days", "media_oid", "oids", "registration", "size")

    def __init__(self) -> None:
        self.cdr = bytearray(COPY_HEADER)
        self.registration = bytearray(COPY_HEADER)
        self.days: set[int] = set()
        self.oids: list[int] = []  # where each media array names its element type
        self.media_oid: bytes | None = None  # the OID they all name (b"" if they differ)
        self.count = 0
        self.size = 0

    def add(self, record: bytes) -> int:
        day, c, m, r = _HEAD.unpack_from(record)
        size = _HEAD.size
        self.days.add(day)
        self.count += 1
        if c:  # a record made by render (the first layout is never spooled again)
            at = size + c + _MEDIA_OID_AT
            oid = record[at : at + 4]
            if self.media_oid is None:
                self.media_oid = oid
            elif self.media_oid != oid:
                self.media_oid = b""  # mixed: written in when draining
            self.oids.append(len(self.cdr) + c + _MEDIA_OID_AT)
            self.cdr += memoryview(record)[size : size + c + m]
        if r:
            self.registration += memoryview(record)[size + c + m : size + c + m + r]
        kept = len(record) - size
        self.size += kept
        return kept

    def streams(self, media_oid: int) -> tuple[dict[bytes, bytes], set[int]]:
        """As `split` gives them for the same records."""
        oid = struct.pack(">I", media_oid)
        if self.oids and self.media_oid != oid:
            for at in self.oids:
                self.cdr[at : at + 4] = oid
            self.media_oid = oid
        streams = {}
        for tag, data in ((b"c", self.cdr), (b"r", self.registration)):
            if len(data) > len(COPY_HEADER):
                streams[tag] = b"".join((data, COPY_TRAILER))
        return streams, self.days


# -- records spooled in the first layout -----------------------------------------
# A cdr row of 32 fields (the contract's keys, extra, pop, sensor) with subscriber
# and remote as JSON, followed by one cdr_media row per stream (uid, started_at,
# ordinal, then the stream's fields).

_V1_COUNT = _I16.pack(32)
_V1_EXTRA_AT = len(CDR_KEYS)
_MEDIA_OIDS = tuple(_I32.pack(_OIDS[kind]) for _, kind in MEDIA_FIELDS)


def _raw_fields(data: bytes, pos: int) -> tuple[list[bytes], int]:
    """The fields of the binary COPY tuple at `pos`, each with its length word."""
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    fields = []
    for _ in range(count):
        (length,) = _I32.unpack_from(data, pos)
        end = pos + 4 + max(length, 0)
        fields.append(data[pos:end])
        pos = end
    return fields, pos


def _json_field(field: bytes):
    return None if field == _NULL else orjson.loads(field[5:])  # length, jsonb version 1


def _from_v1(row: bytes, media_rows: bytes) -> tuple[bytes, bytes]:
    """A first-layout cdr row and its media rows as a cdr row and media field."""
    fields, _ = _raw_fields(row, 0)
    extra = _json_field(fields[_V1_EXTRA_AT]) or {}
    for at, key, shape in ((_SUBSCRIBER_AT, "subscriber", SUBSCRIBER_FIELDS), (_REMOTE_AT, "remote", REMOTE_FIELDS)):  # fmt: skip
        values = _typed_object(key, _json_field(fields[at]), shape, extra)
        fields[at] = _NULL if values is None else _ENCODERS[f"{key}_info"](values)
    fields[_V1_EXTRA_AT] = _jsonb(extra) if extra else _NULL
    elements = []
    pos = 0
    while pos < len(media_rows):
        stream, pos = _raw_fields(media_rows, pos)
        body = _I32.pack(len(MEDIA_FIELDS)) + b"".join(
            oid + value for oid, value in zip(_MEDIA_OIDS, stream[3:], strict=True)
        )
        elements.append(_I32.pack(len(body)) + body)
    return _CDR_COUNT + b"".join(fields), _media_array(elements, 0)


def copy_sql(table: str, columns) -> str:
    return f"COPY {table} ({', '.join(_q(c) for c in columns)}) FROM STDIN WITH (FORMAT binary)"


def _q(name: str) -> str:
    return f'"{name}"'


# Column types of the staging tables. Spelled out rather than copied with
# LIKE, which would need the right to read the store's tables.
_TYPES = {
    "started_at": "timestamptz", "ringing_at": "timestamptz", "answered_at": "timestamptz",
    "ended_at": "timestamptz", "requested_at": "timestamptz", "caller_ip": "inet",
    "callee_ip": "inet", "subscriber_ip": "inet", "contact_ip": "inet", "source_ip": "inet",
    "registrar_ip": "inet", "caller_port": "integer", "callee_port": "integer",
    "contact_port": "integer", "source_port": "integer", "registrar_port": "integer",
    "setup_ms": "integer", "expires_s": "integer", "final_status": "smallint",
    "status": "smallint", "version": "smallint", "duration_s": "float8", "flags": "text[]",
    "extra": "jsonb", "media": "media_stream[]",
}  # fmt: skip


def staging_sql(table: str) -> str:
    columns = {"cdr": CDR_COLUMNS, "registration": REGISTRATION_COLUMNS}[table]
    types = _TYPES | (
        {"subscriber": "subscriber_info", "remote": "remote_info"} if table == "cdr"
        else {"subscriber": "jsonb"}
    )  # fmt: skip
    definitions = ", ".join(f"{_q(c)} {types.get(c, 'text')}" for c in columns)
    return f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_{table} ({definitions}) ON COMMIT DELETE ROWS"  # fmt: skip


def merge_sql(table: str, columns) -> str:
    """INSERT from the staging table, skipping records stored before.

    One record of each key is inserted (the first staged) and leaves the
    staging table: what stays are the records whose key was stored already,
    and the others of a key that came more than once in the batch, for
    `conflicts_sql` to compare (the same content twice is no conflict).
    """
    names = ", ".join(_q(c) for c in columns)
    picked = ", ".join(f"s.{_q(c)}" for c in columns)
    time = _q(TIME_COLUMNS[table])
    return (
        f"WITH chosen AS (SELECT DISTINCT ON ({time}, uid) ctid AS row_id, {time}, uid FROM stage_{table} "
        f"ORDER BY {time}, uid, ctid), "
        f"landed AS (INSERT INTO {table} ({names}) SELECT {picked} FROM stage_{table} s "
        f"JOIN chosen f ON s.ctid = f.row_id ON CONFLICT DO NOTHING RETURNING {time}, uid) "
        f"DELETE FROM stage_{table} s USING landed, chosen f WHERE s.ctid = f.row_id "
        f"AND f.{time} = landed.{time} AND f.uid = landed.uid"
    )  # fmt: skip


TIME_COLUMNS = {"cdr": "started_at", "registration": "requested_at"}

# The staged records whose key was stored already, handed to the database to
# compare with the stored ones (it keeps those that differ). Times in UTC and
# floats in their shortest exact form: the comparison is of JSON text.
CONFLICT_SETTINGS_SQL = "SET LOCAL TimeZone = 'UTC'; SET LOCAL extra_float_digits = 1"


def conflicts_sql(table: str) -> str:
    return (
        f"SELECT c.uid, c.at FROM voiplog_record_conflicts('{table}', "
        f"(SELECT jsonb_agg(to_jsonb(s)) FROM stage_{table} s)) c"
    )


_CDR_ENCODERS = tuple(
    _ENCODERS[{"subscriber": "subscriber_info", "remote": "remote_info"}.get(c) or _TYPES.get(c, "text")]
    for c in CDR_COLUMNS[:-1]
)  # fmt: skip
_REGISTRATION_ENCODERS = tuple(
    _ENCODERS["jsonb" if c == "subscriber" else _TYPES.get(c, "text")] for c in REGISTRATION_COLUMNS
)
