"""The CSV tables of an evidence bundle: their columns, defined once, and their rows.

The columns are part of the bundle format (README, "Evidence export"): new
columns go at the end, none is renamed or removed. Each time is written
twice, in UTC (as the records have it) and in the configured local zone, so
that a reader need not convert. Empty cells are missing values.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

# (column, one-line meaning); README's tables repeat these.
CALLS: tuple[tuple[str, str], ...] = (
    ("uid", "stable id of the record"),
    ("kind", "sip, media or encrypted"),
    ("stored_in", "table the record was read from (cdr or held_record)"),
    ("call_id", "SIP Call-ID"),
    ("caller", "user part of From (number or user)"),
    ("callee", "user part of To"),
    ("caller_uri", "full From URI"),
    ("callee_uri", "full To URI"),
    ("request_uri", "Request-URI of the INVITE"),
    ("caller_ip", "source address of the INVITE"),
    ("caller_port", "source port of the INVITE"),
    ("callee_ip", "destination address of the INVITE"),
    ("callee_port", "destination port of the INVITE"),
    ("transport", "udp, tcp, tls, ws, wss or sctp"),
    ("subscriber_ip", "the endpoint inside the POP's subscriber networks"),
    ("direction", "outbound, inbound, internal or transit"),
    ("started_at_utc", "first INVITE (or first packet), UTC"),
    ("started_at_local", "the same in the local zone"),
    ("answered_at_utc", "answer, UTC"),
    ("answered_at_local", "the same in the local zone"),
    ("ended_at_utc", "end of the call, UTC"),
    ("ended_at_local", "the same in the local zone"),
    ("duration_s", "answered to ended, seconds"),
    ("disposition", "answered, busy, cancelled, ... (see the record contract)"),
    ("final_status", "SIP status of the final answer"),
    ("ended_by", "caller, callee, timeout or shutdown"),
    ("app", "application of an app call (whatsapp, telegram, ...)"),
    ("subscriber_id", "subscriber at call time"),
    ("account", "subscriber's account"),
    ("access_line", "subscriber's access line"),
    ("location", "subscriber's location (JSON)"),
    ("remote_country", "country of the far end"),
    ("remote_asn", "AS number of the far end"),
    ("flags", "record flags, separated by |"),
)
MEDIA: tuple[tuple[str, str], ...] = (
    ("call_uid", "uid of the call the stream or flow belongs to"),
    ("type", "rtp (a media stream) or app_flow (a flow of an app call)"),
    ("src_ip", "source address (the subscriber end of an app flow)"),
    ("src_port", "source port"),
    ("dst_ip", "destination address"),
    ("dst_port", "destination port"),
    ("first_at_utc", "first packet, UTC"),
    ("first_at_local", "the same in the local zone"),
    ("last_at_utc", "last packet, UTC"),
    ("last_at_local", "the same in the local zone"),
    ("ssrc", "RTP SSRC"),
    ("codec", "RTP codec"),
    ("packets", "RTP packets received"),
    ("lost", "RTP packets lost"),
    ("packets_out", "app flow: packets from the subscriber"),
    ("packets_in", "app flow: packets to the subscriber"),
    ("bytes_out", "app flow: bytes from the subscriber"),
    ("bytes_in", "app flow: bytes to the subscriber"),
    ("path", "app flow: relay, peer or unknown"),
)
REGISTRATIONS: tuple[tuple[str, str], ...] = (
    ("uid", "stable id of the record"),
    ("stored_in", "table the record was read from (registration or held_record)"),
    ("call_id", "Call-ID of the REGISTER chain"),
    ("requested_at_utc", "first REGISTER, UTC"),
    ("requested_at_local", "the same in the local zone"),
    ("aor", "address of record"),
    ("user", "user part of the address of record"),
    ("contact_uri", "Contact URI"),
    ("contact_ip", "Contact address"),
    ("contact_port", "Contact port"),
    ("source_ip", "source address of the REGISTER"),
    ("source_port", "source port of the REGISTER"),
    ("status", "SIP status of the final answer"),
    ("result", "registered, refused, ..."),
    ("expires_s", "binding lifetime granted, seconds"),
    ("user_agent", "User-Agent"),
    ("subscriber_id", "subscriber at registration time"),
)
SUBSCRIBERS: tuple[tuple[str, str], ...] = (
    ("subscriber_id", "subscriber id"),
    ("account", "account"),
    ("access_line", "access line"),
    ("pop", "point of presence"),
    ("location", "location (JSON)"),
    ("records", "records of this subscriber in the bundle"),
    ("first_at_utc", "earliest record time, UTC"),
    ("last_at_utc", "latest record time, UTC"),
)


def _moment(value) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def local_time(value, zone: ZoneInfo) -> str | None:
    moment = _moment(value)
    return None if moment is None else moment.astimezone(zone).isoformat()


def _obj(record: dict, key: str) -> dict:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _location(subscriber: dict) -> str | None:
    location = subscriber.get("location")
    return json.dumps(location, sort_keys=True, ensure_ascii=False) if location else None


def is_call(record: dict) -> bool:
    return record.get("kind") != "registration"


def call_row(record: dict, zone: ZoneInfo) -> dict:
    subscriber, remote = _obj(record, "subscriber"), _obj(record, "remote")
    row = {name: record.get(name) for name, _ in CALLS}
    for key in ("started_at", "answered_at", "ended_at"):
        row[f"{key}_utc"] = record.get(key)
        row[f"{key}_local"] = local_time(record.get(key), zone)
    row["app"] = _obj(record, "app").get("name")
    row["subscriber_id"] = subscriber.get("id")
    row["account"] = subscriber.get("account")
    row["access_line"] = subscriber.get("access_line")
    row["location"] = _location(subscriber)
    row["remote_country"] = remote.get("country")
    row["remote_asn"] = remote.get("asn")
    row["flags"] = "|".join(record.get("flags") or ()) or None
    return row


def media_rows(record: dict, zone: ZoneInfo) -> Iterable[dict]:
    for kind, key in (("rtp", "media"), ("app_flow", "app_flows")):
        for stream in record.get(key) or ():
            if not isinstance(stream, dict):
                continue
            row = {name: stream.get(name) for name, _ in MEDIA}
            row["call_uid"], row["type"] = record.get("uid"), kind
            for moment in ("first_at", "last_at"):
                row[f"{moment}_utc"] = stream.get(moment)
                row[f"{moment}_local"] = local_time(stream.get(moment), zone)
            yield row


def registration_row(record: dict, zone: ZoneInfo) -> dict:
    row = {name: record.get(name) for name, _ in REGISTRATIONS}
    row["requested_at_utc"] = record.get("requested_at")
    row["requested_at_local"] = local_time(record.get("requested_at"), zone)
    row["subscriber_id"] = _obj(record, "subscriber").get("id")
    return row


def subscriber_rows(records: Iterable[dict]) -> list[dict]:
    """One row per subscriber named by any record, in order of subscriber id."""
    seen: dict[str, dict] = {}
    for record in records:
        subscriber = _obj(record, "subscriber")
        if not subscriber.get("id"):
            continue
        moment = record.get("started_at") or record.get("requested_at")
        row = seen.setdefault(
            str(subscriber["id"]),
            {
                "subscriber_id": subscriber["id"],
                "account": subscriber.get("account"),
                "access_line": subscriber.get("access_line"),
                "pop": subscriber.get("pop"),
                "location": _location(subscriber),
                "records": 0,
                "first_at_utc": moment,
                "last_at_utc": moment,
            },
        )
        row["records"] += 1
        if moment:
            row["first_at_utc"] = min(filter(None, (row["first_at_utc"], moment)))
            row["last_at_utc"] = max(filter(None, (row["last_at_utc"], moment)))
    return [seen[key] for key in sorted(seen)]


def write_csv(columns: tuple[tuple[str, str], ...], rows: Iterable[dict]) -> tuple[bytes, int]:
    """The table as UTF-8 CSV (header first, CRLF as RFC 4180 has it) and its row count."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(name for name, _ in columns)
    count = 0
    for row in rows:
        writer.writerow("" if row.get(name) is None else row[name] for name, _ in columns)
        count += 1
    return out.getvalue().encode("utf-8"), count


TABLES: dict[str, tuple[tuple[tuple[str, str], ...], Callable]] = {
    "calls.csv": (CALLS, lambda records, zone: (call_row(r, zone) for r in records if is_call(r))),
    "media.csv": (MEDIA, lambda records, zone: (m for r in records for m in media_rows(r, zone))),
    "registrations.csv": (
        REGISTRATIONS,
        lambda records, zone: (registration_row(r, zone) for r in records if not is_call(r)),
    ),
    "subscribers.csv": (SUBSCRIBERS, lambda records, zone: subscriber_rows(records)),
}
