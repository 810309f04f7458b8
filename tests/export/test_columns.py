"""The CSV tables read back to what the records hold at each documented column."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiplog.export import bundle, columns

ZONE = ZoneInfo("Asia/Kolkata")


def value_at(obj, path):
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def assert_shows_the_record(record: dict, part: dict) -> None:
    """Every documented column holds the record's own value, and nothing else is made up."""
    tables = ((columns.CALLS, record, part),) if columns.is_call(record) else ((columns.REGISTRATIONS, record, part),)  # fmt: skip
    if columns.is_call(record):
        for _kind, key in columns.STREAM_LISTS.items():
            streams = [s for s in record.get(key) or () if isinstance(s, dict)]
            assert len(part.get(key, [])) == len(streams)
            tables += tuple((columns.MEDIA, s, p) for s, p in zip(streams, part.get(key, []), strict=True))  # fmt: skip
    for table, source, shown in tables:
        for column in table:
            if not column.path or column.type == "local":
                continue
            expected = value_at(source, column.path)
            if expected in ("", [], {}):
                expected = None
            got = value_at(shown, column.path)
            if column.type == "list" and expected is not None:
                expected = [str(item) for item in expected]
            assert got == expected, (column.name, got, expected)


@pytest.mark.postgres
def test_the_tables_of_a_real_export_read_back_to_its_records(exported):
    _, out, _ = exported
    files = bundle.read(out)
    records = [json.loads(line) for line in files["records.jsonl"].decode().splitlines()]
    zone = ZoneInfo(json.loads(files["manifest.json"])["export"]["local_zone"])
    found = columns.records_from_tables(files, zone)
    assert set(found) == {r["uid"] for r in records}
    for record in records:
        assert found[record["uid"]] == columns.shown(record)
        assert_shows_the_record(record, found[record["uid"]])
    # subscribers.csv: each subscriber object once, with its records counted.
    rows = columns.read_csv("subscribers.csv", columns.SUBSCRIBERS, files["subscribers.csv"], zone)
    for row in rows:
        named = [
            r for r in records if (r.get("subscriber") or {}).get("id") == row["subscriber_id"]
        ]
        assert row["records"] == len(named)
        assert row["location"] == named[0]["subscriber"].get("location")
        moments = [r.get("started_at") or r.get("requested_at") for r in named]
        assert (row["first_at_utc"], row["last_at_utc"]) == (min(moments), max(moments))


def test_a_changed_local_time_or_header_is_caught():
    record = {"uid": "u1", "kind": "sip", "started_at": "2026-03-01T10:00:00.000000Z", "caller": "+4930111"}  # fmt: skip
    data, _ = columns.write_csv(columns.CALLS, [columns.call_row(record, ZONE)])
    assert columns.read_csv("calls.csv", columns.CALLS, data, ZONE)[0]["caller"] == "+4930111"
    with pytest.raises(columns.TableError, match="started_at_local is not started_at_utc"):
        columns.read_csv("calls.csv", columns.CALLS, data.replace(b"15:30", b"15:31"), ZONE)
    with pytest.raises(columns.TableError, match="header"):
        columns.read_csv("calls.csv", columns.CALLS, data.replace(b"caller,", b"from,", 1), ZONE)


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
moments = st.datetimes(
    min_value=__import__("datetime").datetime(2000, 1, 1),
    max_value=__import__("datetime").datetime(2099, 1, 1),
).map(lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
ports = st.integers(0, 65535)
stream = st.fixed_dictionaries(
    {},
    optional={
        "src_ip": text, "src_port": ports, "dst_ip": text, "dst_port": ports, "first_at": moments,
        "last_at": moments, "ssrc": st.integers(0, 2**32 - 1), "codec": text,
        "packets": st.integers(0, 10**9), "lost": st.integers(-(10**6), 10**6),
        "packets_out": st.integers(0, 10**9), "bytes_in": st.integers(0, 10**12), "path": text,
    },
)  # fmt: skip
call = st.fixed_dictionaries(
    {"uid": st.uuids().map(str), "kind": st.sampled_from(["sip", "media", "encrypted"])},
    optional={
        "call_id": text, "caller": text, "callee": text, "caller_ip": text, "caller_port": ports,
        "started_at": moments, "answered_at": moments, "ended_at": moments,
        "duration_s": st.floats(0, 1e6, allow_nan=False), "final_status": st.integers(100, 699),
        "flags": st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), max_size=4),
        "app": st.fixed_dictionaries({"name": text}),
        "subscriber": st.fixed_dictionaries({"id": text}, optional={"location": st.dictionaries(text, text | st.integers(), max_size=3)}),
        "remote": st.fixed_dictionaries({}, optional={"country": text, "asn": st.integers(1, 2**32 - 1)}),
        "media": st.lists(stream, max_size=3), "app_flows": st.lists(stream, max_size=2),
    },
)  # fmt: skip
registration = st.fixed_dictionaries(
    {"uid": st.uuids().map(str), "kind": st.just("registration")},
    optional={
        "requested_at": moments,
        "aor": text,
        "contact_port": ports,
        "status": st.integers(100, 699),
        "user_agent": text,
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(call | registration, max_size=6, unique_by=lambda r: r["uid"]))
def test_any_records_round_trip_through_the_tables(records):
    files = {name: columns.write_csv(table, rows(records, ZONE))[0] for name, (table, rows) in columns.TABLES.items()}  # fmt: skip
    found = columns.records_from_tables(files, ZONE)
    assert found == {r["uid"]: columns.shown(r) for r in records}
    for record in records:
        assert_shows_the_record(record, found[record["uid"]])


def test_the_readme_documents_every_column_as_defined():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Evidence export", 1)[1]
    for name, (table, _) in columns.TABLES.items():
        block = section.split(f"`{name}`:\n", 1)[1].split("\n\n", 1)[0]
        documented = [line.strip()[1:-1].split(" | ", 1) for line in block.strip().splitlines()[2:]]
        assert [(c.strip().strip("`"), m.strip()) for c, m in documented] == [(c.name, c.meaning) for c in table], name  # fmt: skip
