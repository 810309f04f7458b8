"""Rendering records to binary COPY rows (their trip into Postgres is in test_writer)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.store._records import call
from voiplog.store._ingest import Batch, RenderError, _raw_fields, epoch_us, parts, render, split
from voiplog.store.spool_files import iter_entries


def test_a_call_renders_one_cdr_row_with_its_streams_on_its_day():
    record = render(call("2026-03-01T23:59:59Z").to_dict(), "ams1", "edge-1")
    day, cdr, media, registration = parts(record)
    assert day == (dt.date(2026, 3, 1) - dt.date(1970, 1, 1)).days
    assert cdr[:2] == (33).to_bytes(2, "big")  # 29 contract fields, extra, pop, sensor, media
    # One dimension, no NULLs, element type left 0 until the database names it, 2 streams.
    assert media[4:20] == bytes.fromhex("00000001 00000000 00000000 00000002")
    assert media.count(b"PCMA") == 1
    assert registration == b""
    streams, days = split([record, record], 0x12345)
    assert days == {day}
    assert streams[b"c"].startswith(b"PGCOPY\n\xff\r\n\x00")
    assert streams[b"c"].endswith(b"\xff\xff")
    assert streams[b"c"].count(media[:12] + (0x12345).to_bytes(4, "big") + media[16:]) == 2
    assert set(streams) == {b"c"}


def test_a_call_without_media_has_an_empty_array():
    _, _, media, _ = parts(render(call("2026-03-01T10:00:00Z", media=False).to_dict(), None, None))
    assert media == bytes.fromhex("0000000c 00000000 00000000 00000000")


def _extra(record: bytes):
    """The extra column of a rendered cdr row (None when NULL)."""
    _, row, _, _ = parts(record)
    fields, _ = _raw_fields((32).to_bytes(2, "big") + row[2:], 0)  # the fields before media
    extra = fields[29]
    return None if extra == b"\xff\xff\xff\xff" else orjson.loads(extra[5:])


def test_enrichment_of_the_contract_shape_is_typed_only():
    remote = {"country": "DE", "asn": 3320, "org": "Telekom"}
    record = render(call("2026-03-01T10:00:00Z", remote=remote).to_dict(), None, None)
    assert _extra(record) is None  # no keys beyond the contract: extra is NULL
    assert b"Telekom" in record and b"hall" in record


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subscriber", {"id": 42, "account": None, "access_line": None, "pop": None, "location": None}),
        ("subscriber", {"id": "s", "account": None, "access_line": None, "pop": None, "location": None, "vlan": 7}),
        ("subscriber", {"id": "s"}),
        ("subscriber", "sub-1"),
        ("remote", {"country": "DE", "asn": "AS3320", "org": None}),
        ("remote", {"country": "DE", "asn": 1 << 63, "org": None}),
    ],
)  # fmt: skip
def test_enrichment_of_another_shape_is_also_kept_whole(key, value):
    record = render(call("2026-03-01T10:00:00Z").to_dict() | {key: value}, None, None)
    assert _extra(record) == {key: value}


def test_streams_with_keys_beyond_the_contract_are_kept_whole():
    doc = call("2026-03-01T10:00:00Z").to_dict()
    doc["media"][1]["mos"] = 4.1
    assert _extra(render(doc, None, None)) == {"media": doc["media"]}


def test_spool_entries_of_the_first_layout_drain_as_the_records_they_were():
    # Written by the layout with media as cdr_media rows and enrichment as JSON.
    data = Path(__file__).parent / "data"
    old = list(iter_entries((data / "spool-v1-calls.entries").read_bytes()))
    docs = [
        orjson.loads(line) for line in (data / "spool-v1-calls.jsonl").read_bytes().splitlines()
    ]
    assert [parts(r)[1][:2] for r in old] == [(32).to_bytes(2, "big")] * 2
    assert split(old, 777) == split([render(doc, "ams1", "edge-1") for doc in docs], 777)


def test_nul_is_replaced_and_flagged():
    record = render(call("2026-03-01T10:00:00Z", caller="12\x003").to_dict(), None, None)
    assert b"\x00" + b"3" not in record.split(b"12", 1)[1][:2]
    assert "12\u24003".encode() in record
    assert b"nul_replaced" in record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"caller_ip": "not-an-address"}, "caller_ip: 'not-an-address' is not an IP address"),
        ({"caller_port": 1 << 40}, "caller_port: 1099511627776 does not fit"),
        ({"ended_at": "yesterday"}, "ended_at: time 'yesterday' is not"),
        ({"started_at": None}, "no start time"),
        ({"media": [{"src_ip": "10.0.0.1"}]}, r"media\[0\]: no src_port, dst_ip"),
        ({"media": "audio"}, "media: 'audio' is not a list of streams"),
        ({"sip_reason": 1 << 70}, "not JSON"),
    ],
)
def test_values_a_column_cannot_take_are_named(change, message):
    doc = call("2026-03-01T10:00:00Z").to_dict() | change
    with pytest.raises(RenderError, match=message):
        render(doc, None, None)


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)))
def test_times_convert_exactly(moment):
    moment = moment.replace(tzinfo=dt.UTC)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}Z"
    expected = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert epoch_us(text) == expected


def test_a_batch_gathered_while_spooling_gives_the_streams_split_gives():
    from tests.store._records import registration

    docs = [call("2026-03-01T10:00:00Z", n, media=n % 3 != 0).to_dict() for n in range(6)]
    docs.insert(2, registration("2026-03-02T08:00:00Z"))
    for oid_then in (0, 4242):  # unknown when spooled, or known
        records = [render(doc, "ams1", "edge-1", oid_then) for doc in docs]
        batch = Batch()
        for record in records:
            batch.add(record)
        assert batch.count == 7
        assert batch.streams(4242) == split(records, 4242)
        assert batch.streams(9999) == split(records, 9999)  # the database was replaced
