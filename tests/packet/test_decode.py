"""Link, network and transport decoding of frames built with scapy."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, GRE, LLC, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Padding, Raw

from voiplog.errors import ParseError
from voiplog.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_RAW,
    MAX_TUNNEL_DEPTH,
    PROTO_TCP,
    PROTO_UDP,
    SKIP_FRAGMENT,
    SKIP_NO_NEXT_HEADER,
    SKIP_NOT_IP,
    SKIP_OTHER_PROTOCOL,
    SUPPORTED_LINKTYPES,
    DecodeError,
    IPFragment,
    decode,
    decode_fragment,
    decode_tcp,
    decode_transport,
    format_ip,
    is_fragment,
    skip_reason,
)

A4 = "192.0.2.10"
B4 = "198.51.100.20"
A6 = "2001:db8::a"
B6 = "2001:db8:ffff::20"
# Explicit MAC addresses: scapy would otherwise resolve them (ARP) on the host network.
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
SIP = b"OPTIONS sip:alice@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n"


def packed(address: str) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_pton(family, address)


def eth(**fields):
    return Ether(src=MAC_A, dst=MAC_B, **fields)


def udp4(payload: bytes = SIP, sport: int = 5060, dport: int = 5060):
    return IP(src=A4, dst=B4) / UDP(sport=sport, dport=dport) / Raw(payload)


def udp6(payload: bytes = SIP, sport: int = 5060, dport: int = 5062):
    return IPv6(src=A6, dst=B6) / UDP(sport=sport, dport=dport) / Raw(payload)


def expect_udp4(payload: bytes = SIP, sport: int = 5060, dport: int = 5060):
    return (PROTO_UDP, packed(A4), sport, packed(B4), dport, payload)


def expect_udp6(payload: bytes = SIP, sport: int = 5060, dport: int = 5062):
    return (PROTO_UDP, packed(A6), sport, packed(B6), dport, payload)


def raises_kind(kind: str, linktype: int, frame: bytes) -> None:
    with pytest.raises(DecodeError) as raised:
        decode(linktype, frame)
    assert raised.value.kind == kind
    assert isinstance(raised.value, ParseError)


# --- link layers -----------------------------------------------------------------------


def test_ethernet_ipv4_udp_trims_padding():
    frame = bytes(eth() / udp4(b"hi") / Padding(b"\0" * 16))
    assert len(frame) == 60  # padded to the Ethernet minimum
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4(b"hi")


def test_ethernet_trailer_and_fcs_are_not_payload():
    frame = bytes(eth() / udp4(b"x" * 100)) + b"\xde\xad\xbe\xef"
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4(b"x" * 100)


def test_result_types():
    result = decode(LINKTYPE_ETHERNET, bytes(eth() / udp4()))
    assert [type(field) for field in result] == [int, bytes, int, bytes, int, bytes]


def test_udp_payload_trimmed_to_udp_length_inside_longer_ip_packet():
    packet = IP(src=A4, dst=B4) / UDP(sport=1, dport=2, len=8 + 3) / Raw(b"abcdefgh")
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / packet)) == expect_udp4(b"abc", 1, 2)


def test_empty_udp_payload():
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / udp4(b""))) == expect_udp4(b"")


def test_ipv4_options():
    packet = IP(src=A4, dst=B4, options=b"\x94\x04\x00\x00") / UDP(sport=5060, dport=5060) / SIP
    frame = bytes(eth() / packet)
    assert frame[14] == 0x46
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()


def test_vlan():
    frame = bytes(eth() / Dot1Q(vlan=42) / udp4())
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()


def test_qinq_802_1ad():
    frame = bytes(eth() / Dot1AD(vlan=100) / Dot1Q(vlan=42) / udp4())
    assert frame[12:14] == b"\x88\xa8"
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()


def test_qinq_9100_and_deep_stacks():
    frame = bytes(eth(type=0x9100) / Dot1Q(vlan=7, type=0x8100) / Dot1Q(vlan=8) / udp6())
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp6()
    deep = eth() / Dot1Q(vlan=1)
    for vlan in range(2, 12):
        deep = deep / Dot1Q(vlan=vlan)
    assert decode(LINKTYPE_ETHERNET, bytes(deep / udp4())) == expect_udp4()


def test_linux_cooked_sll():
    frame = bytes(CookedLinux(proto=0x0800) / udp4())
    assert len(frame) - len(bytes(udp4())) == 16
    assert decode(LINKTYPE_LINUX_SLL, frame) == expect_udp4()
    frame6 = bytes(CookedLinux(proto=0x86DD) / udp6())
    assert decode(LINKTYPE_LINUX_SLL, frame6) == expect_udp6()


def test_linux_cooked_sll2():
    frame = bytes(CookedLinuxV2(proto=0x86DD) / udp6())
    assert len(frame) - len(bytes(udp6())) == 20
    assert decode(LINKTYPE_LINUX_SLL2, frame) == expect_udp6()
    frame4 = bytes(CookedLinuxV2(proto=0x0800) / udp4())
    assert decode(LINKTYPE_LINUX_SLL2, frame4) == expect_udp4()


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, 12, 14])
def test_raw_ip_version_nibble_decides(linktype):
    assert decode(linktype, bytes(udp4())) == expect_udp4()
    assert decode(linktype, bytes(udp6())) == expect_udp6()


def test_linktype_ipv4_and_ipv6():
    assert decode(LINKTYPE_IPV4, bytes(udp4())) == expect_udp4()
    assert decode(LINKTYPE_IPV6, bytes(udp6())) == expect_udp6()
    raises_kind("ip.bad_version", LINKTYPE_IPV4, bytes(udp6()))
    raises_kind("ip.bad_version", LINKTYPE_IPV6, bytes(udp4()) + b"\0" * 40)


@pytest.mark.parametrize("linktype", [LINKTYPE_NULL, LINKTYPE_LOOP])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("family6", [24, 28, 30])
def test_null_loopback_both_byte_orders(linktype, order, family6):
    assert decode(linktype, struct.pack(order + "I", 2) + bytes(udp4())) == expect_udp4()
    assert decode(linktype, struct.pack(order + "I", family6) + bytes(udp6())) == expect_udp6()
    other = struct.pack(order + "I", 7) + b"\0" * 40
    assert decode(linktype, other) is None
    assert skip_reason(linktype, other) == SKIP_NOT_IP


def test_pppoe_session():
    frame = bytes(eth() / PPPoE(sessionid=9) / PPP(proto=0x0021) / udp4())
    assert frame[12:14] == b"\x88\x64"
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()
    frame6 = bytes(eth() / Dot1Q(vlan=3) / PPPoE() / PPP(proto=0x0057) / udp6())
    assert decode(LINKTYPE_ETHERNET, frame6) == expect_udp6()
    lcp = bytes(eth() / PPPoE() / PPP(proto=0xC021) / Raw(b"\x01\x01\x00\x04"))
    assert skip_reason(LINKTYPE_ETHERNET, lcp) == SKIP_NOT_IP


def test_pppoe_trims_to_its_length_and_checks_header():
    frame = bytearray(bytes(eth() / PPPoE() / PPP(proto=0x0021) / udp4()))
    frame[14] = 0x12
    raises_kind("pppoe.bad_header", LINKTYPE_ETHERNET, bytes(frame))
    frame[14] = 0x11
    struct.pack_into(">H", frame, 18, 1000)
    raises_kind("pppoe.truncated", LINKTYPE_ETHERNET, bytes(frame))


def test_ppp_link_type_with_and_without_address_control():
    assert decode(LINKTYPE_PPP, b"\xff\x03\x00\x21" + bytes(udp4())) == expect_udp4()
    assert decode(LINKTYPE_PPP, b"\x00\x57" + bytes(udp6())) == expect_udp6()
    assert decode(LINKTYPE_PPP, b"\x21" + bytes(udp4())) == expect_udp4()  # compressed


def test_mpls_label_stack():
    frame = bytes(eth() / MPLS(label=100, s=0) / MPLS(label=200, s=1) / udp4())
    assert frame[12:14] == b"\x88\x47"
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()
    frame6 = bytes(eth() / MPLS(label=5, s=1) / udp6())
    assert decode(LINKTYPE_ETHERNET, frame6) == expect_udp6()


def test_mpls_ethernet_pseudowire_with_control_word():
    inner = bytes(eth() / Dot1Q(vlan=9) / udp4())
    frame = bytes(eth() / MPLS(label=16, s=1)) + b"\0\0\0\0" + inner
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4()


def test_unsupported_link_type():
    raises_kind("link.unsupported", 127, bytes(udp4()))


# --- not for us: None with a reason ------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (eth() / ARP(), SKIP_NOT_IP),
        (Dot3(src=MAC_A, dst=MAC_B) / LLC() / Raw(b"\0" * 40), SKIP_NOT_IP),
        (eth(type=0x88CC) / Raw(b"\0" * 40), SKIP_NOT_IP),
        (eth() / IP(src=A4, dst=B4) / ICMP(), SKIP_OTHER_PROTOCOL),
        (eth() / IPv6(src=A6, dst=B6, nh=58) / Raw(b"\x80\0\0\0\0\0\0\0"), SKIP_OTHER_PROTOCOL),
        (eth() / IP(src=A4, dst=B4, proto=89) / Raw(b"\0" * 12), SKIP_OTHER_PROTOCOL),
        (eth() / IPv6(src=A6, dst=B6, nh=59), SKIP_NO_NEXT_HEADER),
        (eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt(nh=59), SKIP_NO_NEXT_HEADER),
    ],
)
def test_frames_that_are_not_udp_or_tcp(frame, reason):
    data = bytes(frame)
    assert decode(LINKTYPE_ETHERNET, data) is None
    assert skip_reason(LINKTYPE_ETHERNET, data) == reason
    assert not is_fragment(LINKTYPE_ETHERNET, data)
    assert decode_fragment(LINKTYPE_ETHERNET, data) is None


def test_skip_reason_is_none_for_decoded_frames():
    assert skip_reason(LINKTYPE_ETHERNET, bytes(eth() / udp4())) is None


# --- IPv6 extension headers -------------------------------------------------------------


def test_ipv6_hop_by_hop_and_destination_options():
    packet = (
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt(options=[])
        / UDP(sport=5060, dport=5062)
        / Raw(SIP)
    )
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / packet)) == expect_udp6()


def test_ipv6_routing_and_authentication_headers():
    packet = (
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrRouting(addresses=["2001:db8::1"])
        / AH(nh=17, payloadlen=4, spi=1, icv=b"\0" * 12)
        / UDP(sport=5060, dport=5062)
        / Raw(SIP)
    )
    assert decode(LINKTYPE_RAW, bytes(packet)) == expect_udp6()


def test_ipv6_padding_after_payload_length_is_trimmed():
    frame = bytes(eth() / udp6(b"a")) + b"\0" * 10
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp6(b"a")


def test_ipv6_extension_header_past_the_packet():
    frame = bytearray(bytes(IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt() / UDP() / Raw(b"x")))
    frame[41] = 200  # header length: 201 * 8 bytes
    raises_kind("ipv6.bad_ext_header", LINKTYPE_RAW, bytes(frame))
    cut = bytes(IPv6(src=A6, dst=B6, nh=0, plen=4)) + b"\x11\0\0\0"
    raises_kind("ipv6.bad_ext_header", LINKTYPE_RAW, cut)


# --- fragments ---------------------------------------------------------------------------


def test_ipv4_fragments_are_skipped_and_reassemble():
    big = udp4(b"".join(b"line %04d\r\n" % i for i in range(300)))
    big[IP].id = 4321
    pieces = fragment(big, fragsize=1000)
    assert len(pieces) > 2
    fragments = []
    for piece in pieces:
        frame = bytes(eth() / piece)
        assert decode(LINKTYPE_ETHERNET, frame) is None
        assert skip_reason(LINKTYPE_ETHERNET, frame) == SKIP_FRAGMENT
        assert is_fragment(LINKTYPE_ETHERNET, frame)
        fragments.append(decode_fragment(LINKTYPE_ETHERNET, frame))
    first, last = fragments[0], fragments[-1]
    assert isinstance(first, IPFragment)
    assert (first.version, first.src_ip, first.dst_ip, first.ident, first.proto) == (
        4,
        packed(A4),
        packed(B4),
        4321,
        PROTO_UDP,
    )
    assert first.offset == 0 and first.more
    assert last.offset > 0 and not last.more
    data = b"".join(f.data for f in sorted(fragments, key=lambda f: f.offset))
    assert decode_transport(first.proto, first.src_ip, first.dst_ip, data) == expect_udp4(
        bytes(big[Raw])
    )


def test_ipv6_fragments_are_skipped_and_reassemble():
    payload = b"".join(b"line %04d\r\n" % i for i in range(300))
    big = (
        IPv6(src=A6, dst=B6)
        / IPv6ExtHdrFragment(id=0xABCDEF01)
        / UDP(sport=5060, dport=5062)
        / payload
    )
    pieces = fragment6(big, 1280)
    assert len(pieces) > 2
    fragments = []
    for piece in pieces:
        frame = bytes(eth() / piece)
        assert decode(LINKTYPE_ETHERNET, frame) is None
        assert is_fragment(LINKTYPE_ETHERNET, frame)
        fragments.append(decode_fragment(LINKTYPE_ETHERNET, frame))
    first = fragments[0]
    assert (first.version, first.ident, first.proto, first.offset, first.more) == (
        6,
        0xABCDEF01,
        PROTO_UDP,
        0,
        True,
    )
    assert not fragments[-1].more
    data = b"".join(f.data for f in sorted(fragments, key=lambda f: f.offset))
    assert decode_transport(first.proto, first.src_ip, first.dst_ip, data) == expect_udp6(payload)


def test_ipv6_reassembled_data_may_start_with_extension_headers():
    inner = bytes(IPv6ExtHdrDestOpt(nh=17) / UDP(sport=5060, dport=5062) / Raw(SIP))
    assert decode_transport(60, packed(A6), packed(B6), inner) == expect_udp6()


def test_ipv6_atomic_fragment_is_a_whole_datagram():
    packet = (
        IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(m=0, offset=0) / UDP(sport=5060, dport=5062) / SIP
    )
    assert decode(LINKTYPE_RAW, bytes(packet)) == expect_udp6()


def test_non_first_ipv4_fragment_with_dont_fragment_neighbour_flags():
    last = IP(src=A4, dst=B4, flags=0, frag=100, proto=17) / Raw(b"tail")
    assert is_fragment(LINKTYPE_RAW, bytes(last))
    whole = IP(src=A4, dst=B4, flags="DF") / UDP(sport=5060, dport=5060) / SIP
    assert decode(LINKTYPE_RAW, bytes(whole)) == expect_udp4()


# --- TCP ---------------------------------------------------------------------------------


def test_tcp_payload():
    frame = bytes(eth() / IP(src=A4, dst=B4) / TCP(sport=5060, dport=40000, seq=1000) / SIP)
    assert decode(LINKTYPE_ETHERNET, frame) == (PROTO_TCP, packed(A4), 5060, packed(B4), 40000, SIP)


def test_tcp_with_options_and_empty_payload():
    syn = IP(src=A4, dst=B4) / TCP(
        sport=1, dport=5060, flags="S", options=[("MSS", 1460), ("NOP", None)]
    )
    frame = bytes(eth() / syn)
    assert decode(LINKTYPE_ETHERNET, frame) == (PROTO_TCP, packed(A4), 1, packed(B4), 5060, b"")


def test_decode_tcp_gives_sequence_and_flags():
    frame = bytes(
        eth() / IPv6(src=A6, dst=B6) / TCP(sport=5061, dport=5060, seq=7, ack=9, flags="PA") / SIP
    )
    result = decode_tcp(LINKTYPE_ETHERNET, frame)
    assert result == (PROTO_TCP, packed(A6), 5061, packed(B6), 5060, SIP, 7, 9, 0x18)
    assert result[:6] == decode(LINKTYPE_ETHERNET, frame)
    assert decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / udp4())) is None
    assert decode_tcp(LINKTYPE_ETHERNET, bytes(eth() / ARP())) is None


def test_tso_ipv4_total_length_zero_uses_captured_length():
    packet = bytearray(bytes(IP(src=A4, dst=B4) / TCP(sport=5060, dport=5060) / SIP))
    packet[2:4] = b"\0\0"
    assert decode(LINKTYPE_RAW, bytes(packet)) == (
        PROTO_TCP,
        packed(A4),
        5060,
        packed(B4),
        5060,
        SIP,
    )


# --- tunnels -----------------------------------------------------------------------------


def test_ip_in_ip_and_6in4():
    outer = IP(src="10.0.0.1", dst="10.0.0.2")
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / outer / udp4())) == expect_udp4()
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / outer / udp6())) == expect_udp6()


def test_gre_variants():
    outer = eth() / IP(src="10.0.0.1", dst="10.0.0.2")
    assert decode(LINKTYPE_ETHERNET, bytes(outer / GRE() / udp4())) == expect_udp4()
    keyed = GRE(key_present=1, key=5, seqnum_present=1, sequence_number=1, chksum_present=1)
    assert decode(LINKTYPE_ETHERNET, bytes(outer / keyed / udp6())) == expect_udp6()
    bridged = outer / GRE(proto=0x6558) / eth() / Dot1Q(vlan=4) / udp4()
    assert decode(LINKTYPE_ETHERNET, bytes(bridged)) == expect_udp4()


def test_erspan_type_2_and_3():
    outer = eth() / IP(src="10.0.0.1", dst="10.0.0.2")
    type2 = outer / GRE() / ERSPAN_II(session_id=1) / eth() / udp4()
    assert decode(LINKTYPE_ETHERNET, bytes(type2)) == expect_udp4()
    type3 = outer / GRE(proto=0x22EB) / ERSPAN_III(session_id=1) / eth() / udp4()
    assert decode(LINKTYPE_ETHERNET, bytes(type3)) == expect_udp4()
    with_subheader = outer / GRE(proto=0x22EB) / ERSPAN_III(o=1) / Raw(b"\0" * 8) / eth() / udp6()
    assert decode(LINKTYPE_ETHERNET, bytes(with_subheader)) == expect_udp6()


def test_pptp_enhanced_gre_carrying_ppp():
    # Version 1 GRE: key (payload length + call id) always present, sequence number here.
    gre = struct.pack(">BBHHHI", 0x30, 0x01, 0x880B, 0, 1, 1)
    ppp = b"\xff\x03\x00\x21"
    outer = IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / Raw(gre + ppp + bytes(udp4()))
    assert decode(LINKTYPE_ETHERNET, bytes(eth() / outer)) == expect_udp4()


@pytest.mark.parametrize(
    "vxlan",
    [
        VXLAN(flags=0x08, vni=100) / eth() / udp4(),  # RFC 7348
        VXLAN(vni=100) / eth() / udp4(),  # scapy writes VXLAN-GPE: next protocol Ethernet
        VXLAN(vni=100) / udp4(),  # VXLAN-GPE, next protocol IPv4
    ],
)
def test_vxlan(vxlan):
    outer = eth() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=49152, dport=4789)
    assert decode(LINKTYPE_ETHERNET, bytes(outer / vxlan)) == expect_udp4()


def test_rtcp_on_port_4789_is_not_vxlan():
    rtcp = b"\x81\xc9\x00\x07" + b"\0" * 28
    frame = bytes(eth() / udp4(rtcp, sport=4788, dport=4789))
    assert decode(LINKTYPE_ETHERNET, frame) == expect_udp4(rtcp, 4788, 4789)


def test_tunnel_nesting_is_bounded():
    packet = udp4()
    for _ in range(MAX_TUNNEL_DEPTH):
        packet = IP(src="10.0.0.1", dst="10.0.0.2") / packet
    assert decode(LINKTYPE_RAW, bytes(packet)) == expect_udp4()
    raises_kind("tunnel.too_deep", LINKTYPE_RAW, bytes(IP(src="10.0.0.1", dst="10.0.0.2") / packet))


# --- malformed frames --------------------------------------------------------------------


def _eth_udp4() -> bytearray:
    return bytearray(bytes(eth() / udp4(b"payload!")))


def _set(frame: bytearray, offset: int, value: bytes) -> bytes:
    frame[offset : offset + len(value)] = value
    return bytes(frame)


@pytest.mark.parametrize(
    ("kind", "linktype", "frame"),
    [
        ("eth.truncated", LINKTYPE_ETHERNET, b"\0" * 13),
        ("vlan.truncated", LINKTYPE_ETHERNET, bytes(eth(type=0x8100)) + b"\0\x01"),
        ("sll.truncated", LINKTYPE_LINUX_SLL, b"\0" * 15),
        ("sll2.truncated", LINKTYPE_LINUX_SLL2, b"\0" * 19),
        ("null.truncated", LINKTYPE_NULL, b"\2\0\0"),
        ("ip.truncated", LINKTYPE_ETHERNET, bytes(eth(type=0x0800)) + b"\x45" + b"\0" * 18),
        ("ip.truncated", LINKTYPE_RAW, b""),
        ("ip.bad_version", LINKTYPE_ETHERNET, _set(_eth_udp4(), 14, b"\x55")),
        ("ip.bad_version", LINKTYPE_RAW, b"\x50" + b"\0" * 30),
        ("ip.bad_header", LINKTYPE_ETHERNET, _set(_eth_udp4(), 14, b"\x44")),
        ("ip.bad_length", LINKTYPE_ETHERNET, _set(_eth_udp4(), 16, b"\x00\x13")),
        ("ip.truncated", LINKTYPE_ETHERNET, _set(_eth_udp4(), 16, b"\x05\xdc")),
        ("udp.truncated", LINKTYPE_ETHERNET, _set(_eth_udp4(), 16, b"\x00\x1b")),
        ("udp.bad_length", LINKTYPE_ETHERNET, _set(_eth_udp4(), 38, b"\x00\x07")),
        ("udp.bad_length", LINKTYPE_ETHERNET, _set(_eth_udp4(), 38, b"\x00\x11")),
        ("ipv6.truncated", LINKTYPE_RAW, bytes(udp6())[:39]),
        ("ipv6.truncated", LINKTYPE_RAW, bytes(udp6())[:-1]),
        ("tcp.truncated", LINKTYPE_RAW, bytes(IP(proto=6, src=A4, dst=B4) / Raw(b"\0" * 19))),
        ("tcp.bad_header", LINKTYPE_RAW, bytes(IP(src=A4, dst=B4) / TCP(dataofs=4))),
        ("tcp.truncated", LINKTYPE_RAW, bytes(IP(src=A4, dst=B4) / TCP(dataofs=15))),
        ("pppoe.truncated", LINKTYPE_ETHERNET, bytes(eth(type=0x8864)) + b"\x11\0\0"),
        ("ppp.truncated", LINKTYPE_PPP, b"\xff\x03"),
        ("mpls.truncated", LINKTYPE_ETHERNET, bytes(eth(type=0x8847)) + b"\0\0\0\0\0\0"),
        ("mpls.truncated", LINKTYPE_ETHERNET, bytes(eth(type=0x8847)) + b"\0\0\x01\0"),
        ("gre.truncated", LINKTYPE_RAW, bytes(IP(src=A4, dst=B4, proto=47) / Raw(b"\0\0"))),
        (
            "gre.truncated",
            LINKTYPE_RAW,
            bytes(IP(src=A4, dst=B4, proto=47) / Raw(b"\xb0\0\x08\0\0\0")),
        ),
    ],
)
def test_malformed_frames_raise_decode_error(kind, linktype, frame):
    raises_kind(kind, linktype, frame)
    with pytest.raises(DecodeError):
        skip_reason(linktype, frame)
    with pytest.raises(DecodeError):
        decode_fragment(linktype, frame)


def test_decode_error_message_says_what_is_wrong():
    with pytest.raises(DecodeError, match=r"UDP length 7 outside 8\.\.16"):
        decode(LINKTYPE_ETHERNET, _set(_eth_udp4(), 38, b"\x00\x07"))


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",
        "192.0.2.255",
        "255.255.255.255",
        "::",
        "::1",
        "2001:db8::a",
        "2001:db8:0:0:1:0:0:1",
        "fe80::1:2:3:4",
        "::ffff:192.0.2.1",
        "::192.0.2.1",
        "::0.1.0.0",
        "::ffff",
        "::1:0:0",
        "::ffff:0:0",
        "2001:db8:1:2:3:4:5:6",
    ],
)
def test_format_ip_matches_inet_ntop(address):
    raw = packed(address)
    family = socket.AF_INET6 if len(raw) == 16 else socket.AF_INET
    assert format_ip(raw) == socket.inet_ntop(family, raw)


def test_format_ip_rejects_other_lengths():
    with pytest.raises(ValueError):
        format_ip(b"\1\2\3")


# --- properties --------------------------------------------------------------------------


def _outcome(function, linktype, frame):
    try:
        return ("ok", function(linktype, frame))
    except DecodeError as error:
        return ("error", error.kind)


@settings(max_examples=2000, deadline=None)
@given(
    linktype=st.sampled_from([*sorted(SUPPORTED_LINKTYPES), 127, 2**16]),
    frame=st.binary(max_size=120),
)
def test_fuzz_random_bytes_decode_or_raise_decode_error(linktype, frame):
    for function in (decode, skip_reason, decode_fragment, decode_tcp):
        kind, value = _outcome(function, linktype, frame)
        if kind == "ok" and function is decode and value is not None:
            proto, src, sport, dst, dport, payload = value
            assert proto in (PROTO_UDP, PROTO_TCP)
            assert len(src) == len(dst) in (4, 16)
            assert 0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF
            assert type(payload) is bytes


_SEEDS = [
    bytes(eth() / udp4()),
    bytes(eth() / Dot1AD() / Dot1Q() / udp6()),
    bytes(eth() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(m=1) / UDP() / Raw(b"x" * 20)),
    bytes(eth() / IP() / TCP() / SIP),
    bytes(eth() / PPPoE() / PPP(proto=0x0021) / udp4()),
    bytes(eth() / MPLS(s=1) / udp4()),
    bytes(eth() / IP() / GRE() / ERSPAN_II() / eth() / udp4()),
    bytes(eth() / IP() / GRE(proto=0x22EB) / ERSPAN_III(o=1) / Raw(b"\0" * 8) / eth() / udp4()),
    bytes(eth() / IP() / UDP(dport=4789) / VXLAN() / eth() / udp4()),
    bytes(eth() / IP() / IP() / IPv6() / udp6()),
]


@settings(max_examples=3000, deadline=None)
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255)),
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_fuzz_mutated_frames_decode_or_raise_decode_error(seed, edits, cut):
    frame = bytearray(seed)
    for position, value in edits:
        frame[position % len(frame)] = value
    frame = bytes(frame[: max(cut, 14)])
    for function in (decode, skip_reason, decode_fragment, decode_tcp):
        _outcome(function, LINKTYPE_ETHERNET, frame)


@settings(max_examples=3000, deadline=None)
@given(
    header=st.binary(min_size=20, max_size=28),
    udp=st.binary(min_size=8, max_size=8),
    payload=st.binary(max_size=40),
    version_ihl=st.sampled_from([0x45, 0x45, 0x46, 0x44, 0x55]),
    proto=st.sampled_from([17, 17, 6, 1]),
    total_delta=st.integers(min_value=-40, max_value=40),
    udp_len_delta=st.integers(min_value=-20, max_value=20),
)
def test_fast_path_agrees_with_general_path(
    header, udp, payload, version_ihl, proto, total_delta, udp_len_delta
):
    ip = bytearray(header[:20])
    ip[0] = version_ihl
    ip[9] = proto
    udp = bytearray(udp)
    struct.pack_into(">H", udp, 4, max(0, min(0xFFFF, 8 + len(payload) + udp_len_delta)))
    body = bytes(udp) + payload
    struct.pack_into(">H", ip, 2, max(0, min(0xFFFF, 20 + len(body) + total_delta)))
    packet = bytes(ip) + body
    # Ethernet takes the inline fast path; Linux cooked capture always the general one.
    ethernet = b"\0" * 12 + b"\x08\x00" + packet
    cooked = b"\0" * 14 + b"\x08\x00" + packet
    assert _outcome(decode, LINKTYPE_ETHERNET, ethernet) == _outcome(
        decode, LINKTYPE_LINUX_SLL, cooked
    )
    tagged = b"\0" * 12 + b"\x81\x00\x00\x2a\x08\x00" + packet
    cooked_tagged = b"\0" * 14 + b"\x81\x00\x00\x2a\x08\x00" + packet
    assert _outcome(decode, LINKTYPE_ETHERNET, tagged) == _outcome(
        decode, LINKTYPE_LINUX_SLL, cooked_tagged
    )
