"""The fast address parser agrees with the ipaddress module, and refuses what it refuses."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiplog.enrich._address import format_network, parse_address, parse_network


@given(st.integers(0, 2**32 - 1))
def test_ipv4(value):
    assert parse_address(str(ipaddress.IPv4Address(value))) == (4, value)


@given(st.integers(0, 2**128 - 1), st.sampled_from(["compressed", "exploded", "upper"]))
def test_ipv6(value, form):
    address = ipaddress.IPv6Address(value)
    text = str(address).upper() if form == "upper" else getattr(address, form)
    assert parse_address(text) == (6, value)


@pytest.mark.parametrize("text", ["::ffff:1.2.3.4", "fe80::1%eth0", "::", "::1", "1::"])
def test_forms_left_to_ipaddress(text):
    address = ipaddress.ip_address(text)
    assert parse_address(text) == (address.version, int(address))


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.256", "1.2.3", "1..2.3", "1.2.3.4 ", "", "x", "\u0661.2.3.4",
        "2001:db8::1::2", "1:2:3:4:5:6:7:8:9", "12345::", "1:2:3:4:5:6:7::8", ":::",
        "1:2:3:4:5:6:7:", ":1:2:3:4:5:6:7", "1::2:", ":1::2", "0x12::1", "1:2:3:4:5:6:7:0x1",
        "01.2.3.4", "1.2.3.+4", "1.2.3.4\n", "1_0::1", "+1::", "1:: 2", "1::2\t", "::g",
        "1:2:3:4:5:6:7:12345", "12345:2:3:4:5:6::", "\uff11::",
    ],
)  # fmt: skip
def test_malformed_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_networks():
    assert parse_network("2001:db8:1200::/56") == (
        6,
        56,
        int(ipaddress.ip_address("2001:db8:1200::")),
    )
    assert (
        format_network(6, 56, int(ipaddress.ip_address("2001:db8:1200::"))) == "2001:db8:1200::/56"
    )
    assert format_network(4, 32, 1) == "0.0.0.1"
    with pytest.raises(ValueError):
        parse_network("10.0.0.1/24")


_ADDRESS_ALPHABET = "0123456789abcdefABCDEFx.:_+ %\t\u0661"


@given(st.text(_ADDRESS_ALPHABET, max_size=45))
def test_any_text_parses_as_ipaddress_does(text):
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        with pytest.raises(ValueError):
            parse_address(text)
    else:
        assert parse_address(text) == (address.version, int(address))
