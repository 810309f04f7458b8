"""STUN/TURN, DTLS and TLS hello parsers: what they read, and what they refuse."""

from __future__ import annotations

import pytest

from tests.flows import _craft as c
from voiplog.flows import (
    DtlsParseError,
    StunClass,
    StunParseError,
    TlsParseError,
    looks_like_channel_data,
    looks_like_dtls,
    looks_like_srtcp,
    looks_like_stun,
    looks_like_tls,
    parse_channel_data,
    parse_client_hello,
    parse_dtls,
    parse_stun,
    says_sip,
)
from voiplog.flows._tls import Hello

TXID = bytes(range(1, 13))


def test_binding_response_gives_xor_mapped_address_and_software():
    msg = parse_stun(
        c.stun(
            0x001,
            2,
            [(0x0020, c.xor_address("198.51.100.7", 40000)), (0x8022, b"pjnath-2.13")],
            TXID,
        )
    )
    assert msg.method == 0x001 and msg.message_class is StunClass.SUCCESS
    assert msg.transaction_id == TXID
    assert msg.mapped_address == ("198.51.100.7", 40000)
    assert msg.software == "pjnath-2.13"
    assert not msg.ice


def test_ipv6_xor_address_uses_the_transaction_id():
    attr = c.xor_address("2001:db8::7", 3478, TXID)
    msg = parse_stun(c.stun(0x001, 2, [(0x0020, attr)], TXID))
    assert msg.mapped_address == ("2001:db8::7", 3478)


def test_ice_binding_request_is_marked_ice():
    msg = parse_stun(
        c.stun(0x001, 0, [(0x0006, b"abcd:efgh"), (0x0024, bytes(4)), (0x802A, bytes(8))])
    )
    assert msg.message_class is StunClass.REQUEST and msg.ice


def test_turn_channel_bind_reads_channel_and_peer():
    msg = parse_stun(
        c.stun(
            0x009, 0, [(0x000C, b"\x40\x01\x00\x00"), (0x0012, c.xor_address("192.0.2.9", 5004))]
        )
    )
    assert msg.method == 0x009 and msg.channel == 0x4001
    assert msg.peer_address == ("192.0.2.9", 5004)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"\x00\x01\x00\x00" + bytes(4) + TXID, "stun.no_cookie"),
        (c.stun(1, 0)[:19], "stun.short"),
        (c.stun(1, 0, [(0x8022, b"x")]) + b"\x00\x00\x00\x00", "stun.bad_length"),
        (bytes([0x80]) + c.stun(1, 0)[1:], "stun.bad_type"),
        (c.stun(1, 2, [(0x0020, b"\x00\x03\x00\x00\x00\x00\x00\x00")]), "stun.bad_address"),
    ],
)
def test_stun_refuses_with_its_own_error(payload, kind):
    with pytest.raises(StunParseError) as info:
        parse_stun(payload)
    assert info.value.kind == kind


def test_attribute_running_past_the_message_is_refused():
    good = c.stun(1, 0, [(0x8022, b"abcd")])
    bad = good[:22] + b"\x00\x40" + good[24:]  # attribute length 64 in a 28-byte message
    with pytest.raises(StunParseError, match="runs past"):
        parse_stun(bad)


def test_looks_like_stun_needs_cookie_and_exact_length():
    msg = c.stun(1, 0, [(0x8022, b"abcd")])
    assert looks_like_stun(msg)
    assert not looks_like_stun(msg + b"\0\0\0\0")
    assert not looks_like_stun(msg[:4] + b"\0\0\0\0" + msg[8:])


def test_channel_data_with_and_without_padding():
    assert parse_channel_data(c.channel_data(0x4001, b"abcde")) == (0x4001, b"abcde")
    padded = c.channel_data(0x4FFF, b"abcde", pad=True)
    assert len(padded) == 12 and parse_channel_data(padded) == (0x4FFF, b"abcde")
    assert looks_like_channel_data(padded)
    with pytest.raises(StunParseError) as info:
        parse_channel_data(c.channel_data(0x4001, b"abcde") + bytes(4))
    assert info.value.kind == "turn.bad_length"
    assert not looks_like_channel_data(c.channel_data(0x5001, b"abc"))


def test_dtls_hellos_carry_use_srtp():
    offer = parse_dtls(c.dtls_client_hello((0x0001, 0x0007)))
    assert offer.content_types == (22,)
    assert offer.hello.client and offer.hello.srtp_profiles == (0x0001, 0x0007)
    answer = parse_dtls(c.dtls_server_hello((0x0007,)))
    assert not answer.hello.client and answer.hello.srtp_profiles == (0x0007,)


def test_dtls_without_use_srtp_and_several_records_in_one_datagram():
    datagram = c.dtls_client_hello(None) + c.dtls_record(20, b"\x01") + c.dtls_record(23, b"x", 1)
    parsed = parse_dtls(datagram)
    assert parsed.content_types == (22, 20, 23)
    assert parsed.hello.srtp_profiles is None
    assert looks_like_dtls(datagram)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (c.dtls_client_hello()[:12], "dtls.short"),
        (c.dtls_record(22, b"\x01\x02") + b"\x17", "dtls.short"),
        (b"\x30" + c.dtls_client_hello()[1:], "dtls.bad_content_type"),
        (b"\x16\x03\x03" + c.dtls_client_hello()[3:], "dtls.bad_version"),
        (c.dtls_record(22, bytes(11)), "dtls.short"),
    ],
)
def test_dtls_refuses_with_its_own_error(payload, kind):
    with pytest.raises(DtlsParseError) as info:
        parse_dtls(payload)
    assert info.value.kind == kind


def test_tls_client_hello_gives_server_name_and_alpn():
    hello = parse_client_hello(c.tls_client_hello("sip.example.net", ("h2", "sip/2")))
    assert hello == Hello(True, "sip.example.net", ("h2", "sip/2"), None)
    assert says_sip(hello)


def test_says_sip_by_server_name_first_label_or_alpn_only():
    assert says_sip(Hello(True, "sip.carrier.example"))
    assert says_sip(Hello(True, "voip-sip.example"))
    assert not says_sip(Hello(True, "www.gossip.example"))
    assert not says_sip(Hello(True, "mail.example", ("h2", "http/1.1")))
    assert says_sip(Hello(True, None, ("sip",)))


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"GET / HTTP/1.1\r\n", "tls.not_tls"),
        (b"\x17\x03\x03\x00\x05hello", "tls.not_hello"),
        (c.tls_client_hello("a.example")[:60], "tls.short"),
    ],
)
def test_tls_refuses_with_its_own_error(payload, kind):
    with pytest.raises(TlsParseError) as info:
        parse_client_hello(payload)
    assert info.value.kind == kind


def test_looks_like_tls():
    assert looks_like_tls(c.tls_client_hello())
    assert looks_like_tls(b"\x17\x03\x03\x00\x10")
    assert not looks_like_tls(b"\x16\x03\x05\x00\x10")
    assert not looks_like_tls(b"INVITE sip:x SIP/2.0\r\n")


def test_srtcp_is_told_from_rtcp_and_rtp():
    assert looks_like_srtcp(c.srtcp(0x1234, 0))
    assert looks_like_srtcp(c.srtcp(0x1234, 77, tag_len=4))
    assert not looks_like_srtcp(c.sender_report() + c.sdes())  # plain RTCP
    assert not looks_like_srtcp(c.rtp(1, 160))
    unencrypted = c.srtcp(0x1234, 5)[:-14] + (5).to_bytes(4, "big") + bytes(10)
    assert not looks_like_srtcp(unencrypted)
