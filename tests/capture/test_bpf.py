"""The hand-built kernel filter, run through an interpreter of classic BPF."""

from __future__ import annotations

import ctypes.util
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Dot1Q, Ether

from tests.sipcraft import ETHER, rtp_packet, udp_frame
from voiplog.capture.bpf import (
    FilterError,
    Insn,
    build_filter,
    compile_expression,
    either,
    pack,
    run,
)

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
