"""IP fragment reassembly: order, duplicates, overlaps, bounds and timeouts."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from voiplog.packet import LINKTYPE_ETHERNET, IPFragment, decode_fragment, decode_transport
from voiplog.packet.ipfrag import FragmentReassembler, FragmentSettings

SIP = b"INVITE sip:bob@example.com SIP/2.0\r\n" + b"X-Pad: " + b"a" * 3000 + b"\r\n\r\n"
SRC, DST = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def _fragments4(payload: bytes = SIP, size: int = 1000, ident: int = 7) -> list[IPFragment]:
    packet = IP(src="10.0.0.1", dst="10.0.0.2", id=ident) / UDP(sport=5060, dport=5060) / payload
    return [decode_fragment(LINKTYPE_ETHERNET, bytes(Ether() / f)) for f in fragment(packet, size)]


class Weirds(list):
    def __call__(self, kind: str) -> None:
        self.append(kind)


def _reassembler(**settings) -> tuple[FragmentReassembler, Weirds]:
    weirds = Weirds()
    return FragmentReassembler(FragmentSettings(**settings), weirds), weirds


def _feed(reassembler, fragments, ts=0):
    results = [reassembler.add(f, ts) for f in fragments]
    done = [r for r in results if r is not None]
    return done


def _udp_payload(fragment: IPFragment, data: bytes) -> bytes:
    result = decode_transport(fragment.proto, fragment.src_ip, fragment.dst_ip, data)
    return result[5]


@pytest.mark.parametrize("order", ["in_order", "reversed", "shuffled"])
def test_ipv4_datagram_is_rebuilt_in_any_order(order):
    fragments = _fragments4()
    assert len(fragments) == 4
    if order == "reversed":
        fragments.reverse()
    elif order == "shuffled":
        fragments = [fragments[2], fragments[0], fragments[3], fragments[1]]
    reassembler, weirds = _reassembler()
    (data,) = _feed(reassembler, fragments)
    assert _udp_payload(fragments[0], data) == SIP
    assert weirds == []
    assert reassembler.pending == 0 and reassembler.held_bytes == 0


def test_ipv6_datagram_is_rebuilt():
    packet = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=0xABCDEF01)
        / UDP(sport=5060, dport=5060)
        / SIP
    )
    fragments = [
        decode_fragment(LINKTYPE_ETHERNET, bytes(Ether() / f)) for f in fragment6(packet, 1280)
    ]
    reassembler, weirds = _reassembler()
    (data,) = _feed(reassembler, reversed(fragments))
    assert _udp_payload(fragments[0], data) == SIP
    assert weirds == []


def test_exact_duplicate_fragment_is_ignored_and_counted():
    fragments = _fragments4()
    reassembler, weirds = _reassembler()
    (data,) = _feed(reassembler, [fragments[0], fragments[1], fragments[1], *fragments[2:]])
    assert _udp_payload(fragments[0], data) == SIP
    assert weirds == ["ip.fragment_duplicate"]


def _forged(original: IPFragment, offset: int, data: bytes, more: bool = True) -> IPFragment:
    return IPFragment(
        original.version,
        original.src_ip,
        original.dst_ip,
        original.ident,
        original.proto,
        offset,
        more,
        data,
    )


def test_overlapping_fragment_with_other_bytes_discards_the_datagram():
    fragments = _fragments4()
    # Rewrites the UDP header and the start of the SIP message (the evasion trick).
    evil = _forged(fragments[0], 0, b"\0" * 8 + b"BYE sip:x" + b"\0" * 15)
    reassembler, weirds = _reassembler()
    assert _feed(reassembler, [fragments[0], evil, *fragments[1:]]) == []
    assert weirds == ["ip.fragment_overlap"]
    # Its key is remembered: a retransmitted fragment cannot restart it.
    assert _feed(reassembler, fragments) == []
    assert reassembler.held_bytes == 0
    reassembler.expire(10**9)
    assert reassembler.pending == 0
    assert weirds == ["ip.fragment_overlap"]  # a discarded datagram times out silently


def test_partial_overlap_is_an_overlap_even_with_equal_bytes():
    fragments = _fragments4()
    second = fragments[1]
    shifted = _forged(second, second.offset - 8, fragments[0].data[-8:] + second.data[:-8])
    reassembler, weirds = _reassembler()
    assert _feed(reassembler, [fragments[0], shifted, *fragments[1:]]) == []
    assert weirds == ["ip.fragment_overlap"]


def test_non_last_fragment_must_carry_a_multiple_of_eight_bytes():
    fragments = _fragments4()
    reassembler, weirds = _reassembler()
    assert reassembler.add(_forged(fragments[0], 0, b"x" * 13), 0) is None
    assert reassembler.add(_forged(fragments[0], 0, b""), 0) is None
    assert weirds == ["ip.fragment_bad_length", "ip.fragment_bad_length"]
    assert reassembler.pending == 0


def test_fragment_past_65535_bytes_is_refused():
    reassembler, weirds = _reassembler()
    f = _fragments4()[0]
    assert reassembler.add(_forged(f, 65528, b"x" * 16, more=False), 0) is None
    assert weirds == ["ip.fragment_too_big"]


def test_two_last_fragments_disagreeing_on_the_length():
    fragments = _fragments4()
    last = fragments[-1]
    other_last = _forged(last, last.offset, last.data + b"x" * 8, more=False)
    reassembler, weirds = _reassembler()
    assert _feed(reassembler, [last, other_last, *fragments[:-1]]) == []
    assert weirds == ["ip.fragment_inconsistent"]


def test_fragment_beyond_the_known_end():
    fragments = _fragments4()
    last = fragments[-1]
    beyond = _forged(last, last.offset + 64, b"y" * 8)
    reassembler, weirds = _reassembler()
    assert _feed(reassembler, [last, beyond]) == []
    assert weirds == ["ip.fragment_inconsistent"]


def test_last_fragment_before_pieces_already_held():
    fragments = _fragments4()
    early_end = _forged(fragments[0], 8, b"z" * 8, more=False)
    reassembler, weirds = _reassembler()
    assert _feed(reassembler, [fragments[2], early_end]) == []
    assert weirds == ["ip.fragment_inconsistent"]


def test_too_many_fragments_discards_the_datagram():
    payload = b"p" * 400
    fragments = _fragments4(payload, size=8)
    assert len(fragments) > 10
    reassembler, weirds = _reassembler(max_fragments=10)
    assert _feed(reassembler, fragments) == []
    assert weirds == ["ip.fragment_too_many"]
    assert reassembler.held_bytes == 0


def test_tiny_fragments_within_the_limit_reassemble():
    payload = b"p" * 200
    fragments = _fragments4(payload, size=8)
    reassembler, weirds = _reassembler()
    (data,) = _feed(reassembler, fragments)
    assert _udp_payload(fragments[0], data) == payload
    assert weirds == []


def test_incomplete_datagram_times_out_on_packet_time():
    fragments = _fragments4()
    reassembler, weirds = _reassembler(timeout_us=30_000_000)
    _feed(reassembler, fragments[:2], ts=1_000_000)
    reassembler.expire(30_999_999)
    assert reassembler.pending == 1
    reassembler.expire(31_000_000)
    assert reassembler.pending == 0 and reassembler.held_bytes == 0
    assert weirds == ["ip.fragment_timeout"]
    # The late remainder alone does not complete anything.
    assert _feed(reassembler, fragments[2:], ts=32_000_000) == []


def test_table_is_bounded_by_datagram_count():
    reassembler, weirds = _reassembler(max_datagrams=3)
    for ident in range(5):
        reassembler.add(_fragments4(ident=ident)[0], ident)
    assert reassembler.pending == 3
    assert weirds == ["ip.fragment_evicted"] * 2
    # The newest survive: datagram 4 still completes.
    (data,) = _feed(reassembler, _fragments4(ident=4)[1:])
    assert SIP in data


def test_table_is_bounded_by_bytes():
    reassembler, weirds = _reassembler(max_bytes=2500)
    for ident in range(4):
        reassembler.add(_fragments4(ident=ident)[0], ident)
    assert reassembler.held_bytes <= 2500
    assert weirds.count("ip.fragment_evicted") == 2


def test_single_last_fragment_at_offset_zero_is_a_datagram():
    f = _fragments4()[0]
    reassembler, _ = _reassembler()
    assert reassembler.add(_forged(f, 0, b"whole", more=False), 0) == b"whole"
