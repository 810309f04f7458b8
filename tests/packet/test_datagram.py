"""The decoded datagram types and the fast Ethernet/IPv4/UDP reader, held to the general walker."""

from __future__ import annotations

import struct

from hypothesis import event, given, settings
from hypothesis import strategies as st

from voiplog.packet import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    NO_UDP,
    Datagram,
    DecodeError,
    TcpSegment,
    decode,
    decode_tcp,
    flow_key,
    read_udp,
)

SRC = bytes([192, 0, 2, 10])
DST = bytes([198, 51, 100, 20])


def ipv4(proto: int, body: bytes, *, flags_fragment: int = 0x4000, ihl: int = 5) -> bytes:
    header = struct.pack(
        ">BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(body), 1, flags_fragment, 64, proto, 0,
        SRC, DST,
    )  # fmt: skip
    return header + bytes(4 * ihl - 20) + body


def udp(payload: bytes, sport: int = 4000, dport: int = 5004) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def ethernet(packet: bytes, *, tagged: bool = False) -> bytes:
    tag = b"\x81\x00\x00\x2a" if tagged else b""
    return b"\x02\0\0\0\0\x0b\x02\0\0\0\0\x0a" + tag + b"\x08\x00" + packet


RTP = bytes([0x80, 0x00]) + bytes(10) + bytes(160)


def test_decode_gives_named_datagrams():
    datagram = decode(LINKTYPE_ETHERNET, ethernet(ipv4(17, udp(RTP))))
    assert type(datagram) is Datagram
    assert datagram == (17, SRC, 4000, DST, 5004, RTP)
    assert (datagram.src_ip, datagram.dst_port, datagram.payload) == (SRC, 5004, RTP)


def test_decode_tcp_gives_named_segments():
    header = struct.pack(">HHIIBBHHH", 5060, 5061, 7, 9, 5 << 4, 0x18, 1024, 0, 0)
    frame = ethernet(ipv4(6, header + b"INVITE"))
    segment = decode_tcp(LINKTYPE_ETHERNET, frame)
    assert type(segment) is TcpSegment
    assert segment[:6] == decode(LINKTYPE_ETHERNET, frame)
    assert (segment.seq, segment.ack, segment.flags) == (7, 9, 0x18)
    assert type(decode(LINKTYPE_ETHERNET, frame)) is Datagram


def test_read_udp_offsets_and_head():
    frame = ethernet(ipv4(17, udp(RTP)))
    u, head = read_udp(frame, 12)
    assert u == 34 and head == 0x8000
    assert frame[u - 8 : u + 4] == flow_key(SRC, 4000, DST, 5004)
    tagged = ethernet(ipv4(17, udp(RTP)), tagged=True)
    assert read_udp(tagged, 12) == (38, 0x8000)


def test_read_udp_refuses_what_it_leaves_to_the_general_walker():
    assert read_udp(ethernet(ipv4(17, udp(RTP), ihl=6))) == NO_UDP  # IP options
    assert read_udp(ethernet(ipv4(17, udp(RTP), flags_fragment=0x2000))) == NO_UDP
    assert read_udp(ethernet(ipv4(6, udp(RTP)))) == NO_UDP
    assert read_udp(ethernet(ipv4(17, udp(RTP, dport=4789)))) == NO_UDP  # maybe VXLAN
    assert read_udp(ethernet(ipv4(17, udp(RTP)))[:-1]) == NO_UDP  # cut short
    assert read_udp(ethernet(ipv4(17, udp(b"x" * 11))), 12) == NO_UDP
    assert read_udp(ethernet(ipv4(17, udp(b"x" * 12))), 12)[0] == 34


def _general(frame: bytes, tagged: bool):
    """The general walker's reading of the same IP packet (Linux cooked capture
    never takes the fast path)."""
    cooked = b"\0" * 14 + (b"\x81\x00\x00\x2a" if tagged else b"") + b"\x08\x00"
    try:
        return decode(LINKTYPE_LINUX_SLL, cooked + frame[18 if tagged else 14 :])
    except DecodeError as error:
        return error.kind


@settings(max_examples=3000, deadline=None)
@given(
    header=st.binary(min_size=20, max_size=20),
    ports=st.sampled_from([b"\x0f\xa0\x13\x8c", b"\x13\xc4\x12\xb5", b"\x12\xb5\x12\xb5"]),
    checksum=st.binary(min_size=2, max_size=2),
    payload=st.binary(max_size=40),
    version_ihl=st.sampled_from([0x45] * 6 + [0x46, 0x44, 0x55]),
    proto=st.sampled_from([17] * 6 + [6, 1]),
    fragment=st.sampled_from([0, 0x4000, 0x8000, 0xC000] * 2 + [0x2000, 0x0001, 0x5FFF]),
    total_delta=st.one_of(st.just(0), st.integers(min_value=-40, max_value=40)),
    udp_len_delta=st.one_of(st.just(0), st.integers(min_value=-20, max_value=20)),
    padding=st.integers(min_value=0, max_value=20),
    tagged=st.booleans(),
    min_payload=st.sampled_from([0, 2, 12]),
)
def test_read_udp_agrees_with_the_general_walker(
    header, ports, checksum, payload, version_ihl, proto, fragment, total_delta,
    udp_len_delta, padding, tagged, min_payload,
):  # fmt: skip
    ip = bytearray(header)
    ip[0] = version_ihl
    ip[9] = proto
    struct.pack_into(">H", ip, 6, fragment)
    length = max(0, min(0xFFFF, 8 + len(payload) + udp_len_delta))
    body = ports + struct.pack(">H", length) + checksum + payload
    struct.pack_into(">H", ip, 2, max(0, min(0xFFFF, 20 + len(body) + total_delta)))
    frame = ethernet(bytes(ip) + body, tagged=tagged) + bytes(padding)
    u, head = read_udp(frame, min_payload)
    event("taken by the fast reader" if u else "left to the general walker")
    if not u:
        return  # the general walker decides, whatever it says
    general = _general(frame, tagged)
    size = frame[u + 4] << 8 | frame[u + 5]
    assert general == (
        17,
        frame[u - 8 : u - 4],
        frame[u] << 8 | frame[u + 1],
        frame[u - 4 : u],
        frame[u + 2] << 8 | frame[u + 3],
        frame[u + 8 : u + size],
    )
    assert len(general.payload) >= min_payload
    if min_payload >= 2:
        assert head == general.payload[0] << 8 | general.payload[1]
    # `decode` takes the same frame by its fast path to the same datagram.
    assert decode(LINKTYPE_ETHERNET, frame) == general
