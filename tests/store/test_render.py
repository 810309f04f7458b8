"""Rendering records to binary COPY rows (their trip into Postgres is in test_writer)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.store._records import call
from voiplog.store._ingest import RenderError, epoch_us, parts, render, split


def test_a_call_renders_one_cdr_row_and_one_row_per_stream_on_its_day():
    record = render(call("2026-03-01T23:59:59Z").to_dict(), "ams1", "edge-1")
    day, cdr, media, registration = parts(record)
    assert day == (dt.date(2026, 3, 1) - dt.date(1970, 1, 1)).days
    assert cdr[:2] == (32).to_bytes(2, "big")  # 29 contract fields, extra, pop, sensor
    assert media[:2] == (16).to_bytes(2, "big") and media.count(b"PCMA") == 1
    assert registration == b""
    streams, days = split([record, record])
    assert days == {day}
    assert streams[b"c"].startswith(b"PGCOPY\n\xff\r\n\x00")
    assert streams[b"c"].endswith(b"\xff\xff")


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
