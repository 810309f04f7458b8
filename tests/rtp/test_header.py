"""Recognising RTP and RTCP in UDP payloads."""

import struct

from hypothesis import given
from hypothesis import strategies as st
from scapy.contrib.stun import STUN
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.rtp import RTP

from tests.rtp._packets import rtcp, rtp, sdes, sender_report
from voiplog.rtp import RTP_OF_FLOW, is_rtp_of_flow, looks_like_rtcp, looks_like_rtp

DNS_QUERY = bytes(DNS(id=0x1234, qd=DNSQR(qname="example.com")))
STUN_BINDING = bytes(STUN(stun_message_type="Binding request", transaction_id=1 << 90))


class TestLooksLikeRtp:
    def test_plain_g711_packet(self):
        packet = rtp(1, 160)
        assert len(packet) == 172
        assert looks_like_rtp(packet)

    def test_packet_built_by_scapy(self):
        header = RTP(version=2, payload_type=8, sequence=5, timestamp=160, sourcesync=7)
        assert looks_like_rtp(bytes(header) + bytes(160))

    def test_header_only_packet(self):
        assert looks_like_rtp(rtp(1, 160, payload=b""))

    def test_csrcs_extension_marker_and_padding(self):
        packet = rtp(1, 160, 96, marker=True, csrcs=(1, 2, 3), extension=bytes(8), padding=4)
        assert looks_like_rtp(packet)

    def test_rejects_short_packets(self):
        assert not looks_like_rtp(b"")
        assert not looks_like_rtp(rtp(1, 160)[:11])

    def test_rejects_other_versions(self):
        packet = bytearray(rtp(1, 160))
        for version in (0, 1, 3):
            packet[0] = (version << 6) | (packet[0] & 0x3F)
            assert not looks_like_rtp(bytes(packet))

    def test_rejects_csrc_list_longer_than_packet(self):
        assert not looks_like_rtp(rtp(1, 160, csrcs=(1, 2), payload=b"")[:-4])

    def test_rejects_extension_longer_than_packet(self):
        packet = rtp(1, 160, extension=bytes(8), payload=b"")
        assert looks_like_rtp(packet)
        assert not looks_like_rtp(packet[:-1])
        assert not looks_like_rtp(packet[:13])

    def test_rejects_impossible_padding(self):
        packet = bytearray(rtp(1, 160, payload=bytes(4), padding=4))
        assert looks_like_rtp(bytes(packet))
        packet[-1] = 0
        assert not looks_like_rtp(bytes(packet))
        packet[-1] = 9  # more than the 8 bytes after the header
        assert not looks_like_rtp(bytes(packet))

    def test_rejects_rtcp(self):
        assert not looks_like_rtp(sender_report())
        assert not looks_like_rtp(sender_report() + sdes())
        for packet_type in range(200, 205):
            assert not looks_like_rtp(rtcp(packet_type, bytes(24)))

    def test_accepts_rtp_payload_types_next_to_the_rtcp_range(self):
        assert looks_like_rtp(rtp(1, 160, 71))
        assert looks_like_rtp(rtp(1, 160, 77))
        assert not looks_like_rtp(rtp(1, 160, 72, marker=False))

    def test_rejects_dns_and_stun(self):
        assert not looks_like_rtp(DNS_QUERY)
        assert not looks_like_rtp(STUN_BINDING)


class TestLooksLikeRtcp:
    def test_sender_report(self):
        assert len(sender_report()) == 52
        assert looks_like_rtcp(sender_report())

    def test_compound_packet(self):
        assert looks_like_rtcp(sender_report() + sdes())

    def test_empty_receiver_report_and_every_type(self):
        for packet_type in range(200, 208):
            assert looks_like_rtcp(rtcp(packet_type, struct.pack(">I", 0x11223344)))

    def test_rejects_length_fields_that_do_not_add_up(self):
        packet = sender_report() + sdes()
        assert not looks_like_rtcp(packet[:-4])
        assert not looks_like_rtcp(packet + bytes(4))
        assert not looks_like_rtcp(packet + b"\x00")

    def test_rejects_wrong_version_in_a_later_packet(self):
        second = bytearray(sdes())
        second[0] &= 0x3F
        assert not looks_like_rtcp(sender_report() + bytes(second))

    def test_rejects_types_outside_200_to_207(self):
        assert not looks_like_rtcp(rtcp(199, bytes(4)))
        assert not looks_like_rtcp(rtcp(208, bytes(4)))

    def test_rejects_rtp_dns_stun(self):
        assert not looks_like_rtcp(rtp(1, 160))
        assert not looks_like_rtcp(rtp(1, 160, 8, marker=True))
        assert not looks_like_rtcp(DNS_QUERY)
        assert not looks_like_rtcp(STUN_BINDING)

    def test_rejects_short_packets(self):
        assert not looks_like_rtcp(b"")
        assert not looks_like_rtcp(sender_report()[:7])


@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data):
    assert looks_like_rtp(data) in (True, False)
    assert looks_like_rtcp(data) in (True, False)


@given(st.binary(min_size=2, max_size=120))
def test_version_2_bytes_never_raise(data):
    # Random data rarely starts with version 2; force it so the length checks run.
    data = bytes([0x80 | (data[0] & 0x3F)]) + data[1:]
    assert looks_like_rtp(data) in (True, False)
    assert looks_like_rtcp(data) in (True, False)


def test_feedback_packets_can_pass_both_checks():
    # Generic NACK (205) reads as RTP with marker and payload type 77.
    nack = rtcp(205, struct.pack(">III", 0x11223344, 0x55667788, 0x00010000), count=1)
    assert looks_like_rtcp(nack)
    assert looks_like_rtp(nack)


class TestIsRtpOfFlow:
    def test_version_2_media_payload_types(self):
        assert is_rtp_of_flow(0x80, 0)
        assert is_rtp_of_flow(0x80, 0x80 | 8)  # marker
        assert is_rtp_of_flow(0x90, 111)  # extension bit
        assert is_rtp_of_flow(0x80, 71) and is_rtp_of_flow(0x80, 80)

    def test_other_versions_and_multiplexed_rtcp_are_refused(self):
        for first in (0x00, 0x40, 0xC0):
            assert not is_rtp_of_flow(first, 0)
        for second in range(200, 208):  # SR to XR
            assert not is_rtp_of_flow(0x80, second)
            assert not is_rtp_of_flow(0x80, second & 0x7F)  # the same types without marker

    def test_the_fast_path_table_is_the_same_test(self):
        assert len(RTP_OF_FLOW) == 0x10000
        for word in range(0x10000):
            assert bool(RTP_OF_FLOW[word]) == is_rtp_of_flow(word >> 8, word & 0xFF)
