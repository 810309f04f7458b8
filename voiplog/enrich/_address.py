"""Addresses and prefixes as integers, the form the interval indexes search."""

from __future__ import annotations

import ipaddress

_BITS = {4: 32, 6: 128}
_OCTETS = {str(n): n for n in range(256)}  # exactly the decimal forms an octet may take
_ZEROS = [["0"] * n for n in range(9)]
_PADDED = "%4s" * 8  # eight groups, each right-aligned in four characters


def parse_address(text: str) -> tuple[int, int]:
    """(version, integer) of an IPv4 or IPv6 address; ValueError when it is not one.

    Dotted quads and plain IPv6 text, the common cases on the hot path, are
    read without the ipaddress module (four to eight times faster): an octet is
    looked up among the 256 texts it may be, which also refuses signs, spaces,
    leading zeros and non-ASCII digits. Anything else (embedded IPv4, zone ids,
    malformed text) goes to ipaddress, which also words the error.
    """
    if ":" in text:
        value = ipv6_value(text)
        if value is not None:
            return 6, value
    else:
        try:
            a, b, c, d = text.split(".")
            return 4, _OCTETS[a] << 24 | _OCTETS[b] << 16 | _OCTETS[c] << 8 | _OCTETS[d]
        except (ValueError, KeyError):
            pass  # not four parts, or a part that is not an octet
    address = ipaddress.ip_address(text)
    return address.version, int(address)


def ipv6_value(text: str) -> int | None:
    """The integer of IPv6 text made of hex digits and colons only; None otherwise."""
    if " " in text:
        return None  # padding below turns spaces into zeros
    head, double, tail = text.partition("::")
    if double:
        left = head.split(":") if head else []
        right = tail.split(":") if tail else []
        missing = 8 - len(left) - len(right)
        if missing < 1:
            return None
        groups = left + _ZEROS[missing] + right
    else:
        groups = text.split(":")
    if len(groups) != 8 or "" in groups:
        return None  # a second "::", a leading or trailing ":", too many groups
    digits = (_PADDED % tuple(groups)).replace(" ", "0")
    # 32 characters and no empty group: every group had one to four of them.
    if len(digits) != 32 or not (digits.isascii() and digits.isalnum()):
        return None
    try:
        return int.from_bytes(bytes.fromhex(digits))  # int(digits, 16) would take "0x"
    except ValueError:
        return None  # a letter past f


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
