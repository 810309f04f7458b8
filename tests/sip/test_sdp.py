"""SDP parsing: connection inheritance, directions, payload maps, RTCP, SRTP/DTLS, ICE."""

import pytest

from tests.sip.samples import SDP_OFFER
from voiplog.errors import ParseError
from voiplog.sip import IceCandidate, Origin, SdpParseError, parse_sdp


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def test_typical_offer():
    desc = parse_sdp(SDP_OFFER)
    assert desc.origin == Origin("-", "3912345678", "3912345678", "IN", "IP4", "10.20.30.40")
    assert desc.session_name == "SIP Call"
    assert desc.connection == "10.20.30.40"
    assert desc.direction == "sendrecv"
    (audio,) = desc.media
    assert audio.media == "audio"
    assert (audio.port, audio.port_count, audio.proto) == (40000, 1, "RTP/AVP")
    assert audio.formats == ("8", "0", "18", "101")
    assert audio.payload_types == (8, 0, 18, 101)
    assert audio.connection == "10.20.30.40"
    assert audio.rtpmap == {
        8: ("PCMA", 8000, None),
        0: ("PCMU", 8000, None),
        18: ("G729", 8000, None),
        101: ("telephone-event", 8000, None),
    }
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"
    assert audio.rtcp_port is None
    assert not (audio.rtcp_mux or audio.crypto or audio.fingerprint)
    assert audio.setup is None
    assert audio.candidates == ()


def test_session_connection_is_inherited_and_media_connection_overrides():
    desc = parse_sdp(
        sdp(
            "v=0",
            "o=bob 280744730 28977631 IN IP4 host.example.com",
            "s=",
            "c=IN IP4 192.0.2.10",
            "t=0 0",
            "m=audio 22334 RTP/AVP 0",
            "m=video 6024 RTP/AVP 107",
            "c=IN IP6 2001:db8::1",
        )
    )
    assert desc.connection == "192.0.2.10"
    assert desc.session_name == ""
    assert [m.connection for m in desc.media] == ["192.0.2.10", "2001:db8::1"]


def test_media_without_any_connection():
    desc = parse_sdp(
        sdp("v=0", "m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.1", "m=audio 4002 RTP/AVP 0")
    )
    assert desc.connection is None
    assert [m.connection for m in desc.media] == ["192.0.2.1", None]


@pytest.mark.parametrize(
    ("line", "address"),
    [
        ("c=IN IP4 224.2.1.1/127", "224.2.1.1"),
        ("c=IN IP4 224.2.1.1/127/3", "224.2.1.1"),
        ("c=IN IP6 FF15::101/3", "FF15::101"),
        ("c=IN IP6 ::ffff:192.0.2.2", "::ffff:192.0.2.2"),
        ("c=IN IP4 0.0.0.0", "0.0.0.0"),
        ("c=IN  IP4   192.0.2.5 ", "192.0.2.5"),
    ],
)
def test_connection_address_forms(line, address):
    assert parse_sdp(sdp("v=0", line, "m=audio 1 RTP/AVP 0")).media[0].connection == address


def test_direction_inheritance():
    desc = parse_sdp(
        sdp(
            "v=0",
            "c=IN IP4 192.0.2.1",
            "a=sendonly",
            "m=audio 4000 RTP/AVP 0",
            "m=audio 4002 RTP/AVP 0",
            "a=recvonly",
            "m=video 4004 RTP/AVP 31",
            "a=inactive",
        )
    )
    assert desc.direction == "sendonly"
    assert [m.direction for m in desc.media] == ["sendonly", "recvonly", "inactive"]


def test_direction_defaults_to_sendrecv():
    desc = parse_sdp(sdp("v=0", "m=audio 4000 RTP/AVP 0", "a=SENDRECV", "m=audio 4002 RTP/AVP 0"))
    assert desc.direction == "sendrecv"
    assert [m.direction for m in desc.media] == ["sendrecv", "sendrecv"]


def test_rtpmap_with_channels_and_parameters():
    desc = parse_sdp(
        sdp(
            "v=0",
            "m=audio 4000 RTP/AVP 111 9 0 97 98 99",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:97 AMR-WB/16000/1",
            "a=rtpmap:98 malformed",
            "a=rtpmap:99 x/notanumber",
            "a=rtpmap:300 toolarge/8000",
            "a=rtpmap:111 duplicate/8000",
        )
    )
    media = desc.media[0]
    assert media.rtpmap == {
        111: ("opus", 48000, "2"),
        9: ("G722", 8000, None),
        97: ("AMR-WB", 16000, "1"),
    }
    assert media.codec(111) == "opus"
    assert media.codec(0) == "PCMU"  # static payload type without rtpmap
    assert media.codec(98) is None
    assert media.codec(99) is None


def test_static_payload_type_overridden_by_rtpmap():
    media = parse_sdp(sdp("v=0", "m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000")).media[0]
    assert media.codec(18) == "G729"
    media = parse_sdp(sdp("v=0", "m=audio 4000 RTP/AVP 31", "a=rtpmap:31 LPC")).media[0]
    assert media.rtpmap == {}
    assert media.codec(31) == "H261"


def test_multiple_media_port_zero_and_port_count():
    desc = parse_sdp(
        sdp(
            "v=0",
            "c=IN IP4 192.0.2.1",
            "m=audio 49170/2 RTP/AVP 0",
            "m=video 0 RTP/AVP 31",
            "m=image 40010 udptl t38",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "m=audio 40020 RTP/AVP",
        )
    )
    assert [(m.media, m.port, m.port_count, m.proto) for m in desc.media] == [
        ("audio", 49170, 2, "RTP/AVP"),
        ("video", 0, 1, "RTP/AVP"),
        ("image", 40010, 1, "udptl"),
        ("application", 9, 1, "UDP/DTLS/SCTP"),
        ("audio", 40020, 1, "RTP/AVP"),
    ]
    assert desc.media[2].formats == ("t38",)
    assert desc.media[2].payload_types == ()
    assert desc.media[4].formats == ()


def test_rtcp_attribute():
    desc = parse_sdp(
        sdp(
            "v=0",
            "m=audio 49170 RTP/AVP 0",
            "a=rtcp:53020 IN IP4 126.16.64.4",
            "m=audio 49172 RTP/AVP 0",
            "a=rtcp:53022",
            "a=rtcp-mux",
            "m=audio 49174 RTP/AVP 0",
            "a=rtcp:bogus",
        )
    )
    assert [m.rtcp_port for m in desc.media] == [53020, 53022, None]
    assert [m.rtcp_mux for m in desc.media] == [False, True, False]


def test_srtp_and_dtls_attributes():
    desc = parse_sdp(
        sdp(
            "v=0",
            "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B",
            "a=setup:actpass",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=audio 5004 RTP/SAVP 0",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "a=setup:ACTIVE",
        )
    )
    webrtc, sdes = desc.media
    assert webrtc.fingerprint and not webrtc.crypto
    assert webrtc.setup == "actpass"
    assert sdes.crypto
    assert sdes.fingerprint  # session-level fingerprint applies to every section
    assert sdes.setup == "active"


def test_ice_candidates():
    media = parse_sdp(
        sdp(
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host",
            "a=candidate:2 1 udp 1694498815 192.0.2.3 45664 typ srflx raddr 10.0.1.1 rport 8998",
            "a=candidate:3 2 TCP 1 10.0.1.1 9 typ host tcptype active",
            "a=candidate:bad",
        )
    ).media[0]
    assert media.candidates == (
        IceCandidate(1, "udp", "10.0.1.1", 8998, "host"),
        IceCandidate(1, "udp", "192.0.2.3", 45664, "srflx"),
        IceCandidate(2, "tcp", "10.0.1.1", 9, "host"),
    )


def test_origin_variants():
    assert parse_sdp(sdp("v=0", "m=audio 1 RTP/AVP 0")).origin is None
    assert parse_sdp(sdp("v=0", "o=too few")).origin is None
    spaced = parse_sdp(sdp("v=0", "o=Example GW User 6613 4291 IN IP4 192.0.2.1")).origin
    assert spaced == Origin("Example GW User", "6613", "4291", "IN", "IP4", "192.0.2.1")
    ipv6 = parse_sdp(sdp("v=0", "o=assistant 971731711378798081 0 IN IP6 2001:db8::20")).origin
    assert ipv6.address == "2001:db8::20"


def test_media_level_origin_and_name_are_ignored():
    desc = parse_sdp(
        sdp("v=0", "s=session", "m=audio 1 RTP/AVP 0", "o=late 1 1 IN IP4 x", "s=late")
    )
    assert desc.origin is None
    assert desc.session_name == "session"


def test_bare_lf_and_blank_lines():
    desc = parse_sdp(b"\nv=0\n\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\na=sendonly\n")
    assert desc.media[0].connection == "192.0.2.1"
    assert desc.media[0].direction == "sendonly"


def test_unknown_and_malformed_lines_are_skipped():
    desc = parse_sdp(sdp("v=0", "garbage", "x", "z=unknown", "m=audio 4000 RTP/AVP 0", "a=", "a=:"))
    assert len(desc.media) == 1


def test_non_utf8_bytes_are_replaced():
    desc = parse_sdp(b"v=0\r\ns=\xff\xfe\r\nm=audio 4000 RTP/AVP 0\r\n")
    assert desc.session_name == "\ufffd\ufffd"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "sdp.empty"),
        (b"\r\n\r\n", "sdp.empty"),
        (b"hello", "sdp.not_sdp"),
        (b"o=- 1 1 IN IP4 x\r\nv=0\r\n", "sdp.not_sdp"),
        (b"v=0\r\nm=audio\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio x RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 4000/0 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio 4000/x RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nm=audio -1 RTP/AVP 0\r\n", "sdp.bad_media"),
        (b"v=0\r\nc=IN IP4\r\n", "sdp.bad_connection"),
        (b"v=0\r\nc=IN IP4 /127\r\n", "sdp.bad_connection"),
    ],
)
def test_sdp_errors(body, kind):
    with pytest.raises(SdpParseError) as info:
        parse_sdp(body)
    assert isinstance(info.value, ParseError)
    assert info.value.kind == kind
