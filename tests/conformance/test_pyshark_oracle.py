"""Wireshark as an independent oracle of voiplog's decoding, packet by packet.

For several corpus captures, every frame that tshark dissects as SIP over UDP
must decode in voiplog to the same addresses and ports, and parse to the same
method or status code and Call-ID; and voiplog must find SIP in no other frame.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from voiplog.capture import open_capture
from voiplog.errors import ParseError
from voiplog.packet import PROTO_UDP, decode, format_ip
from voiplog.sip import looks_like_sip, parse_message

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
CAPTURES = [
    "nDPI__sip.pcap",  # Ethernet, REGISTER and INVITE flows
    "sngrep__aaa.pcap",  # Ethernet, auth challenges, CANCEL
    "heplify__sip_ipv6.pcap",  # IPv6
    "zeek__sip-long-request-response-paths.pcap",  # raw IPv4 link type
    "BruteShark__h263-over-rtp.pcap",  # BSD loopback link type
    "nDPI__sip_hello.pcapng",  # pcapng
    "ipfixprobe__sip-sample.pcap",  # OPTIONS, REGISTER, INVITE with 401
    "BruteShark__SIP_DTMF2.pcap",  # REGISTER, refused and answered calls
    "PcapPlusPlus__sip_non_default_port.pcap",  # SIP on a non-standard port
    "BruteShark__sip-rtp-g711.pcap",  # SIP with RTP
]

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.tshark,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus absent"),
    pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed"),
]


def wireshark_view(path: Path) -> dict[int, tuple]:
    pyshark = pytest.importorskip("pyshark")
    view = {}
    capture = pyshark.FileCapture(str(path), display_filter="sip && udp", keep_packets=False)
    completed = False
    try:
        for pkt in capture:
            if "ICMP" in pkt or "ICMPV6" in pkt:
                continue  # SIP quoted inside an ICMP error is not a SIP message
            ip = pkt.ipv6 if hasattr(pkt, "ipv6") else pkt.ip
            sip = pkt.sip
            method = getattr(sip, "method", None)
            status = getattr(sip, "status_code", None)
            view[int(pkt.number)] = (
                str(ip.src),
                int(pkt.udp.srcport),
                str(ip.dst),
                int(pkt.udp.dstport),
                str(method) if method is not None and status is None else None,
                int(status) if status is not None else None,
                str(sip.call_id),
            )
        completed = True
    finally:
        try:
            capture.close()
        except pyshark.capture.capture.TSharkCrashException:
            # pyshark kills tshark on close and sometimes reads the kill as a
            # crash; after a complete read that is noise. A real crash cuts
            # the packet list short, and the comparison below then fails.
            if not completed:
                raise
    return view


def voiplog_view(path: Path, sip_ports=(5060,)) -> dict[int, tuple]:
    view = {}
    with open_capture(path) as reader:
        for number, (_ts, linktype, frame) in enumerate(reader, start=1):
            try:
                datagram = decode(linktype, frame)
            except ParseError:
                continue
            if datagram is None or datagram[0] != PROTO_UDP:
                continue
            _, src, sport, dst, dport, payload = datagram
            if not (sport in sip_ports or dport in sip_ports or looks_like_sip(payload)):
                continue
            try:
                msg = parse_message(payload)
            except ParseError:
                continue
            view[number] = (
                format_ip(src),
                sport,
                format_ip(dst),
                dport,
                msg.method,
                msg.status,
                msg.call_id,
            )
    return view


@pytest.mark.parametrize("name", CAPTURES)
def test_decode_agrees_with_wireshark(name):
    path = CORPUS / "pcaps" / name
    theirs = wireshark_view(path)
    ours = voiplog_view(path)
    assert theirs, f"tshark found no SIP in {name}"
    assert ours == theirs
