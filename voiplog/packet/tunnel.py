"""The outermost tunnel a frame travelled in: its kind, endpoints and key (pure).

`decode` opens IP-in-IP, 6in4, GRE (and GRE/PPP), ERSPAN I/II/III and VXLAN and
returns only the inner datagram, which is what calls are tracked by. An operator
who reads a record of a call seen through a tunnel also wants to know which
tunnel: `outer_tunnel` walks the frame again, down to the first IP header, and
describes the tunnel that header opens. It is meant for the few packets that
need it (a call's first INVITE), not for every packet, and it never raises: a
frame it cannot read has no tunnel to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voiplog._frozen import fast_frozen_init
from voiplog.packet.decode import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RAW_ALIASES,
    format_ip,
)

__all__ = ["Tunnel", "outer_tunnel"]

_VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200, 0x9300})
_IPV6_EXT_HEADERS = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_VXLAN_PORT = 4789
_ERSPAN_2 = 0x88BE
_ERSPAN_3 = 0x22EB
_MAX_MPLS_LABELS = 16


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Tunnel:
    """One tunnel: what kind, between which addresses, with which key."""

    type: str
    """``ipip``, ``6in4``, ``4in6``, ``ip6ip6``, ``gre``, ``pptp`` (GRE version 1),
    ``erspan`` or ``vxlan``."""
    outer_src: str
    """Source address of the outer IP header."""
    outer_dst: str
    """Destination address of the outer IP header."""
    key: int | None = None
    """GRE key, PPTP call id, ERSPAN session id or VXLAN network identifier."""
    version: int | None = None
    """ERSPAN type (1, 2 or 3)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "outer_src": self.outer_src,
            "outer_dst": self.outer_dst,
            "key": self.key,
        }
        if self.version is not None:
            out["version"] = self.version
        return out


def outer_tunnel(linktype: int, frame: bytes) -> Tunnel | None:
    """The tunnel opened by the frame's first IP header, or None (no tunnel, unreadable)."""
    ip = _first_ip(linktype, frame)
    if ip is None:
        return None
    return _tunnel_at(frame, ip)


def _first_ip(linktype: int, frame: bytes) -> int | None:
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET:
        return _ethertype(frame, 12)
    if linktype in LINKTYPE_RAW_ALIASES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return 0
    if linktype == LINKTYPE_LINUX_SLL:
        return _ethertype(frame, 14)
    if linktype == LINKTYPE_LINUX_SLL2:
        return _ethertype(frame, 0, 20) if n >= 20 else None
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return 4
    if linktype in (LINKTYPE_PPP, LINKTYPE_PPP_HDLC):
        return _ppp(frame, 0)
    return None


def _ethertype(frame: bytes, at: int, payload: int | None = None) -> int | None:
    """Follow an EtherType field at `at` (payload starts at `payload`, default at + 2)."""
    off = at + 2 if payload is None else payload
    if len(frame) < at + 2:
        return None
    etype = frame[at] << 8 | frame[at + 1]
    while etype in _VLAN_TPIDS:
        if len(frame) < off + 4:
            return None
        etype = frame[off + 2] << 8 | frame[off + 3]
        off += 4
    if etype in (0x0800, 0x86DD):
        return off
    if etype == 0x8864:  # PPPoE session
        return _ppp(frame, off + 6)
    if etype in (0x8847, 0x8848):  # MPLS
        for _ in range(_MAX_MPLS_LABELS):
            if len(frame) < off + 4:
                return None
            off += 4
            if frame[off - 2] & 1:
                return off
    return None


def _ppp(frame: bytes, off: int) -> int | None:
    if frame[off : off + 2] == b"\xff\x03":
        off += 2
    if len(frame) <= off:
        return None
    if frame[off] & 1:
        return off + 1 if frame[off] in (0x21, 0x57) else None
    protocol = frame[off : off + 2]
    return off + 2 if protocol in (b"\x00\x21", b"\x00\x57") else None


def _tunnel_at(frame: bytes, off: int) -> Tunnel | None:
    n = len(frame)
    if n < off + 20:
        return None
    version = frame[off] >> 4
    if version == 4:
        p = off + ((frame[off] & 15) << 2)
        proto = frame[off + 9]
        src, dst = frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        if (frame[off + 6] << 8 | frame[off + 7]) & 0x1FFF:
            return None  # a later fragment holds no tunnel header
    elif version == 6:
        if n < off + 40:
            return None
        proto = frame[off + 6]
        src, dst = frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        p = off + 40
        while proto in _IPV6_EXT_HEADERS and n >= p + 8:
            proto, p = frame[p], p + ((frame[p + 1] + 1) << 3)
    else:
        return None
    # The addresses are formatted only for a tunnel: most frames hold none.
    if proto in (4, 41):
        names = {(4, 4): "ipip", (4, 41): "6in4", (6, 4): "4in6", (6, 41): "ip6ip6"}
        return Tunnel(names[version, proto], format_ip(src), format_ip(dst))
    if proto == 47:
        return _gre(frame, p, format_ip(src), format_ip(dst))
    if proto == 17 and n >= p + 16:
        dport = frame[p + 2] << 8 | frame[p + 3]
        if dport == _VXLAN_PORT and frame[p + 8] & 0x08:
            vni = frame[p + 12] << 16 | frame[p + 13] << 8 | frame[p + 14]
            return Tunnel("vxlan", format_ip(src), format_ip(dst), vni)
    return None


def _gre(frame: bytes, p: int, outer_src: str, outer_dst: str) -> Tunnel | None:
    if len(frame) < p + 4:
        return None
    flags = frame[p]
    protocol = frame[p + 2] << 8 | frame[p + 3]
    q = p + 4
    if frame[p + 1] & 7 == 1:
        # Enhanced GRE (PPTP): the key's low half is the call id.
        if len(frame) < q + 4:
            return None
        return Tunnel("pptp", outer_src, outer_dst, frame[q + 2] << 8 | frame[q + 3])
    if flags & 0xC0:
        q += 4  # checksum (and offset)
    key = None
    if flags & 0x20:
        if len(frame) < q + 4:
            return None
        key = int.from_bytes(frame[q : q + 4], "big")
        q += 4
    sequenced = flags & 0x10
    if sequenced:
        q += 4
    if protocol == _ERSPAN_2:
        if not sequenced:
            return Tunnel("erspan", outer_src, outer_dst, None, 1)
        if len(frame) < q + 4:
            return None
        return Tunnel("erspan", outer_src, outer_dst, _erspan_session(frame, q), 2)
    if protocol == _ERSPAN_3:
        if len(frame) < q + 4:
            return None
        return Tunnel("erspan", outer_src, outer_dst, _erspan_session(frame, q), 3)
    return Tunnel("gre", outer_src, outer_dst, key)


def _erspan_session(frame: bytes, q: int) -> int:
    return (frame[q + 2] & 0x03) << 8 | frame[q + 3]
