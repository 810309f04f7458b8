"""The packed form of SDP connection addresses: what `ipaddress` makes of them."""

from __future__ import annotations

import ipaddress

import pytest

from voiplog.calls import _media


def _reference(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


@pytest.mark.parametrize(
    "text",
    [
        "192.0.2.1",
        "0.0.0.0",
        "255.255.255.255",
        "01.2.3.4",  # leading zeros: refused by both
        "1.2.3.04",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        " 1.2.3.4",
        "1.2.3.4\n",
        "1.2.3.4\x00",
        "1.2.3.0x1",
        "\u0661.2.3.4",  # an Arabic-Indic digit
        "\udcff.1.1.1",
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "fe80::1%eth0",
        "media.example.com",
        "",
    ],
)
def test_packed_address_is_ipaddress(text):
    _media._ADDRESS_CACHE.clear()
    assert _media._packed_address(text) == _reference(text)
    assert _media._packed_address(text) == _reference(text)  # from the cache
