"""The outermost tunnel of a frame: kind, outer addresses and key."""

from __future__ import annotations

import os
import struct

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from voiplog.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_RAW,
    SUPPORTED_LINKTYPES,
    decode,
)
from voiplog.packet.tunnel import Tunnel, outer_tunnel


def eth(**kw):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **kw)


INNER = IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=5060, dport=5060) / b"OPTIONS"
INNER6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5060, dport=5060) / b"OPTIONS"
OUTER = IP(src="198.51.100.1", dst="198.51.100.2")
OUTER6 = IPv6(src="2001:db8:ffff::1", dst="2001:db8:ffff::2")


def _pptp(inner) -> bytes:
    gre = struct.pack(">BBHHHI", 0x30, 0x01, 0x880B, 0, 0x1234, 1)
    outer = IP(src="198.51.100.1", dst="198.51.100.2", proto=47)
    return bytes(outer / Raw(gre + b"\xff\x03\x00\x21" + bytes(inner)))


CASES = [
    ("ipip", eth() / OUTER / INNER, Tunnel("ipip", "198.51.100.1", "198.51.100.2")),
    ("6in4", eth() / OUTER / INNER6, Tunnel("6in4", "198.51.100.1", "198.51.100.2")),
    ("4in6", eth() / OUTER6 / INNER, Tunnel("4in6", "2001:db8:ffff::1", "2001:db8:ffff::2")),
    (
        "ip6ip6",
        eth() / OUTER6 / INNER6,
        Tunnel("ip6ip6", "2001:db8:ffff::1", "2001:db8:ffff::2"),
    ),
    ("gre", eth() / OUTER / GRE() / INNER, Tunnel("gre", "198.51.100.1", "198.51.100.2")),
    (
        "gre_key_seq_checksum",
        eth()
        / OUTER
        / GRE(key_present=1, key=77, seqnum_present=1, sequence_number=9, chksum_present=1)
        / INNER,
        Tunnel("gre", "198.51.100.1", "198.51.100.2", 77),
    ),
    (
        "gre_over_ipv6",
        eth() / OUTER6 / GRE(key_present=1, key=5) / INNER,
        Tunnel("gre", "2001:db8:ffff::1", "2001:db8:ffff::2", 5),
    ),
    (
        "gre_bridged_ethernet",
        eth() / OUTER / GRE(proto=0x6558) / eth() / INNER,
        Tunnel("gre", "198.51.100.1", "198.51.100.2"),
    ),
    (
        "erspan_1",
        eth() / OUTER / GRE(proto=0x88BE) / eth() / INNER,
        Tunnel("erspan", "198.51.100.1", "198.51.100.2", None, 1),
    ),
    (
        "erspan_2",
        eth() / OUTER / GRE() / ERSPAN_II(session_id=300) / eth() / INNER,
        Tunnel("erspan", "198.51.100.1", "198.51.100.2", 300, 2),
    ),
    (
        "erspan_3",
        eth() / OUTER / GRE(proto=0x22EB) / ERSPAN_III(session_id=5) / eth() / INNER,
        Tunnel("erspan", "198.51.100.1", "198.51.100.2", 5, 3),
    ),
    (
        "vxlan",
        eth() / OUTER / UDP(sport=49152, dport=4789) / VXLAN(flags=0x08, vni=4242) / eth() / INNER,
        Tunnel("vxlan", "198.51.100.1", "198.51.100.2", 4242),
    ),
    (
        "pptp",
        eth(type=0x0800) / Raw(_pptp(INNER)),
        Tunnel("pptp", "198.51.100.1", "198.51.100.2", 0x1234),
    ),
    (
        "mpls_stack_then_gre",
        eth()
        / MPLS(label=100, s=0)
        / MPLS(label=200, s=1)
        / OUTER
        / GRE(key_present=1, key=3)
        / INNER,
        Tunnel("gre", "198.51.100.1", "198.51.100.2", 3),
    ),
    (
        "pppoe_then_ipip",
        eth() / PPPoE(sessionid=7) / PPP(proto=0x21) / OUTER / INNER,
        Tunnel("ipip", "198.51.100.1", "198.51.100.2"),
    ),
    (
        "vlan_then_gre",
        eth() / Dot1Q(vlan=10) / Dot1Q(vlan=20) / OUTER / GRE() / INNER,
        Tunnel("gre", "198.51.100.1", "198.51.100.2"),
    ),
]


@pytest.mark.parametrize(("name", "packet", "expected"), CASES, ids=[c[0] for c in CASES])
def test_outermost_tunnel_is_reported(name, packet, expected):
    frame = bytes(packet)
    assert outer_tunnel(LINKTYPE_ETHERNET, frame) == expected
    # And decode still reaches the inner datagram.
    assert decode(LINKTYPE_ETHERNET, frame)[5] == b"OPTIONS"


def test_other_link_layers():
    ip = bytes(OUTER / GRE(key_present=1, key=1) / INNER)
    expected = Tunnel("gre", "198.51.100.1", "198.51.100.2", 1)
    assert outer_tunnel(LINKTYPE_RAW, ip) == expected
    assert outer_tunnel(LINKTYPE_NULL, struct.pack("<I", 2) + ip) == expected
    assert outer_tunnel(LINKTYPE_PPP, b"\xff\x03\x00\x21" + ip) == expected
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\0" * 8, 0x0800) + ip
    assert outer_tunnel(LINKTYPE_LINUX_SLL, sll) == expected
    sll2 = struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\0" * 8) + ip
    assert outer_tunnel(LINKTYPE_LINUX_SLL2, sll2) == expected


def test_nested_tunnels_report_the_outermost():
    packet = eth() / OUTER / GRE(key_present=1, key=9) / IP(src="10.9.9.1", dst="10.9.9.2") / INNER
    assert outer_tunnel(LINKTYPE_ETHERNET, bytes(packet)) == Tunnel(
        "gre", "198.51.100.1", "198.51.100.2", 9
    )


def test_no_tunnel():
    assert outer_tunnel(LINKTYPE_ETHERNET, bytes(eth() / INNER)) is None
    assert outer_tunnel(LINKTYPE_ETHERNET, bytes(eth() / INNER6)) is None


def test_to_dict():
    assert Tunnel("erspan", "a", "b", 3, 2).to_dict() == {
        "type": "erspan",
        "outer_src": "a",
        "outer_dst": "b",
        "key": 3,
        "version": 2,
    }
    assert "version" not in Tunnel("gre", "a", "b").to_dict()


def test_never_raises_on_garbage_or_cut_frames():
    frames = [bytes(p) for _, p, _ in CASES]
    for linktype in [*sorted(SUPPORTED_LINKTYPES), 999]:
        for frame in frames:
            for cut in range(0, len(frame), 3):
                outer_tunnel(linktype, frame[:cut])
        for size in range(0, 80):
            outer_tunnel(linktype, os.urandom(size))
