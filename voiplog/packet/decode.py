"""Link, network and transport decoding: one captured frame in, one 5-tuple and payload out.

Strategy: `decode` is the per-packet hot path. It walks the link layer (Ethernet with
any number of VLAN tags, Linux cooked SLL/SLL2, raw IP, BSD loopback, PPP, PPPoE,
MPLS), IPv4 or IPv6 (with extension headers), and UDP or TCP, and returns one
`Datagram`, a named tuple ``(proto, src_ip, src_port, dst_ip, dst_port, payload)``
(`voiplog.packet.datagram`). Addresses stay packed
bytes; `format_ip` turns them into text only when a record needs it. Tunnels that
carry subscriber traffic past the sensor (IP-in-IP, GRE, ERSPAN, VXLAN) are opened and
the inner packet is returned.

Three outcomes, kept apart on purpose:

* a `Datagram`: an IP datagram carrying UDP, TCP or SCTP;
* ``None``: a well-formed frame that is simply not for us (ARP, ICMP, a non-first
  IP fragment, ...). `skip_reason` says which, for the counters, and
  `decode_fragment` hands fragments to a reassembler;
* `DecodeError`: the headers contradict themselves or the frame is cut short. The
  error's ``kind`` is a short stable name to count.

Nothing else ever escapes: the fuzz tests feed random bytes to every link type.

The common Ethernet (optionally VLAN-tagged) -> IPv4 -> UDP case has a fast path,
`voiplog.packet.datagram.read_udp` (the pipeline's RTP fast path reads frames with
it too), that only accepts; anything it is unsure about goes through the general
walker, which is the single authority on errors and skip reasons.

One file, over 600 lines: the walker is one recursive descent. Its link, IP,
transport and tunnel steps call one another (a tunnel's inner packet starts
again at Ethernet or IP), so they stay together.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv6Address

from voiplog._frozen import fast_frozen_init
from voiplog.errors import ParseError
from voiplog.packet.datagram import Datagram, TcpSegment, _new, read_udp

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_PPP",
    "LINKTYPE_PPP_HDLC",
    "LINKTYPE_RAW",
    "LINKTYPE_RAW_ALIASES",
    "MAX_TUNNEL_DEPTH",
    "PROTO_SCTP",
    "PROTO_TCP",
    "PROTO_UDP",
    "SKIP_FRAGMENT",
    "SKIP_NOT_IP",
    "SKIP_NO_NEXT_HEADER",
    "SKIP_OTHER_PROTOCOL",
    "SKIP_UNSUPPORTED_TUNNEL",
    "SUPPORTED_LINKTYPES",
    "Datagram",
    "DecodeError",
    "IPFragment",
    "TcpSegment",
    "decode",
    "decode_fragment",
    "decode_general",
    "decode_tcp",
    "decode_transport",
    "format_ip",
    "is_fragment",
    "skip_reason",
]

# Link types as written in pcap and pcapng headers (tcpdump.org/linktypes.html).
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# Some writers put the platform's DLT_RAW value in the file instead of 101:
# 12 on most systems, 14 on OpenBSD.
LINKTYPE_RAW_ALIASES = frozenset({LINKTYPE_RAW, 12, 14})
SUPPORTED_LINKTYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_PPP,
        LINKTYPE_PPP_HDLC,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
    | LINKTYPE_RAW_ALIASES
)

PROTO_TCP = 6
PROTO_UDP = 17
PROTO_SCTP = 132

# Why `decode` returned None (see `skip_reason`).
SKIP_NOT_IP = "link.not_ip"
SKIP_FRAGMENT = "ip.fragment"
SKIP_OTHER_PROTOCOL = "ip.other_protocol"
SKIP_NO_NEXT_HEADER = "ipv6.no_next_header"
SKIP_UNSUPPORTED_TUNNEL = "tunnel.unsupported"

# Each tunnel level is a recursive call; crafted frames could otherwise nest GRE in
# GRE until the interpreter's recursion limit.
MAX_TUNNEL_DEPTH = 8

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_PPPOE_SESSION = 0x8864
_ETH_MPLS_UNICAST = 0x8847
_ETH_MPLS_MULTICAST = 0x8848
_ETH_TEB = 0x6558  # transparent Ethernet bridging, Ethernet inside GRE
_ETH_ERSPAN_2 = 0x88BE
_ETH_ERSPAN_3 = 0x22EB
_ETH_PPP = 0x880B
# 802.1Q, 802.1ad, and the pre-standard QinQ tags still used by some switches.
_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200, 0x9300})

_PROTO_IPIP = 4
_PROTO_IPV6 = 41
_PROTO_GRE = 47
_PROTO_AH = 51
_PROTO_IPV6_FRAGMENT = 44
_PROTO_IPV6_NO_NEXT = 59
# Extension headers whose length is (byte 1 + 1) * 8: hop-by-hop, routing,
# destination options, mobility, HIP, shim6 and the two experimental values.
_IPV6_EXT_HEADERS = frozenset({0, 43, 60, 135, 139, 140, 253, 254})

_VXLAN_PORT = 4789

# BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs by OS
# (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS, 10 Linux).
_NULL_AF_INET = 2
_NULL_AF_INET6 = frozenset({10, 24, 28, 30})


class DecodeError(ParseError):
    """A frame whose link, IP or transport headers are malformed or truncated."""

    kind = "decode_error"


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class IPFragment:
    """One fragment of an IPv4 or IPv6 datagram, as a reassembler needs it.

    Fragments of one datagram share ``(version, src_ip, dst_ip, ident, proto)``.
    Once reassembled, pass ``proto``, the addresses and the data to `decode_transport`.
    """

    version: int
    """4 or 6."""
    src_ip: bytes
    """Packed source address."""
    dst_ip: bytes
    """Packed destination address."""
    ident: int
    """IPv4 identification (16 bits) or IPv6 fragment header identification (32 bits)."""
    proto: int
    """IPv4 protocol, or the IPv6 fragment header's next header."""
    offset: int
    """Offset of `data` in the reassembled payload, in bytes."""
    more: bool
    """More fragments follow (MF flag / M bit)."""
    data: bytes
    """The fragment's payload (after the IP header and any unfragmentable part)."""


def decode(linktype: int, frame: bytes) -> Datagram | None:
    """Decode one frame to a `Datagram`: ``(proto, src_ip, src_port, dst_ip, dst_port, payload)``.

    Addresses are packed (4 or 16 bytes). The UDP payload is trimmed to the UDP length,
    so Ethernet padding never reaches the caller; for TCP it is the segment payload,
    possibly empty. Returns None for a frame that is not UDP or TCP over IP (see
    `skip_reason`); raises `DecodeError` for a malformed one.
    """
    if linktype == 1:
        u = read_udp(frame)[0]
        if u:
            return _new(
                Datagram,
                (
                    17,
                    frame[u - 8 : u - 4],
                    frame[u] << 8 | frame[u + 1],
                    frame[u - 4 : u],
                    frame[u + 2] << 8 | frame[u + 3],
                    frame[u + 8 : u + (frame[u + 4] << 8 | frame[u + 5])],
                ),
            )
    result = _walk(linktype, frame, False)
    return result if result.__class__ is Datagram else None


def decode_general(linktype: int, frame: bytes) -> Datagram | None:
    """`decode` without its fast path: for a caller that has already read the frame
    with `read_udp` (or the same test inline) and been refused."""
    result = _walk(linktype, frame, False)
    return result if result.__class__ is Datagram else None


def skip_reason(linktype: int, frame: bytes) -> str | None:
    """Why `decode` returns None for this frame: one of the ``SKIP_*`` names.

    Returns None when `decode` would return a `Datagram`; raises `DecodeError` exactly when
    `decode` does. Meant for the rare None case, so it walks the frame again.
    """
    result = _walk(linktype, frame, False)
    return result if result.__class__ is str else None


def is_fragment(linktype: int, frame: bytes) -> bool:
    """True if the frame is an IPv4 or IPv6 fragment (first or later) that `decode` skips."""
    return skip_reason(linktype, frame) == SKIP_FRAGMENT


def decode_fragment(linktype: int, frame: bytes) -> IPFragment | None:
    """The fragment carried by this frame, or None if it carries no IP fragment.

    Raises `DecodeError` for a malformed frame, like `decode`.
    """
    result = _walk(linktype, frame, True)
    return result if result.__class__ is IPFragment else None


def decode_tcp(linktype: int, frame: bytes) -> TcpSegment | None:
    """Decode a TCP segment with what stream reassembly needs.

    Returns a `TcpSegment`, ``(6, src_ip, src_port, dst_ip, dst_port, payload, seq, ack,
    flags)``: the first six fields are `decode`'s. None if the frame is not TCP over IP.
    """
    result = _walk(linktype, frame, True)
    return result if result.__class__ is TcpSegment else None


def decode_transport(
    proto: int, src_ip: bytes, dst_ip: bytes, data: bytes, detail: bool = False
) -> Datagram | TcpSegment | None:
    """Decode the transport layer of a reassembled IP datagram (see `IPFragment`).

    ``data`` starts right after the IP header (for IPv6, after the fragment header, so
    it may begin with more extension headers). Same results and errors as `decode`;
    with ``detail``, a TCP segment comes back as `decode_tcp`'s `TcpSegment`.
    """
    if len(src_ip) == 16:
        result = _ipv6_chain(data, 0, len(data), proto, src_ip, dst_ip, 0, detail)
    else:
        result = _transport(data, 0, len(data), proto, src_ip, dst_ip, 0, detail)
    return result if isinstance(result, (Datagram, TcpSegment)) else None


@lru_cache(maxsize=65536)
def format_ip(packed: bytes) -> str:
    """Text form of a packed IPv4 or IPv6 address, as inet_ntop writes it.

    IPv4 is formatted directly (as fast as a cache lookup would be); IPv6 goes
    through `ipaddress`, except the IPv4-mapped and -compatible forms.
    """
    if len(packed) == 4:
        return f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}"
    if len(packed) == 16 and not any(packed[:10]):
        # IPv4-mapped and IPv4-compatible addresses end in dotted quad in inet_ntop;
        # ipaddress (before 3.13) would print the tail as hex groups.
        tail = f"{packed[12]}.{packed[13]}.{packed[14]}.{packed[15]}"
        if packed[10:12] == b"\xff\xff":
            return "::ffff:" + tail
        if packed[10:12] == b"\0\0" and (packed[12] or packed[13]):
            return "::" + tail
    return IPv6Address(packed).compressed


# --- general walker ------------------------------------------------------------------
#
# Every layer function takes (frame, offset, end, depth, detail) and returns a
# `Datagram`, a SKIP_* string, or (with detail=True) an IPFragment; malformed input
# raises DecodeError. `end` is the first byte past this layer's data, so padding and
# outer trailers are never read as payload. With detail=True, TCP comes back as a
# `TcpSegment` (seq, ack and flags too), and fragments as IPFragment instead of
# SKIP_FRAGMENT.


def _walk(linktype: int, frame: bytes, detail: bool):
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET:
        return _ethernet(frame, 0, n, 0, detail)
    if linktype in LINKTYPE_RAW_ALIASES:
        return _ip(frame, 0, n, 0, detail)
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            raise DecodeError(f"Linux cooked frame of {n} bytes, header needs 16", "sll.truncated")
        return _ethertype(frame, frame[14] << 8 | frame[15], 16, n, 0, detail)
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            raise DecodeError(
                f"Linux cooked v2 frame of {n} bytes, header needs 20", "sll2.truncated"
            )
        return _ethertype(frame, frame[0] << 8 | frame[1], 20, n, 0, detail)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return _null(frame, n, detail)
    if linktype == LINKTYPE_IPV4:
        return _ipv4(frame, 0, n, 0, detail)
    if linktype == LINKTYPE_IPV6:
        return _ipv6(frame, 0, n, 0, detail)
    if linktype in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC):
        return _ppp(frame, 0, n, 0, detail)
    raise DecodeError(f"unsupported link type {linktype}", "link.unsupported")


def _null(frame: bytes, n: int, detail: bool):
    if n < 4:
        raise DecodeError(f"loopback frame of {n} bytes, header needs 4", "null.truncated")
    # The family is in the capturing host's byte order (LOOP: network order), and the
    # file does not say which: a value above 0xFFFF means we guessed wrong.
    family = frame[0] | frame[1] << 8 | frame[2] << 16 | frame[3] << 24
    if family > 0xFFFF:
        family = frame[3] | frame[2] << 8 | frame[1] << 16 | frame[0] << 24
    if family == _NULL_AF_INET:
        return _ipv4(frame, 4, n, 0, detail)
    if family in _NULL_AF_INET6:
        return _ipv6(frame, 4, n, 0, detail)
    return SKIP_NOT_IP


def _ethernet(frame: bytes, off: int, end: int, depth: int, detail: bool):
    if end - off < 14:
        raise DecodeError(f"Ethernet frame of {end - off} bytes, header needs 14", "eth.truncated")
    return _ethertype(frame, frame[off + 12] << 8 | frame[off + 13], off + 14, end, depth, detail)


def _ethertype(frame: bytes, etype: int, off: int, end: int, depth: int, detail: bool):
    while etype in _VLAN_TPIDS:
        if end - off < 4:
            raise DecodeError("VLAN tag cut short", "vlan.truncated")
        etype = frame[off + 2] << 8 | frame[off + 3]
        off += 4
    if etype == _ETH_IPV4:
        return _ipv4(frame, off, end, depth, detail)
    if etype == _ETH_IPV6:
        return _ipv6(frame, off, end, depth, detail)
    if etype == _ETH_PPPOE_SESSION:
        return _pppoe(frame, off, end, depth, detail)
    if etype in (_ETH_MPLS_UNICAST, _ETH_MPLS_MULTICAST):
        return _mpls(frame, off, end, depth, detail)
    # Includes 802.3 length fields (< 0x0600): LLC frames such as STP.
    return SKIP_NOT_IP


def _pppoe(frame: bytes, off: int, end: int, depth: int, detail: bool):
    if end - off < 6:
        raise DecodeError("PPPoE header cut short", "pppoe.truncated")
    if frame[off] != 0x11 or frame[off + 1] != 0:
        raise DecodeError(
            f"PPPoE session header with version/type 0x{frame[off]:02x} code 0x{frame[off + 1]:02x}",
            "pppoe.bad_header",
        )
    length = frame[off + 4] << 8 | frame[off + 5]
    off += 6
    if off + length > end:
        raise DecodeError(f"PPPoE length {length} exceeds the frame", "pppoe.truncated")
    return _ppp(frame, off, off + length, depth, detail)


def _ppp(frame: bytes, off: int, end: int, depth: int, detail: bool):
    # Address/control bytes (FF 03) are present in HDLC-like framing, absent in PPPoE.
    if end - off >= 2 and frame[off] == 0xFF and frame[off + 1] == 0x03:
        off += 2
    if end - off < 1:
        raise DecodeError("PPP header cut short", "ppp.truncated")
    # With protocol field compression the protocol is one byte; its low bit is set.
    if frame[off] & 1:
        protocol = frame[off]
        off += 1
    else:
        if end - off < 2:
            raise DecodeError("PPP header cut short", "ppp.truncated")
        protocol = frame[off] << 8 | frame[off + 1]
        off += 2
    if protocol == 0x21:
        return _ipv4(frame, off, end, depth, detail)
    if protocol == 0x57:
        return _ipv6(frame, off, end, depth, detail)
    return SKIP_NOT_IP


def _mpls(frame: bytes, off: int, end: int, depth: int, detail: bool):
    while True:
        if end - off < 4:
            raise DecodeError("MPLS label stack cut short", "mpls.truncated")
        bottom = frame[off + 2] & 1
        off += 4
        if bottom:
            break
    if off >= end:
        raise DecodeError("MPLS packet without payload", "mpls.truncated")
    # MPLS does not say what it carries; the first nibble is the usual guess.
    nibble = frame[off] >> 4
    if nibble == 4:
        return _ipv4(frame, off, end, depth, detail)
    if nibble == 6:
        return _ipv6(frame, off, end, depth, detail)
    if nibble == 0:
        # Pseudowire control word, then an Ethernet frame (Ethernet over MPLS).
        if depth >= MAX_TUNNEL_DEPTH:
            raise _too_deep()
        return _ethernet(frame, off + 4, end, depth + 1, detail)
    return SKIP_NOT_IP


def _ip(frame: bytes, off: int, end: int, depth: int, detail: bool):
    if off >= end:
        raise DecodeError("empty IP packet", "ip.truncated")
    version = frame[off] >> 4
    if version == 4:
        return _ipv4(frame, off, end, depth, detail)
    if version == 6:
        return _ipv6(frame, off, end, depth, detail)
    raise DecodeError(f"IP version {version}", "ip.bad_version")


def _ipv4(frame: bytes, off: int, end: int, depth: int, detail: bool):
    if end - off < 20:
        raise DecodeError(f"IPv4 packet of {end - off} bytes, header needs 20", "ip.truncated")
    first = frame[off]
    if first >> 4 != 4:
        raise DecodeError(f"IP version {first >> 4} where IPv4 was expected", "ip.bad_version")
    ihl = (first & 15) << 2
    if ihl < 20:
        raise DecodeError(f"IPv4 header length {ihl} below 20", "ip.bad_header")
    total = frame[off + 2] << 8 | frame[off + 3]
    if total == 0:
        # Captured before TCP segmentation offload split it: the NIC fills the length.
        total = end - off
    if total < ihl:
        raise DecodeError(f"IPv4 total length {total} below header length {ihl}", "ip.bad_length")
    if total > end - off:
        raise DecodeError(
            f"IPv4 total length {total} exceeds the {end - off} bytes captured", "ip.truncated"
        )
    end = off + total
    src = frame[off + 12 : off + 16]
    dst = frame[off + 16 : off + 20]
    fragment = (frame[off + 6] << 8 | frame[off + 7]) & 0x3FFF
    if fragment:
        if detail:
            return IPFragment(
                4,
                src,
                dst,
                frame[off + 4] << 8 | frame[off + 5],
                frame[off + 9],
                (fragment & 0x1FFF) << 3,
                bool(fragment & 0x2000),
                frame[off + ihl : end],
            )
        return SKIP_FRAGMENT
    return _transport(frame, off + ihl, end, frame[off + 9], src, dst, depth, detail)


def _ipv6(frame: bytes, off: int, end: int, depth: int, detail: bool):
    if end - off < 40:
        raise DecodeError(f"IPv6 packet of {end - off} bytes, header needs 40", "ipv6.truncated")
    if frame[off] >> 4 != 6:
        raise DecodeError(f"IP version {frame[off] >> 4} where IPv6 was expected", "ip.bad_version")
    length = frame[off + 4] << 8 | frame[off + 5]
    # Zero: a jumbogram, or a TSO/GSO packet captured before the NIC split it.
    if length:
        if length > end - off - 40:
            raise DecodeError(
                f"IPv6 payload length {length} exceeds the {end - off - 40} bytes captured",
                "ipv6.truncated",
            )
        end = off + 40 + length
    return _ipv6_chain(
        frame,
        off + 40,
        end,
        frame[off + 6],
        frame[off + 8 : off + 24],
        frame[off + 24 : off + 40],
        depth,
        detail,
    )


def _ipv6_chain(
    frame: bytes, p: int, end: int, nh: int, src: bytes, dst: bytes, depth: int, detail: bool
):
    # Each step moves p forward by at least 8 bytes, so the loop ends.
    while True:
        if nh == 17 or nh == 6:
            return _transport(frame, p, end, nh, src, dst, depth, detail)
        if nh in _IPV6_EXT_HEADERS:
            if end - p < 8:
                raise DecodeError(f"IPv6 extension header {nh} cut short", "ipv6.bad_ext_header")
            nh, p = frame[p], p + ((frame[p + 1] + 1) << 3)
        elif nh == _PROTO_AH:
            if end - p < 8:
                raise DecodeError("IPv6 authentication header cut short", "ipv6.bad_ext_header")
            nh, p = frame[p], p + ((frame[p + 1] + 2) << 2)
        elif nh == _PROTO_IPV6_FRAGMENT:
            if end - p < 8:
                raise DecodeError("IPv6 fragment header cut short", "ipv6.bad_ext_header")
            field = frame[p + 2] << 8 | frame[p + 3]
            if field & 0xFFF9:
                if detail:
                    return IPFragment(
                        6,
                        src,
                        dst,
                        int.from_bytes(frame[p + 4 : p + 8], "big"),
                        frame[p],
                        field & 0xFFF8,
                        bool(field & 1),
                        frame[p + 8 : end],
                    )
                return SKIP_FRAGMENT
            # An atomic fragment (offset 0, no more fragments) is a whole datagram.
            nh, p = frame[p], p + 8
        elif nh == _PROTO_IPV6_NO_NEXT:
            return SKIP_NO_NEXT_HEADER
        else:
            return _transport(frame, p, end, nh, src, dst, depth, detail)
        if p > end:
            raise DecodeError("IPv6 extension header runs past the packet", "ipv6.bad_ext_header")


def _transport(
    frame: bytes, p: int, end: int, proto: int, src: bytes, dst: bytes, depth: int, detail: bool
):
    if proto == 17:
        if end - p < 8:
            raise DecodeError(f"UDP header cut short ({end - p} bytes)", "udp.truncated")
        length = frame[p + 4] << 8 | frame[p + 5]
        if length < 8 or length > end - p:
            raise DecodeError(
                f"UDP length {length} outside 8..{end - p} (bytes in IP payload)", "udp.bad_length"
            )
        dport = frame[p + 2] << 8 | frame[p + 3]
        # VXLAN sets the I flag and keeps byte 7 zero; RTCP, which may well use the odd
        # port 4789, has its packet type (>= 192) in byte 1, which VXLAN keeps below 0x80.
        if (
            dport == _VXLAN_PORT
            and length >= 16
            and frame[p + 8] & 0x08
            and frame[p + 9] < 0x80
            and frame[p + 15] == 0
        ):
            if depth >= MAX_TUNNEL_DEPTH:
                raise _too_deep()
            return _vxlan(frame, p + 8, p + length, depth + 1, detail)
        return _new(
            Datagram,
            (17, src, frame[p] << 8 | frame[p + 1], dst, dport, frame[p + 8 : p + length]),
        )
    if proto == 6:
        if end - p < 20:
            raise DecodeError(f"TCP header cut short ({end - p} bytes)", "tcp.truncated")
        header = (frame[p + 12] >> 4) << 2
        if header < 20:
            raise DecodeError(f"TCP data offset {header} below 20", "tcp.bad_header")
        if header > end - p:
            raise DecodeError(
                f"TCP header length {header} exceeds the {end - p} bytes left", "tcp.truncated"
            )
        if detail:
            return _new(
                TcpSegment,
                (
                    6,
                    src,
                    frame[p] << 8 | frame[p + 1],
                    dst,
                    frame[p + 2] << 8 | frame[p + 3],
                    frame[p + header : end],
                    int.from_bytes(frame[p + 4 : p + 8], "big"),
                    int.from_bytes(frame[p + 8 : p + 12], "big"),
                    frame[p + 13],
                ),
            )
        return _new(
            Datagram,
            (
                6,
                src,
                frame[p] << 8 | frame[p + 1],
                dst,
                frame[p + 2] << 8 | frame[p + 3],
                frame[p + header : end],
            ),
        )
    if proto == 132:
        # SCTP: the payload is the packet's chunks, after the 12-byte common header
        # (ports, verification tag, checksum); `voiplog.packet.sctp` reads them.
        if end - p < 12:
            raise DecodeError(f"SCTP common header cut short ({end - p} bytes)", "sctp.truncated")
        return _new(
            Datagram,
            (
                132,
                src,
                frame[p] << 8 | frame[p + 1],
                dst,
                frame[p + 2] << 8 | frame[p + 3],
                frame[p + 12 : end],
            ),
        )
    if proto in (_PROTO_IPIP, _PROTO_IPV6, _PROTO_GRE):
        if depth >= MAX_TUNNEL_DEPTH:
            raise _too_deep()
        if proto == _PROTO_IPIP:
            return _ipv4(frame, p, end, depth + 1, detail)
        if proto == _PROTO_IPV6:
            return _ipv6(frame, p, end, depth + 1, detail)
        return _gre(frame, p, end, depth + 1, detail)
    return SKIP_OTHER_PROTOCOL


def _gre(frame: bytes, p: int, end: int, depth: int, detail: bool):
    if end - p < 4:
        raise DecodeError("GRE header cut short", "gre.truncated")
    flags = frame[p]
    version = frame[p + 1] & 7
    protocol = frame[p + 2] << 8 | frame[p + 3]
    q = p + 4
    if version == 0:
        if flags & 0x40:
            # RFC 1701 source routing: long deprecated, never seen carrying VoIP.
            return SKIP_UNSUPPORTED_TUNNEL
        q += ((flags & 0x80) >> 5) + ((flags & 0x20) >> 3) + ((flags & 0x10) >> 2)
    elif version == 1:
        # Enhanced GRE (PPTP): key always present, sequence and ack optional.
        q += 4 + ((flags & 0x10) >> 2) + ((frame[p + 1] & 0x80) >> 5)
    else:
        return SKIP_UNSUPPORTED_TUNNEL
    if q > end:
        raise DecodeError("GRE header cut short", "gre.truncated")
    if protocol == _ETH_IPV4:
        return _ipv4(frame, q, end, depth, detail)
    if protocol == _ETH_IPV6:
        return _ipv6(frame, q, end, depth, detail)
    if protocol == _ETH_TEB:
        return _ethernet(frame, q, end, depth, detail)
    if protocol == _ETH_ERSPAN_2:
        # Type II has an 8-byte ERSPAN header and a GRE sequence number; type I has neither.
        return _ethernet(frame, q + 8 if flags & 0x10 else q, end, depth, detail)
    if protocol == _ETH_ERSPAN_3:
        if end - q < 12:
            raise DecodeError("ERSPAN type III header cut short", "gre.truncated")
        frame_type = (frame[q + 10] >> 2) & 0x1F
        q += 20 if frame[q + 11] & 1 else 12  # optional platform-specific subheader
        if frame_type == 0:
            return _ethernet(frame, q, end, depth, detail)
        if frame_type == 2:
            return _ip(frame, q, end, depth, detail)
        return SKIP_UNSUPPORTED_TUNNEL
    if protocol == _ETH_PPP:
        return _ppp(frame, q, end, depth, detail)
    return SKIP_NOT_IP


def _vxlan(frame: bytes, off: int, end: int, depth: int, detail: bool):
    # VXLAN-GPE (P flag) names the inner protocol in byte 3; plain VXLAN carries Ethernet.
    if frame[off] & 0x04:
        inner = frame[off + 3]
        if inner == 1 or inner == 2:
            return _ip(frame, off + 8, end, depth, detail)
        if inner != 3:
            return SKIP_UNSUPPORTED_TUNNEL
    return _ethernet(frame, off + 8, end, depth, detail)


def _too_deep() -> DecodeError:
    return DecodeError(f"tunnels nested more than {MAX_TUNNEL_DEPTH} deep", "tunnel.too_deep")
