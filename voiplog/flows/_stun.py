"""STUN (RFC 8489) and TURN (RFC 8656) messages, read for flow metadata.

Strategy: a STUN message is recognised by what every one carries (two zero
top bits, a length that is a multiple of 4 and fits the datagram exactly, the
magic cookie 0x2112A442), then its attributes are walked as type-length-value
records padded to 4 bytes. Only the attributes that say something about the
session are decoded: XOR-MAPPED-ADDRESS, XOR-RELAYED-ADDRESS, XOR-PEER-ADDRESS,
CHANNEL-NUMBER, SOFTWARE, DATA and the ICE attributes (RFC 8445) that mark a
WebRTC or other ICE agent's connectivity check. A TURN ChannelData message
(first two bits 01, channel 0x4000-0x4FFF, a length that fits) and the DATA
attribute of a Send or Data indication (RFC 8656 sections 10-11) wrap a relayed
datagram, which the caller classifies again. Anything else raises `StunParseError`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import Enum

from voiplog._frozen import fast_frozen_init
from voiplog.flows._errors import StunParseError

MAGIC_COOKIE = 0x2112A442
_HEADER = struct.Struct(">HHI12s")
_ATTR = struct.Struct(">HH")
_COOKIE_BYTES = MAGIC_COOKIE.to_bytes(4, "big")

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_USERNAME = 0x0006
ATTR_CHANNEL_NUMBER = 0x000C
ATTR_XOR_PEER_ADDRESS = 0x0012
ATTR_DATA = 0x0013
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_PRIORITY = 0x0024
ATTR_USE_CANDIDATE = 0x0025
ATTR_SOFTWARE = 0x8022
ATTR_ICE_CONTROLLED = 0x8029
ATTR_ICE_CONTROLLING = 0x802A
_ICE_ATTRIBUTES = frozenset(
    {ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING}
)

METHOD_BINDING = 0x001
METHOD_ALLOCATE = 0x003
METHOD_REFRESH = 0x004
METHOD_SEND = 0x006
METHOD_DATA = 0x007
METHOD_CREATE_PERMISSION = 0x008
METHOD_CHANNEL_BIND = 0x009
TURN_METHODS = frozenset(
    {
        METHOD_ALLOCATE,
        METHOD_REFRESH,
        METHOD_SEND,
        METHOD_DATA,
        METHOD_CREATE_PERMISSION,
        METHOD_CHANNEL_BIND,
    }
)


class StunClass(Enum):
    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class StunMessage:
    """What a STUN/TURN message says about its session (no credentials kept)."""

    method: int
    message_class: StunClass
    transaction_id: bytes
    software: str | None = None
    mapped_address: tuple[str, int] | None = None  # XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS)
    relayed_address: tuple[str, int] | None = None  # XOR-RELAYED-ADDRESS
    peer_address: tuple[str, int] | None = None  # XOR-PEER-ADDRESS (the first one)
    channel: int | None = None  # CHANNEL-NUMBER
    data: bytes | None = None  # DATA: the datagram a Send or Data indication relays
    ice: bool = False  # carries PRIORITY, USE-CANDIDATE or ICE-CONTROLLED/-CONTROLLING


def looks_like_stun(payload: bytes) -> bool:
    """True if ``payload`` has a STUN header whose length fits it exactly."""
    size = len(payload)
    return (
        size >= 20
        and payload[0] < 0x40
        and payload[4:8] == _COOKIE_BYTES
        and (payload[2] << 8 | payload[3]) + 20 == size
        and not payload[3] & 3
    )


def _address(value: bytes, xor: bool, transaction_id: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise StunParseError("address attribute shorter than 4 bytes", "stun.bad_address")
    family = value[1]
    port = value[2] << 8 | value[3]
    if family == 1:
        if len(value) != 8:
            raise StunParseError("IPv4 address attribute is not 8 bytes", "stun.bad_address")
        raw = value[4:8]
        if xor:
            raw = bytes(a ^ b for a, b in zip(raw, _COOKIE_BYTES, strict=True))
    elif family == 2:
        if len(value) != 20:
            raise StunParseError("IPv6 address attribute is not 20 bytes", "stun.bad_address")
        raw = value[4:20]
        if xor:
            mask = _COOKIE_BYTES + transaction_id
            raw = bytes(a ^ b for a, b in zip(raw, mask, strict=True))
    else:
        raise StunParseError(f"unknown address family {family}", "stun.bad_address")
    if xor:
        port ^= MAGIC_COOKIE >> 16
    return str(ipaddress.ip_address(raw)), port


def parse_stun(payload: bytes) -> StunMessage:
    """Read one STUN message (a whole UDP payload); raise `StunParseError` if it is not one."""
    if len(payload) < 20:
        raise StunParseError(f"{len(payload)} bytes, shorter than a STUN header", "stun.short")
    message_type, length, cookie, transaction_id = _HEADER.unpack_from(payload)
    if message_type & 0xC000:
        raise StunParseError("top bits of the message type are not zero", "stun.bad_type")
    if cookie != MAGIC_COOKIE:
        raise StunParseError("no STUN magic cookie", "stun.no_cookie")
    if length % 4 or length + 20 != len(payload):
        raise StunParseError(
            f"length {length} does not fit a {len(payload)}-byte datagram", "stun.bad_length"
        )
    method = (message_type & 0x000F) | (message_type & 0x00E0) >> 1 | (message_type & 0x3E00) >> 2
    message_class = StunClass((message_type >> 4 & 1) | (message_type >> 7 & 2))
    fields: dict = {}
    ice = False
    offset = 20
    end = len(payload)
    while offset < end:
        if offset + 4 > end:
            raise StunParseError("attribute header cut short", "stun.bad_attribute")
        attr_type, attr_len = _ATTR.unpack_from(payload, offset)
        value_end = offset + 4 + attr_len
        if value_end > end:
            raise StunParseError(
                f"attribute 0x{attr_type:04x} runs past the message", "stun.bad_attribute"
            )
        value = payload[offset + 4 : value_end]
        if attr_type == ATTR_XOR_MAPPED_ADDRESS:
            fields["mapped_address"] = _address(value, True, transaction_id)
        elif attr_type == ATTR_MAPPED_ADDRESS and "mapped_address" not in fields:
            fields["mapped_address"] = _address(value, False, transaction_id)
        elif attr_type == ATTR_XOR_RELAYED_ADDRESS:
            fields["relayed_address"] = _address(value, True, transaction_id)
        elif attr_type == ATTR_XOR_PEER_ADDRESS and "peer_address" not in fields:
            fields["peer_address"] = _address(value, True, transaction_id)
        elif attr_type == ATTR_CHANNEL_NUMBER:
            if attr_len != 4:
                raise StunParseError("CHANNEL-NUMBER is not 4 bytes", "stun.bad_attribute")
            fields["channel"] = value[0] << 8 | value[1]
        elif attr_type == ATTR_DATA:
            fields["data"] = value
        elif attr_type == ATTR_SOFTWARE:
            fields["software"] = value[:128].decode("utf-8", "replace")
        elif attr_type in _ICE_ATTRIBUTES:
            ice = True
        offset = value_end + (-attr_len % 4)
    if offset != end:
        raise StunParseError("attribute padding runs past the message", "stun.bad_attribute")
    return StunMessage(method, message_class, transaction_id, ice=ice, **fields)


def looks_like_channel_data(payload: bytes) -> bool:
    """True if ``payload`` has a TURN ChannelData header whose length fits it."""
    size = len(payload)
    if size < 4 or payload[0] >> 6 != 1 or payload[0] >= 0x50:
        return False
    # Over UDP the padding to 4 bytes is allowed but not required (RFC 8656 12.5).
    spare = size - 4 - (payload[2] << 8 | payload[3])
    return 0 <= spare < 4


def parse_channel_data(payload: bytes) -> tuple[int, bytes]:
    """``(channel number, relayed datagram)`` of a TURN ChannelData message."""
    if len(payload) < 4:
        raise StunParseError("ChannelData shorter than its header", "turn.short")
    channel = payload[0] << 8 | payload[1]
    if not 0x4000 <= channel <= 0x4FFF:
        raise StunParseError(f"channel 0x{channel:04x} outside 0x4000-0x4FFF", "turn.bad_channel")
    length = payload[2] << 8 | payload[3]
    if not 0 <= len(payload) - 4 - length < 4:
        raise StunParseError(
            f"ChannelData length {length} does not fit {len(payload)} bytes", "turn.bad_length"
        )
    return channel, payload[4 : 4 + length]
