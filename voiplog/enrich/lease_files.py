"""Lease history files: CSV (with a header line) or JSON lines, read into `LeaseRow`s.

Each row names the file and line it came from; a row that cannot be used
raises `SourceError` naming both and the reason.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from voiplog.enrich._address import format_network, parse_network
from voiplog.enrich._errors import SourceError
from voiplog.enrich._time import parse_time
from voiplog.enrich.leases import Owner

LEASE_FIELDS = ("network", "subscriber_id", "account", "access_line", "start", "end")
_ALIASES = {"ip": "network", "prefix": "network", "subscriber": "subscriber_id"}


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One lease read from a file, with where it came from."""

    network: tuple[int, int, int]
    start_us: int
    end_us: int | None
    owner: Owner
    source: str
    line: int
    attributes: dict = field(default_factory=dict)

    @property
    def network_text(self) -> str:
        return format_network(*self.network)


def read_lease_rows(lines: Iterable[str], source: str, fmt: str = "csv") -> Iterator[LeaseRow]:
    """Leases of a CSV (with a header line) or JSON-lines file, given as its lines.

    Columns/keys: network (or ip, prefix), subscriber_id, account (optional),
    access_line (optional), start, end (empty or absent: still held). Times are
    ISO 8601 with a UTC offset. Other keys are kept as attributes. Raises
    SourceError naming `source` and the line.
    """
    if fmt == "csv":
        yield from _csv_rows(lines, source)
    elif fmt == "jsonl":
        yield from _jsonl_rows(lines, source)
    else:
        raise ValueError(f"unknown lease file format {fmt!r}")


def _csv_rows(lines: Iterable[str], source: str) -> Iterator[LeaseRow]:
    reader = csv.reader(lines)
    header = None
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if header is None:
            header = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in row]
            missing = {"network", "subscriber_id", "start"} - set(header)
            if missing:
                raise SourceError(source, line, f"header lacks {', '.join(sorted(missing))}")
            continue
        if len(row) != len(header):
            raise SourceError(source, line, f"{len(row)} fields where the header has {len(header)}")
        yield _row(dict(zip(header, row, strict=True)), source, line)
    if header is None:
        raise SourceError(source, 1, "empty file: no header line")


def _jsonl_rows(lines: Iterable[str], source: str) -> Iterator[LeaseRow]:
    for line, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceError(source, line, f"not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise SourceError(source, line, "not a JSON object")
        obj = {_ALIASES.get(k, k): v for k, v in obj.items()}
        for key in ("network", "subscriber_id", "start"):
            if key not in obj:
                raise SourceError(source, line, f"no {key!r}")
        yield _row(obj, source, line)


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _row(fields: dict, source: str, line: int) -> LeaseRow:
    try:
        network = parse_network(str(fields["network"]))
    except ValueError as exc:
        raise SourceError(source, line, f"network: {exc}") from None
    times = []
    for key in ("start", "end"):
        value = _text(fields.get(key))
        if value is None:
            if key == "start":
                raise SourceError(source, line, "start: empty")
            times.append(None)
            continue
        try:
            times.append(parse_time(value))
        except ValueError as exc:
            raise SourceError(source, line, f"{key}: {exc}") from None
    start, end = times
    if end is not None and end <= start:
        raise SourceError(source, line, "end is not after start")
    subscriber = _text(fields.get("subscriber_id"))
    if subscriber is None:
        raise SourceError(source, line, "subscriber_id: empty")
    owner = Owner(subscriber, _text(fields.get("account")), _text(fields.get("access_line")))
    attributes = {k: v for k, v in fields.items() if k not in LEASE_FIELDS and v not in (None, "")}
    return LeaseRow(network, start, end, owner, source, line, attributes)
