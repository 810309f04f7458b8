"""Rendering records to COPY rows: every value survives the trip into Postgres."""

from __future__ import annotations

import pytest

from tests.store._records import call
from voiplog.store._ingest import render, split


def test_a_call_renders_one_cdr_row_and_one_row_per_stream():
    rows = split(render(call("2026-03-01T10:00:00Z").to_dict(), "ams1", "edge-1"))
    assert rows[b"c"].count(b"\n") == 1
    assert rows[b"m"].count(b"\n") == 2
    assert rows[b"c"].rstrip(b"\n").split(b"\t")[-2:] == [b"ams1", b"edge-1"]


def test_special_characters_are_escaped_for_copy():
    doc = call("2026-03-01T10:00:00Z", user_agent="a\tb\\c\nd", flags=('we"ird', "x\\y")).to_dict()
    row = split(render(doc, None, None))[b"c"]
    assert row.count(b"\n") == 1  # the newline inside a value is escaped
    fields = row.rstrip(b"\n").split(b"\t")
    assert b"a\\tb\\\\c\\nd" in fields
    assert fields[-2:] == [b"\\N", b"\\N"]


def test_nul_is_replaced_and_flagged():
    doc = call("2026-03-01T10:00:00Z", caller="12\x003").to_dict()
    row = split(render(doc, None, None))[b"c"]
    assert b"\x00" not in row
    assert "12\u24003".encode() in row
    assert b"nul_replaced" in row


@pytest.mark.parametrize("value", [0, -1, 2**40, 0.1, 1e-7, 123456.000001])
def test_numbers_render_exactly(value):
    doc = call("2026-03-01T10:00:00Z", duration_s=value).to_dict()
    assert f"\t{value!r}\t".encode() in split(render(doc, None, None))[b"c"]
