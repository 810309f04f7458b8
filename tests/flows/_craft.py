"""Building the packets of media and encrypted VoIP flows for the tests, byte by byte.

STUN/TURN (RFC 8489/8656), DTLS and TLS hellos (RFC 6347, 5246, 5764, 6066,
7301), RTP/RTCP/SRTCP (RFC 3550, 3711), and Ethernet/IPv4 frames around them
built with `struct` (scapy is too slow for the captures of thousands of
packets some tests need; checksums are left zero, which voiplog does not check).
"""

from __future__ import annotations

import ipaddress
import struct

from tests.rtp._packets import rtcp, rtp, sdes, sender_report

__all__ = [
    "MAGIC",
    "channel_data",
    "dtls_client_hello",
    "dtls_record",
    "dtls_server_hello",
    "rtcp",
    "rtp",
    "sdes",
    "sender_report",
    "srtcp",
    "stun",
    "tcp_frame",
    "tls_client_hello",
    "udp_frame",
    "xor_address",
]

MAGIC = 0x2112A442
_ETHER = bytes.fromhex("020000000002020000000001")


def _ip4(src: str, dst: str, proto: int, body: bytes) -> bytes:
    header = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(body),
        0,
        0,
        64,
        proto,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return _ETHER + b"\x08\x00" + header + body


def udp_frame(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """An Ethernet/IPv4/UDP frame."""
    return _ip4(src, dst, 17, struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload)


def tcp_frame(
    src: str, sport: int, dst: str, dport: int, payload: bytes, seq: int = 1, flags: int = 0x18
) -> bytes:
    """An Ethernet/IPv4/TCP frame (PSH+ACK by default)."""
    header = struct.pack(">HHIIBBHHH", sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0)
    return _ip4(src, dst, 6, header + payload)


# -- STUN / TURN -----------------------------------------------------------------


def xor_address(ip: str, port: int, transaction_id: bytes = bytes(12)) -> bytes:
    """The value of an XOR-MAPPED/-PEER/-RELAYED-ADDRESS attribute."""
    packed = ipaddress.ip_address(ip).packed
    mask = MAGIC.to_bytes(4, "big") + (transaction_id if len(packed) == 16 else b"")
    family = 1 if len(packed) == 4 else 2
    xored = bytes(a ^ b for a, b in zip(packed, mask, strict=False))
    return struct.pack(">BBH", 0, family, port ^ (MAGIC >> 16)) + xored


def stun(
    method: int,
    klass: int,
    attributes: list[tuple[int, bytes]] = (),
    transaction_id: bytes = b"\x01" * 12,
) -> bytes:
    """A STUN message: method and class (0 request, 1 indication, 2 success, 3 error)."""
    body = b""
    for attr_type, value in attributes:
        body += struct.pack(">HH", attr_type, len(value)) + value + bytes(-len(value) % 4)
    message_type = (
        (method & 0x000F)
        | (method & 0x0070) << 1
        | (method & 0x0F80) << 2
        | (klass & 1) << 4
        | (klass & 2) << 7
    )
    return struct.pack(">HHI", message_type, len(body), MAGIC) + transaction_id + body


def channel_data(channel: int, data: bytes, pad: bool = False) -> bytes:
    """A TURN ChannelData message, padded to 4 bytes when ``pad``."""
    return struct.pack(">HH", channel, len(data)) + data + (bytes(-len(data) % 4) if pad else b"")


# -- TLS / DTLS ------------------------------------------------------------------


def _vector(length_bytes: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_bytes, "big") + data


def _extensions(
    server_name: str | None, alpn: tuple[str, ...], srtp: tuple[int, ...] | None
) -> bytes:
    out = b""
    if server_name is not None:
        entry = b"\x00" + _vector(2, server_name.encode())
        out += struct.pack(">H", 0) + _vector(2, _vector(2, entry))
    if alpn:
        protocols = b"".join(_vector(1, p.encode()) for p in alpn)
        out += struct.pack(">H", 16) + _vector(2, _vector(2, protocols))
    if srtp is not None:
        profiles = b"".join(struct.pack(">H", p) for p in srtp)
        out += struct.pack(">H", 14) + _vector(2, _vector(2, profiles) + b"\x00")
    out += struct.pack(">H", 10) + _vector(2, _vector(2, b"\x00\x1d"))  # supported_groups
    return _vector(2, out)


def _client_hello_body(dtls, server_name, alpn, srtp) -> bytes:
    version = b"\xfe\xfd" if dtls else b"\x03\x03"
    body = version + bytes(range(32)) + _vector(1, b"")
    if dtls:
        body += _vector(1, b"")  # cookie
    body += _vector(2, b"\xc0\x2b\xc0\x2f") + _vector(1, b"\x00")
    return body + _extensions(server_name, alpn, srtp)


def tls_client_hello(server_name: str | None = None, alpn: tuple[str, ...] = ()) -> bytes:
    """A TLS 1.2 record holding a ClientHello."""
    body = _client_hello_body(False, server_name, alpn, None)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + _vector(2, handshake)


def dtls_record(content_type: int, fragment: bytes, epoch: int = 0, seq: int = 0) -> bytes:
    return (
        struct.pack(">BHH", content_type, 0xFEFD, epoch)
        + seq.to_bytes(6, "big")
        + _vector(2, fragment)
    )


def _dtls_handshake(msg_type: int, body: bytes, message_seq: int = 0) -> bytes:
    length = len(body).to_bytes(3, "big")
    return bytes([msg_type]) + length + struct.pack(">H", message_seq) + bytes(3) + length + body


def dtls_client_hello(srtp: tuple[int, ...] | None = (0x0001, 0x0007)) -> bytes:
    """A DTLS 1.2 datagram holding a ClientHello offering use_srtp ``srtp``."""
    return dtls_record(22, _dtls_handshake(1, _client_hello_body(True, None, (), srtp)))


def dtls_server_hello(srtp: tuple[int, ...] | None = (0x0007,)) -> bytes:
    """A DTLS 1.2 datagram holding a ServerHello choosing use_srtp ``srtp``."""
    body = b"\xfe\xfd" + bytes(32) + _vector(1, b"") + b"\xc0\x2b\x00"
    body += _extensions(None, (), srtp)
    return dtls_record(22, _dtls_handshake(2, body, 0), seq=1)


# -- SRTCP -----------------------------------------------------------------------


def srtcp(ssrc: int, index: int, encrypted_len: int = 44, tag_len: int = 10) -> bytes:
    """An SRTCP packet: clear SR header and SSRC, ciphertext, E+index, tag (RFC 3711 3.4)."""
    header = struct.pack(">BBHI", 0x80, 200, 6, ssrc)  # an SR with no report blocks
    ciphertext = bytes((i * 37 + 11) & 0xFF for i in range(encrypted_len))
    return header + ciphertext + struct.pack(">I", 0x80000000 | index) + bytes(tag_len)
