"""How records travel from the spool into the store: COPY rows, tagged by table.

A record is rendered once, when it is spooled, into lines of Postgres COPY text
format, each tagged with its table: ``c`` for `cdr`, ``m`` for each of its
`cdr_media` streams, ``r`` for `registration`. Draining a segment is then pure
byte moving: split by tag and COPY each table's rows (Postgres routes them to
the day partitions). This keeps Python out of the drain and lets Postgres
ingest at its own speed.

Idempotence: the tables' primary keys refuse a record stored before (a segment
drained twice after a crash, a capture replayed twice). The fast path COPYs
straight into the tables; on a unique violation the batch is redone through
temporary staging tables with INSERT ... ON CONFLICT DO NOTHING, so that the
records already there are skipped and the first write wins. Neither path reads
a store table, so the insert-only writer role suffices.
"""

from __future__ import annotations

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
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _array(values) -> str:
    # A Postgres text[] literal; COPY escaping is applied to it afterwards.
    items = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(items) + "}"


def _text(value: str) -> str:
    if value.isprintable() and "\\" not in value:
        return value  # the common case: nothing to escape
    return value.translate(_ESCAPES)


def _json(value) -> str:
    return _text(orjson.dumps(value).decode())


_RENDER = {
    str: _text,
    int: repr,
    float: repr,
    bool: lambda v: "true" if v else "false",
    type(None): lambda v: "\\N",
    list: lambda v: _text(_array(v)),
    tuple: lambda v: _text(_array(v)),
    dict: _json,
}


def _field(value) -> str:
    render = _RENDER.get(type(value))
    return render(value) if render is not None else _json(value)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", _NUL_STANDIN)
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def render(doc: dict, pop: str | None, sensor: str | None) -> bytes:
    """The tagged COPY lines of one record (its contract dict)."""
    text = _render(doc, pop, sensor)
    if "\x00" in text:
        # NUL reaches text fields through SIP (%00 or a raw NUL byte). Postgres
        # cannot store it: it becomes U+2400 and the record's flags say so.
        doc = _without_nul(doc)
        doc["flags"] = [*doc.get("flags", ()), NUL_FLAG]
        text = _render(doc, pop, sensor)
    return text.encode()


def _render(doc: dict, pop: str | None, sensor: str | None) -> str:
    field = _field
    if doc.get("kind") == "registration":
        extra = {k: v for k, v in doc.items() if k not in _REGISTRATION_CONTRACT}
        row = [doc.get(key) for key in REGISTRATION_KEYS]
        return "r\t" + "\t".join([field(v) for v in row]) + "\t" + _tail(extra, pop, sensor)
    extra = {k: v for k, v in doc.items() if k not in _CDR_CONTRACT}
    row = [doc.get(key) for key in CDR_KEYS]
    text = "c\t" + "\t".join([field(v) for v in row]) + "\t" + _tail(extra, pop, sensor)
    media = doc.get("media")
    if media:
        head = f"m\t{field(doc['uid'])}\t{field(doc['started_at'])}\t"
        for ordinal, stream in enumerate(media):
            text += f"{head}{ordinal}\t" + "\t".join([field(stream.get(k)) for k in MEDIA_KEYS]) + "\n"  # fmt: skip
    return text


def _tail(extra: dict, pop: str | None, sensor: str | None) -> str:
    return f"{_json(extra) if extra else '{}'}\t{_field(pop)}\t{_field(sensor)}\n"


def split(data: bytes) -> dict[bytes, bytes]:
    """A segment's lines grouped by table tag, tags removed: {b"c": rows, ...}."""
    groups: dict[bytes, list[bytes]] = {b"c": [], b"m": [], b"r": []}
    for line in data.splitlines(keepends=True):
        groups[line[:1]].append(line[2:])
    return {tag: b"".join(lines) for tag, lines in groups.items() if lines}


def copy_sql(table: str, columns) -> str:
    return f"COPY {table} ({', '.join(_q(c) for c in columns)}) FROM STDIN"


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
