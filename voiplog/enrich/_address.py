"""Addresses and prefixes as integers, the form the interval indexes search."""

from __future__ import annotations

import ipaddress
import re

_BITS = {4: 32, 6: 128}
hex_groups = re.compile(r"[0-9A-Fa-f:]{2,39}").fullmatch


def parse_address(text: str) -> tuple[int, int]:
    """(version, integer) of an IPv4 or IPv6 address; ValueError when it is not one.

    Dotted quads and plain IPv6 text, the common cases on the hot path, are
    read without the ipaddress module (four times faster); anything else
    (embedded IPv4, zone ids, malformed text) goes to ipaddress, which also
    words the error.
    """
    if text.isascii() and text.replace(".", "").isdigit():
        parts = text.split(".")
        if len(parts) == 4:
            try:
                return 4, int.from_bytes(bytes(map(int, parts)))  # bytes() refuses > 255
            except ValueError:
                pass  # an empty or out-of-range part
    elif hex_groups(text):
        value = ipv6_value(text)
        if value is not None:
            return 6, value
    address = ipaddress.ip_address(text)
    return address.version, int(address)


def ipv6_value(text: str) -> int | None:
    """The integer of IPv6 text made of hex digits and colons only; None when malformed."""
    if "::" in text:
        try:
            head, tail = text.split("::")
        except ValueError:
            return None  # two "::"
        left = head.split(":") if head else []
        right = tail.split(":") if tail else []
        missing = 8 - len(left) - len(right)
        if missing < 1 or "" in left or "" in right:
            return None
        groups = left + ["0"] * missing + right
    else:
        groups = text.split(":")
        if len(groups) != 8 or "" in groups:
            return None
    digits = "".join([group.zfill(4) for group in groups])
    if len(digits) != 32:  # an empty group, or one longer than four digits
        return None
    return int(digits, 16)


def parse_network(text: str) -> tuple[int, int, int]:
    """(version, prefix length, network integer) of an address or a prefix.

    Host bits set in a prefix are refused: ``10.0.0.1/24`` is more likely a
    typing error than a lease of a /24.
    """
    network = ipaddress.ip_network(text.strip(), strict=True)
    return network.version, network.prefixlen, int(network.network_address)


def format_network(version: int, plen: int, value: int) -> str:
    """The text of a network; a single address without its /32 or /128."""
    if version == 4:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(value)
    else:
        address = ipaddress.IPv6Address(value)
    return str(address) if plen == _BITS[version] else f"{address}/{plen}"


def bits(version: int) -> int:
    return _BITS[version]
