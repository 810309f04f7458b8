"""The hand-built kernel filter, run through an interpreter of classic BPF."""

from __future__ import annotations

import ctypes.util
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Dot1Q, Ether

from tests.sipcraft import ETHER, rtp_packet, udp_frame
from voiplog.capture.bpf import (
    APP_CALL_FILTERS,
    APP_MEDIA_PORTS,
    UDP_DROP_PORTS,
    FilterError,
    Insn,
    build_filter,
    compile_expression,
    either,
    pack,
    run,
)
from voiplog.flows import looks_like_channel_data
from voiplog.flows._stun import MAGIC_COOKIE

SIP_PORTS = (5060, 5061)
ETH = build_filter(link_header=14, sip_ports=SIP_PORTS, udp_ports=(1813, 3478), tcp_ports=(5349,))
RAW = build_filter(link_header=0, sip_ports=SIP_PORTS, udp_ports=(1813,), snaplen=200)
RTP = rtp_packet(1, 160, 0x1234)
SIP = b"OPTIONS sip:a@b SIP/2.0\r\n\r\n"


def accepted(program, frame: bytes) -> bool:
    return run(program, frame) > 0


@pytest.mark.parametrize(
    "frame",
    [
        udp_frame("10.0.0.1", 5060, "10.0.0.2", 5060, SIP),
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 5061, SIP),
        udp_frame("10.0.0.1", 5061, "10.0.0.2", 40000, SIP),
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 50000, RTP),  # RTP on any port
        udp_frame("10.0.0.1", 40001, "10.0.0.2", 50001, b"\x81\xc8" + bytes(26)),  # RTCP SR
        udp_frame("10.0.0.1", 1813, "10.0.0.2", 40000, b"\x04" + bytes(19)),  # RADIUS acct
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 3478, b"\x00\x01" + bytes(18)),  # STUN
        udp_frame("2001:db8::1", 40000, "2001:db8::2", 50000, RTP),
        udp_frame("2001:db8::1", 40000, "2001:db8::2", 5060, SIP),
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=5060) / SIP),
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=5349, dport=40000)),
        bytes(ETHER / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=5061, dport=1)),
        # What cannot be judged at a fixed offset is passed on to the decoder.
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(sport=1, dport=2)),
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / bytes(40)),
        bytes(
            ETHER / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment() / bytes(20)
        ),
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / bytes(40)),  # GRE
        bytes(ETHER / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"x"),
        bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8847) / bytes(40)),
    ],
)
def test_keeps_what_the_pipeline_reads(frame):
    assert accepted(ETH, frame)


@pytest.mark.parametrize(
    "frame",
    [
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 53, b"\x12\x34" + bytes(30)),  # DNS
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 50000, b"\x40" + bytes(30)),  # version 1
        udp_frame("2001:db8::1", 40000, "2001:db8::2", 50000, b"\x00" + bytes(30)),
        udp_frame("10.0.0.1", 40000, "10.0.0.2", 50000, b""),  # nothing to look at
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443)),
        bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2", proto=1) / (b"\x08\x00" + bytes(30))),
        bytes(ETHER / ARP(hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", pdst="10.0.0.2")),
    ],
)
def test_drops_the_rest(frame):
    assert not accepted(ETH, frame)


def test_ipv4_options_move_the_udp_header():
    frame = bytes(
        ETHER / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 8) / UDP(sport=1, dport=5060)
    )
    assert accepted(ETH, frame)
    frame = bytes(
        ETHER / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 8) / UDP(sport=1, dport=2)
        / bytes(20)
    )  # fmt: skip
    assert not accepted(ETH, frame)


def test_raw_ip_link_and_snaplen():
    sip = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=5060) / (SIP + bytes(400)))
    assert run(RAW, sip) == 200
    dns = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53) / bytes(20))
    assert run(RAW, dns) == 0
    v6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2) / RTP)
    assert run(RAW, v6) > 0
    assert run(RAW, b"\x00" * 40) == 0  # neither IPv4 nor IPv6


def test_either_widens_without_narrowing():
    dns_only = (
        Insn(0x28, 0, 0, 12),  # ldh [12]
        Insn(0x15, 0, 3, 0x0800),  # jeq IPv4
        Insn(0x30, 0, 0, 23),  # ldb [23]
        Insn(0x15, 0, 1, 17),
        Insn(0x06, 0, 0, 65535),
        Insn(0x06, 0, 0, 0),
    )
    both = either(ETH, dns_only)
    dns = udp_frame("10.0.0.1", 40000, "10.0.0.2", 53, b"\x12\x34" + bytes(30))
    tcp = bytes(ETHER / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=443))
    sip = udp_frame("10.0.0.1", 40000, "10.0.0.2", 5060, SIP)
    assert accepted(both, dns) and accepted(both, sip) and not accepted(both, tcp)


def test_packed_for_the_kernel():
    code = pack(ETH)
    assert len(code) == 8 * len(ETH)
    assert struct.unpack_from("=HBBI", code, 0) == (0x28, 0, 0, 12)


def test_unknown_link_header():
    with pytest.raises(FilterError, match="no built-in filter"):
        build_filter(link_header=4, sip_ports=SIP_PORTS)


needs_libpcap = pytest.mark.skipif(ctypes.util.find_library("pcap") is None, reason="no libpcap")


@needs_libpcap
def test_operator_expression_compiled_by_libpcap():
    program = compile_expression("udp port 53", linktype=1)
    dns = udp_frame("10.0.0.1", 40000, "10.0.0.2", 53, b"\x12\x34" + bytes(30))
    assert accepted(program, dns)
    assert accepted(either(ETH, program), dns)


@needs_libpcap
def test_operator_expression_error_names_the_expression():
    with pytest.raises(FilterError, match="cannot compile 'udp prt 53'"):
        compile_expression("udp prt 53", linktype=1)


# -- app-call modes ----------------------------------------------------------

UDP_PORTS = (1813, 3478, 3479, 4789, 5349)  # the configuration's defaults
APP = {
    mode: build_filter(
        link_header=14, sip_ports=SIP_PORTS, udp_ports=UDP_PORTS, tcp_ports=(5349,), app_calls=mode
    )
    for mode in APP_CALL_FILTERS
}
APP_RAW = {
    mode: build_filter(link_header=0, sip_ports=SIP_PORTS, udp_ports=UDP_PORTS, app_calls=mode)
    for mode in APP_CALL_FILTERS
}
V4 = ("10.0.0.1", "192.0.2.9")
V6 = ("2001:db8::1", "2001:db8:1::9")
QUIC_SHORT = b"\x47" + bytes(range(1, 60))  # 0b01..., a 1-RTT packet
QUIC_LONG = b"\xc3\x00\x00\x00\x01\x08" + bytes(range(1, 1200 % 256)) * 4  # Initial, v1
STUN = b"\x00\x01\x00\x00" + MAGIC_COOKIE.to_bytes(4, "big") + bytes(range(12))
CHANNEL_DATA = b"\x40\x01\x00\x0c" + bytes(range(12))  # channel 0x4001, 12 bytes of data
DTLS_HELLO = b"\x16\xfe\xff" + bytes(8) + b"\x00\x20" + bytes(32)  # DTLS 1.0 record, epoch 0
ENCRYPTED = bytes([0xD3, 0x5A, 0x07, 0xE1]) + bytes(range(100, 160))  # no fixed header


def udp(ends: tuple[str, str], sport: int, dport: int, payload: bytes, tags: int = 0) -> bytes:
    """A UDP frame from ends[0] to ends[1], behind `tags` VLAN tags."""
    src, dst = ends
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    l2 = ETHER
    if tags == 2:
        l2 = Ether(src=ETHER.src, dst=ETHER.dst, type=0x88A8) / Dot1Q(vlan=100) / Dot1Q(vlan=7)
    elif tags == 1:
        l2 = ETHER / Dot1Q(vlan=7)
    return bytes(l2 / ip / UDP(sport=sport, dport=dport) / payload)


# (what, frame, kept by off, by signatures, by all-udp)
APP_CASES = [
    ("QUIC 1-RTT to 443", lambda e, t: udp(e, 51000, 443, QUIC_SHORT, t), 0, 0, 0),
    ("QUIC Initial to 443", lambda e, t: udp(e, 51000, 443, QUIC_LONG, t), 0, 0, 0),
    ("QUIC from 443", lambda e, t: udp(e, 443, 51000, QUIC_SHORT, t), 0, 0, 0),
    ("DNS", lambda e, t: udp(e, 40000, 53, b"\x12\x34\x01\x00" + bytes(28), t), 0, 0, 0),
    ("NTP", lambda e, t: udp(e, 123, 123, b"\x23" + bytes(47), t), 0, 0, 0),
    ("STUN with cookie", lambda e, t: udp(e, 40000, 61000, STUN, t), 0, 1, 1),
    ("ChannelData", lambda e, t: udp(e, 40000, 61000, CHANNEL_DATA, t), 0, 1, 1),
    ("ChannelData padded", lambda e, t: udp(e, 40000, 61000, CHANNEL_DATA + b"\0\0", t), 0, 1, 1),
    (
        "ChannelData-like QUIC",
        lambda e, t: udp(e, 40000, 61000, b"\x41" + bytes(30), t),
        0,
        0,
        1,
    ),
    ("DTLS ClientHello", lambda e, t: udp(e, 40000, 61000, DTLS_HELLO, t), 0, 1, 1),
    (
        "TLS-versioned record",
        lambda e, t: udp(e, 40000, 61000, b"\x16\x03\x03" + bytes(40), t),
        0,
        0,
        1,
    ),
    ("Zoom media to 8801", lambda e, t: udp(e, 52000, 8801, b"\x05" + ENCRYPTED, t), 0, 1, 1),
    ("Zoom media from 8810", lambda e, t: udp(e, 8810, 52000, ENCRYPTED, t), 0, 1, 1),
    ("Telegram to 1400", lambda e, t: udp(e, 40000, 1400, ENCRYPTED, t), 0, 1, 1),
    ("Telegram reflector 598", lambda e, t: udp(e, 40000, 598, ENCRYPTED, t), 0, 1, 1),
    ("Viber 7985", lambda e, t: udp(e, 7985, 40000, ENCRYPTED, t), 0, 1, 1),
    ("Meet 19305", lambda e, t: udp(e, 40000, 19305, ENCRYPTED, t), 0, 1, 1),
    ("short keepalive on 8801", lambda e, t: udp(e, 40000, 8801, b"\x01\x02", t), 0, 1, 1),
    ("unlisted high port", lambda e, t: udp(e, 40000, 41000, ENCRYPTED, t), 0, 0, 1),
    ("RTP on any port", lambda e, t: udp(e, 40000, 41000, RTP, t), 1, 1, 1),
    ("SIP", lambda e, t: udp(e, 40000, 5060, SIP, t), 1, 1, 1),
    ("configured port", lambda e, t: udp(e, 40000, 4789, ENCRYPTED, t), 1, 1, 1),
]


@pytest.mark.parametrize("ends", [V4, V6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize(("what", "frame", "off", "signatures", "all_udp"), APP_CASES)
def test_app_call_modes(what, frame, off, signatures, all_udp, ends):
    for tags in (0, 1, 2):
        packet = frame(ends, tags)
        got = {mode: accepted(APP[mode], packet) for mode in APP_CALL_FILTERS}
        want = {"signatures": bool(signatures), "all-udp": bool(all_udp)}
        # "off" is today's filter: it judges untagged frames only.
        want["off"] = bool(off) if tags == 0 else True
        assert got == want, f"{what}, {tags} VLAN tags"


@pytest.mark.parametrize(("what", "frame", "off", "signatures", "all_udp"), APP_CASES)
def test_app_call_modes_on_raw_ip(what, frame, off, signatures, all_udp):
    packet = frame(V4, 0)[14:]
    got = [accepted(APP_RAW[mode], packet) for mode in APP_CALL_FILTERS]
    assert got == [bool(off), bool(signatures), bool(all_udp)], what


def test_off_is_the_filter_without_app_calls():
    assert APP["off"] == build_filter(
        link_header=14, sip_ports=SIP_PORTS, udp_ports=UDP_PORTS, tcp_ports=(5349,)
    )


@pytest.mark.parametrize("mode", ["signatures", "all-udp"])
def test_app_call_modes_keep_the_rest_of_the_filter(mode):
    program = APP[mode]
    tagged_options = bytes(
        ETHER / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01" * 8)
        / UDP(sport=40000, dport=61000) / STUN
    )  # fmt: skip
    assert accepted(program, tagged_options)
    tagged_fragment = bytes(
        ETHER / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / UDP(dport=443)
    )
    assert accepted(program, tagged_fragment)
    three_tags = bytes(ETHER / Dot1Q(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP() / UDP())
    assert accepted(program, three_tags)  # beyond what the filter reads: passed on
    mpls = bytes(ETHER / Dot1Q(vlan=7, type=0x8847) / bytes(40))
    assert accepted(program, mpls)
    tagged_arp = bytes(ETHER / Dot1Q(vlan=7) / ARP(psrc="10.0.0.1", pdst="10.0.0.2"))
    assert not accepted(program, tagged_arp)
    tls = bytes(ETHER / Dot1Q(vlan=7) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=443))
    assert not accepted(program, tls)
    sip_tcp = bytes(ETHER / Dot1Q(vlan=7) / IPv6(src="::1", dst="::2") / TCP(dport=5060) / SIP)
    assert accepted(program, sip_tcp)


def test_every_listed_app_port_is_kept_and_every_drop_port_dropped():
    for ranges in APP_MEDIA_PORTS.values():
        for first, last in ranges:
            for port in (first, last):
                assert accepted(APP["signatures"], udp(V4, 40000, port, ENCRYPTED)), port
                assert accepted(APP["signatures"], udp(V6, port, 40000, ENCRYPTED)), port
    for port in UDP_DROP_PORTS:
        for mode in ("signatures", "all-udp"):
            assert not accepted(APP[mode], udp(V4, 40000, port, ENCRYPTED)), (mode, port)
            assert not accepted(APP[mode], udp(V4, port, 40000, STUN)), (mode, port)


def test_drop_list_comes_after_sip_configured_ports_and_rtp():
    # The order the module states: what SIP, a configured port or the RTP rule keeps
    # is kept whatever its port.
    quic_on_configured = build_filter(
        link_header=14, sip_ports=SIP_PORTS, udp_ports=(443,), app_calls="signatures"
    )
    assert accepted(quic_on_configured, udp(V4, 51000, 443, QUIC_SHORT))
    assert accepted(APP["signatures"], udp(V4, 40000, 53, b"\x80\x00" + bytes(30)))


def test_udp_drop_ports_replace_the_default_list():
    keep_quic = build_filter(
        link_header=14, sip_ports=SIP_PORTS, app_calls="all-udp", udp_drop_ports=()
    )
    assert accepted(keep_quic, udp(V4, 51000, 443, QUIC_SHORT))
    no_zoom = build_filter(
        link_header=14, sip_ports=SIP_PORTS, app_calls="signatures", udp_drop_ports=(8801,)
    )
    assert not accepted(no_zoom, udp(V4, 52000, 8801, ENCRYPTED))
    assert accepted(no_zoom, udp(V4, 40000, 61000, STUN))


def test_unknown_app_call_mode():
    with pytest.raises(FilterError, match="'udp' is not one of off, signatures, all-udp"):
        build_filter(link_header=14, sip_ports=SIP_PORTS, app_calls="udp")


def _reference(mode: str, sport: int, dport: int, payload: bytes) -> bool:
    """What the module doc says each mode keeps of one untagged UDP datagram."""
    ports = (sport, dport)
    if set(ports) & {*SIP_PORTS, *UDP_PORTS}:
        return True
    if not payload:
        return False
    if payload[0] >> 6 == 2:
        return True
    if mode == "off" or set(ports) & set(UDP_DROP_PORTS):
        return False
    if mode == "all-udp":
        return True
    listed = [r for ranges in APP_MEDIA_PORTS.values() for r in ranges]
    if any(first <= port <= last for port in ports for first, last in listed):
        return True
    if 0x40 <= payload[0] <= 0x4F:
        return looks_like_channel_data(payload)
    if payload[0] < 0x40 and len(payload) >= 8:
        if payload[4:8] == MAGIC_COOKIE.to_bytes(4, "big"):
            return True
        return 20 <= payload[0] <= 25 and payload[1:3] in (b"\xfe\xff", b"\xfe\xfd", b"\xfe\xfc")
    return False


@settings(max_examples=400, deadline=None)
@given(
    mode=st.sampled_from(APP_CALL_FILTERS),
    sport=st.one_of(st.integers(0, 65535), st.sampled_from([443, 53, 3478, 8801, 1400, 598])),
    dport=st.one_of(st.integers(0, 65535), st.sampled_from([443, 5060, 19302, 50059, 59234])),
    payload=st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda head, rest: head + rest,
            st.sampled_from([STUN[:8], b"\x16\xfe\xfd", b"\x40\x00\x00\x04", b"\x4f\xff\x00\x01"]),
            st.binary(max_size=12),
        ),
    ),
    v6=st.booleans(),
)
def test_matches_the_reference(mode, sport, dport, payload, v6):
    packet = udp(V6 if v6 else V4, sport, dport, payload)
    assert accepted(APP[mode], packet) == _reference(mode, sport, dport, payload)
