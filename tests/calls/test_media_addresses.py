"""The packed form of SDP connection addresses: what `ipaddress` makes of them."""

from __future__ import annotations

import ipaddress
import random

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


def test_random_dotted_text_is_read_as_ipaddress_reads_it():
    rng = random.Random(4566)
    octets = ["0", "1", "9", "10", "99", "100", "199", "200", "255", "256", "999", "00", "01"]
    odd = ["", "x", " ", "+1", "1000", "\u0661", "0x1", ":"]
    accepted = 0
    for _ in range(20_000):
        parts = [rng.choice(octets) for _ in range(rng.choice([3, 4, 4, 4, 5]))]
        if rng.random() < 0.2:
            parts[rng.randrange(len(parts))] = rng.choice(odd)
        text = ".".join(parts)
        _media._ADDRESS_CACHE.clear()
        packed = _media._packed_address(text)
        assert packed == _reference(text), text
        accepted += packed is not None
    assert accepted > 1_000, accepted
