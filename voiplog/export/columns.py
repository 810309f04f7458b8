"""The CSV tables of an evidence bundle: their columns, defined once, and their rows.

The columns are part of the bundle format (README, "Evidence export"): new
columns go at the end, none is renamed or removed. Each time is written
twice, in UTC (as the records have it) and in the configured local zone, so
that a reader need not convert. Empty cells are missing values.

Each column names the path of its value in the record, so that the tables
read back (`records_from_tables`) to exactly what the records hold at those
paths (`shown`): a check that no value was lost or changed on the way to a
spreadsheet, which the tests make on real exports and on random records.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its name and meaning, where its value is in a record, and how it is written.

    `path` leads to the value inside the record (inside the stream, for
    media.csv); an empty path is a column the table fills itself. `type`:
    text, int, number (float), time (the record's UTC string as it is),
    local (the same moment in the local zone), json (an object, keys
    sorted), list (items joined by |).
    """

    name: str
    meaning: str
    path: tuple[str, ...]
    type: str = "text"


def _c(name: str, meaning: str, path: str | None = None, type: str = "text") -> Column:
    keys = (path if path is not None else name).split(".") if path != "" else ()
    return Column(name, meaning, tuple(keys), type)


CALLS: tuple[Column, ...] = (
    _c("uid", "stable id of the record"),
    _c("kind", "sip, media or encrypted"),
    _c("stored_in", "table the record was read from (cdr or held_record)"),
    _c("call_id", "SIP Call-ID"),
    _c("caller", "user part of From (number or user)"),
    _c("callee", "user part of To"),
    _c("caller_uri", "full From URI"),
    _c("callee_uri", "full To URI"),
    _c("request_uri", "Request-URI of the INVITE"),
    _c("caller_ip", "source address of the INVITE"),
    _c("caller_port", "source port of the INVITE", type="int"),
    _c("callee_ip", "destination address of the INVITE"),
    _c("callee_port", "destination port of the INVITE", type="int"),
    _c("transport", "udp, tcp, tls, ws, wss or sctp"),
    _c("subscriber_ip", "the endpoint inside the POP's subscriber networks"),
    _c("direction", "outbound, inbound, internal or transit"),
    _c("started_at_utc", "first INVITE (or first packet), UTC", "started_at", "time"),
    _c("started_at_local", "the same in the local zone", "started_at", "local"),
    _c("answered_at_utc", "answer, UTC", "answered_at", "time"),
    _c("answered_at_local", "the same in the local zone", "answered_at", "local"),
    _c("ended_at_utc", "end of the call, UTC", "ended_at", "time"),
    _c("ended_at_local", "the same in the local zone", "ended_at", "local"),
    _c("duration_s", "answered to ended, seconds", type="number"),
    _c("disposition", "answered, busy, cancelled, ... (see the record contract)"),
    _c("final_status", "SIP status of the final answer", type="int"),
    _c("ended_by", "caller, callee, timeout or shutdown"),
    _c("app", "application of an app call (whatsapp, telegram, ...)", "app.name"),
    _c("subscriber_id", "subscriber at call time", "subscriber.id"),
    _c("account", "subscriber's account", "subscriber.account"),
    _c("access_line", "subscriber's access line", "subscriber.access_line"),
    _c("location", "subscriber's location (JSON)", "subscriber.location", "json"),
    _c("remote_country", "country of the far end", "remote.country"),
    _c("remote_asn", "AS number of the far end", "remote.asn", "int"),
    _c("flags", "record flags, separated by a vertical bar", type="list"),
)
MEDIA: tuple[Column, ...] = (
    _c("call_uid", "uid of the call the stream or flow belongs to", ""),
    _c("type", "rtp (a media stream) or app_flow (a flow of an app call)", ""),
    _c("src_ip", "source address (the subscriber end of an app flow)"),
    _c("src_port", "source port", type="int"),
    _c("dst_ip", "destination address"),
    _c("dst_port", "destination port", type="int"),
    _c("first_at_utc", "first packet, UTC", "first_at", "time"),
    _c("first_at_local", "the same in the local zone", "first_at", "local"),
    _c("last_at_utc", "last packet, UTC", "last_at", "time"),
    _c("last_at_local", "the same in the local zone", "last_at", "local"),
    _c("ssrc", "RTP SSRC", type="int"),
    _c("codec", "RTP codec"),
    _c("packets", "RTP packets received", type="int"),
    _c("lost", "RTP packets lost", type="int"),
    _c("packets_out", "app flow: packets from the subscriber", type="int"),
    _c("packets_in", "app flow: packets to the subscriber", type="int"),
    _c("bytes_out", "app flow: bytes from the subscriber", type="int"),
    _c("bytes_in", "app flow: bytes to the subscriber", type="int"),
    _c("path", "app flow: relay, peer or unknown"),
)
REGISTRATIONS: tuple[Column, ...] = (
    _c("uid", "stable id of the record"),
    _c("stored_in", "table the record was read from (registration or held_record)"),
    _c("call_id", "Call-ID of the REGISTER chain"),
    _c("requested_at_utc", "first REGISTER, UTC", "requested_at", "time"),
    _c("requested_at_local", "the same in the local zone", "requested_at", "local"),
    _c("aor", "address of record"),
    _c("user", "user part of the address of record"),
    _c("contact_uri", "Contact URI"),
    _c("contact_ip", "Contact address"),
    _c("contact_port", "Contact port", type="int"),
    _c("source_ip", "source address of the REGISTER"),
    _c("source_port", "source port of the REGISTER", type="int"),
    _c("status", "SIP status of the final answer", type="int"),
    _c("result", "registered, refused, ..."),
    _c("expires_s", "binding lifetime granted, seconds", type="int"),
    _c("user_agent", "User-Agent"),
    _c("subscriber_id", "subscriber at registration time", "subscriber.id"),
)
SUBSCRIBERS: tuple[Column, ...] = (
    _c("subscriber_id", "subscriber id", "id"),
    _c("account", "account"),
    _c("access_line", "access line"),
    _c("pop", "point of presence"),
    _c("location", "location (JSON)", type="json"),
    _c("records", "records of this subscriber in the bundle", "", "int"),
    _c("first_at_utc", "earliest record time, UTC", "", "time"),
    _c("last_at_utc", "latest record time, UTC", "", "time"),
)
# The record lists that media.csv flattens, by its `type`.
STREAM_LISTS = {"rtp": "media", "app_flow": "app_flows"}


def local_time(value, zone: ZoneInfo) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value).astimezone(zone).isoformat()


def _get(obj, path: tuple[str, ...]):
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


_EMPTY_TYPES = (str, list, dict)
_WRITTEN_AS_IS = ("text", "int", "number", "time")
_PLANS: dict[tuple[Column, ...], tuple] = {}


def _plan(columns: tuple[Column, ...]) -> tuple:
    """How a row is read from an object: the top-level key of each column written as it is
    (None for the others), and (index, first key, rest of the path, type) of the others."""
    plan = _PLANS.get(columns)
    if plan is None:
        plain = tuple(c.path[0] if len(c.path) == 1 and c.type in _WRITTEN_AS_IS else None for c in columns)  # fmt: skip
        other = tuple((i, c.path[0], c.path[1:], c.type) for i, c in enumerate(columns) if c.path and plain[i] is None)  # fmt: skip
        plan = _PLANS[columns] = (plain, other)
    return plan


def _json(value) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits: the standard library writes any
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _row(columns: tuple[Column, ...], obj: dict, zone: ZoneInfo) -> list:
    """A table row, its cells in column order (None: an empty cell, as is an empty string).

    Runs once per row of every table: the columns written as they are come
    from one list comprehension, the few others are filled in after it.
    """
    plain, other = _plan(columns)
    get = obj.get
    row = [None if key is None else get(key) for key in plain]
    for i, key, rest, kind in other:
        value = get(key)
        for step in rest:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None or (isinstance(value, _EMPTY_TYPES) and not value):
            continue
        if kind == "local":
            value = local_time(value, zone)
        elif kind == "json":
            value = _json(value)
        elif kind == "list":
            value = "|".join(str(item) for item in value)
        row[i] = value
    return row


def is_call(record: dict) -> bool:
    return record.get("kind") != "registration"


def call_row(record: dict, zone: ZoneInfo) -> list:
    return _row(CALLS, record, zone)


def media_rows(record: dict, zone: ZoneInfo) -> Iterable[list]:
    uid = record.get("uid")
    for kind, key in STREAM_LISTS.items():
        for stream in record.get(key) or ():
            if isinstance(stream, dict):
                row = _row(MEDIA, stream, zone)
                row[0], row[1] = uid, kind  # call_uid, type
                yield row


def registration_row(record: dict, zone: ZoneInfo) -> list:
    return _row(REGISTRATIONS, record, zone)


def _subscriber(record: dict) -> dict:
    value = record.get("subscriber")
    return value if isinstance(value, dict) else {}


def subscriber_rows(records: Iterable[dict], zone: ZoneInfo) -> list[list]:
    """One row per subscriber named by any record, in order of subscriber id."""
    seen: dict[str, list] = {}
    count, first, last = (SUBSCRIBERS.index(c) for c in SUBSCRIBERS if not c.path)
    for record in records:
        subscriber = _subscriber(record)
        if not subscriber.get("id"):
            continue
        moment = record.get("started_at") or record.get("requested_at")
        row = seen.get(str(subscriber["id"]))
        if row is None:
            row = seen[str(subscriber["id"])] = _row(SUBSCRIBERS, subscriber, zone)
            row[count], row[first], row[last] = 0, moment, moment
        row[count] += 1
        if moment:
            row[first] = min(filter(None, (row[first], moment)))
            row[last] = max(filter(None, (row[last], moment)))
    return [seen[key] for key in sorted(seen)]


def write_csv(columns: tuple[Column, ...], rows: Iterable[list]) -> tuple[bytes, int]:
    """The table as UTF-8 CSV (header first, CRLF as RFC 4180 has it) and its row count."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([c.name for c in columns])
    count = 0
    for row in rows:
        writer.writerow(row)  # None is written as an empty cell
        count += 1
    return out.getvalue().encode("utf-8"), count


TABLES: dict[str, tuple[tuple[Column, ...], Callable]] = {
    "calls.csv": (CALLS, lambda records, zone: (call_row(r, zone) for r in records if is_call(r))),
    "media.csv": (MEDIA, lambda records, zone: (m for r in records for m in media_rows(r, zone))),
    "registrations.csv": (
        REGISTRATIONS,
        lambda records, zone: (registration_row(r, zone) for r in records if not is_call(r)),
    ),
    "subscribers.csv": (SUBSCRIBERS, subscriber_rows),
}


class TableError(ValueError):
    """A table that is not as this module writes it."""


def _parse(column: Column, text: str):
    if text == "":
        return None
    if column.type == "int":
        return int(text)
    if column.type == "number":
        return float(text)
    if column.type == "json":
        return json.loads(text)
    if column.type == "list":
        return text.split("|")
    return text


def read_csv(name: str, columns: tuple[Column, ...], data: bytes, zone: ZoneInfo) -> list[dict]:
    """The rows of a table, typed back; a local time that is not its UTC twin is an error."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader, None)
    if header != [c.name for c in columns]:
        raise TableError(f"{name}: the header is not the documented one")
    rows = []
    for number, cells in enumerate(reader, 2):
        if len(cells) != len(columns):
            raise TableError(f"{name} line {number}: {len(cells)} cells, not {len(columns)}")
        try:
            row = {c.name: _parse(c, cell) for c, cell in zip(columns, cells, strict=True)}
        except ValueError as exc:
            raise TableError(f"{name} line {number}: {exc}") from None
        for column in columns:
            if column.type == "local":
                utc = next(c for c in columns if c.path == column.path and c.type == "time")
                if row[column.name] != local_time(row[utc.name], zone):
                    raise TableError(f"{name} line {number}: {column.name} is not {utc.name} in {zone.key}")  # fmt: skip
        rows.append(row)
    return rows


def _put(obj: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = value


def _fields(columns: tuple[Column, ...], row: dict) -> dict:
    """A table row as the part of a record (or stream) its columns show."""
    out: dict = {}
    for column in columns:
        if column.path and column.type != "local" and row[column.name] is not None:
            _put(out, column.path, row[column.name])
    return out


def _shown_fields(columns: tuple[Column, ...], obj: dict) -> dict:
    out: dict = {}
    for column in columns:
        if not column.path or column.type == "local":
            continue
        value = _get(obj, column.path)
        if value is None or value == "" or value == [] or value == {}:
            continue
        _put(out, column.path, [str(v) for v in value] if column.type == "list" else value)
    return out


def shown(record: dict) -> dict:
    """What the tables show of a record: its values at the columns' paths, empty ones left out."""
    if not is_call(record):
        return _shown_fields(REGISTRATIONS, record)
    part = _shown_fields(CALLS, record)
    for key in STREAM_LISTS.values():
        streams = [_shown_fields(MEDIA, s) for s in record.get(key) or () if isinstance(s, dict)]
        if streams:
            part[key] = streams
    return part


def records_from_tables(files: dict[str, bytes], zone: ZoneInfo) -> dict[str, dict]:
    """The records as calls.csv, media.csv and registrations.csv show them, by uid."""
    found: dict[str, dict] = {}
    for row in read_csv("calls.csv", CALLS, files["calls.csv"], zone):
        found[row["uid"]] = _fields(CALLS, row)
    for row in read_csv("media.csv", MEDIA, files["media.csv"], zone):
        if row["call_uid"] not in found or row["type"] not in STREAM_LISTS:
            raise TableError(f"media.csv: a {row['type']} row of {row['call_uid']}, which calls.csv does not have")  # fmt: skip
        found[row["call_uid"]].setdefault(STREAM_LISTS[row["type"]], []).append(_fields(MEDIA, row))  # fmt: skip
    for row in read_csv("registrations.csv", REGISTRATIONS, files["registrations.csv"], zone):
        found[row["uid"]] = _fields(REGISTRATIONS, row)
    return found
