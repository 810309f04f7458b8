"""Values read out of single header values: credentials, expiry, charging and session ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiplog.sip import charging_icid, credentials_username, delta_seconds, session_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3600", 3600),
        (" 0 ", 0),
        ('"120"', 120),
        ("4294967295", 4294967295),
        ("4294967296", None),
        ("00000000000060", 60),
        ("-1", None),
        ("1h", None),
        ("", None),
        (None, None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_delta_seconds(value, expected):
    assert delta_seconds(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('Digest username="alice", realm="example.com", nonce="x"', "alice"),
        ('Digest realm="a,b", USERNAME="bob"', "bob"),
        ('Digest username="with \\"quote\\""', 'with "quote"'),
        ('Digest username=""', None),
        ("Digest", None),
        ("", None),
        (None, None),
    ],
)
def test_credentials_username(value, expected):
    assert credentials_username(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("icid-value=1234bc9876e;icid-generated-at=192.0.6.8;orig-ioi=home1.net", "1234bc9876e"),
        ('orig-ioi=a; icid-value="AyretyU0dm+6O2IrT5tAFrbHLso="', "AyretyU0dm+6O2IrT5tAFrbHLso="),
        ("icid-generated-at=192.0.6.8", None),
        ("icid-value=", None),
        (None, None),
    ],
)
def test_charging_icid(value, expected):
    assert charging_icid(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2",
            ("ab30317f1a784dc48ff824d0d3715d86", "47755a9de7794ba387653f2099600ef2"),
        ),
        (
            "AB30317F1A784DC48FF824D0D3715D86 ; remote=00000000000000000000000000000000",
            ("ab30317f1a784dc48ff824d0d3715d86", None),
        ),
        ("ab30317f1a784dc48ff824d0d3715d86", ("ab30317f1a784dc48ff824d0d3715d86", None)),
        ("not-a-uuid", None),
        ("", None),
        (None, None),
    ],
)
def test_session_id(value, expected):
    assert session_id(value) == expected


@given(st.text(max_size=200))
def test_header_readers_never_raise(text):
    delta_seconds(text)
    credentials_username(text)
    charging_icid(text)
    session_id(text)
