"""DTLS records (RFC 6347, 9147 plaintext header) and the DTLS-SRTP handshake.

Strategy: a UDP datagram whose first byte is 20-63 (RFC 7983) may hold DTLS
records. Each record header (content type 20-25, version 0xFEFF/0xFEFD/0xFEFC,
epoch, 48-bit sequence number, length) must fit the datagram, and the records
must add up to it exactly. Handshake records of epoch 0 are plaintext: their
ClientHello or ServerHello, when not fragmented, is read for use_srtp, which
marks the keying of SRTP media (WebRTC and other DTLS-SRTP users). Anything
else raises `DtlsParseError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from voiplog._frozen import fast_frozen_init
from voiplog.flows._errors import DtlsParseError
from voiplog.flows._tls import (
    CONTENT_HANDSHAKE,
    HANDSHAKE_CLIENT_HELLO,
    HANDSHAKE_SERVER_HELLO,
    Hello,
    parse_hello,
)

_RECORD = struct.Struct(">BHH6sH")  # type, version, epoch, sequence number, length
_HANDSHAKE = struct.Struct(">B3sH3s3s")  # type, length, message seq, fragment offset, length
_VERSIONS = frozenset({0xFEFF, 0xFEFD, 0xFEFC})


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class DtlsDatagram:
    """The records of one datagram: their content types, and a hello if one was readable."""

    content_types: tuple[int, ...]
    hello: Hello | None = None


def looks_like_dtls(payload: bytes) -> bool:
    """True if ``payload`` starts with a DTLS record header that fits it."""
    return (
        len(payload) >= 13
        and 20 <= payload[0] <= 25
        and (payload[1] << 8 | payload[2]) in _VERSIONS
        and 13 + (payload[11] << 8 | payload[12]) <= len(payload)
    )


def parse_dtls(payload: bytes) -> DtlsDatagram:
    """Read every DTLS record of one UDP payload; raise `DtlsParseError` if it is not DTLS."""
    offset = 0
    size = len(payload)
    types = []
    hello = None
    if size < 13:
        raise DtlsParseError(f"{size} bytes, shorter than a DTLS record header", "dtls.short")
    while offset < size:
        if offset + 13 > size:
            raise DtlsParseError("record header cut short", "dtls.short")
        content_type, version, epoch, _seq, length = _RECORD.unpack_from(payload, offset)
        if not 20 <= content_type <= 25:
            raise DtlsParseError(f"content type {content_type}", "dtls.bad_content_type")
        if version not in _VERSIONS:
            raise DtlsParseError(f"version 0x{version:04x}", "dtls.bad_version")
        end = offset + 13 + length
        if end > size:
            raise DtlsParseError(f"record length {length} runs past the datagram", "dtls.short")
        types.append(content_type)
        if content_type == CONTENT_HANDSHAKE and epoch == 0 and hello is None:
            hello = _hello(payload[offset + 13 : end])
        offset = end
    return DtlsDatagram(tuple(types), hello)


def _hello(record: bytes) -> Hello | None:
    if len(record) < 12:
        raise DtlsParseError("handshake header cut short", "dtls.short")
    msg_type, length, _msg_seq, frag_offset, frag_length = _HANDSHAKE.unpack_from(record)
    if msg_type not in (HANDSHAKE_CLIENT_HELLO, HANDSHAKE_SERVER_HELLO):
        return None
    total = int.from_bytes(length, "big")
    if int.from_bytes(frag_offset, "big") or int.from_bytes(frag_length, "big") != total:
        return None  # a fragment of a large hello: not read
    body = record[12 : 12 + total]
    if len(body) != total:
        raise DtlsParseError("hello cut short", "dtls.short")
    return parse_hello(msg_type, body, dtls=True, error=DtlsParseError)
