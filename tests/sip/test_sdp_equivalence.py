"""The compiled `parse_sdp` (`_csdp.pyx`) against the pure-Python reference.

Invariant: for every input both give the same result, a `SessionDescription` equal
field by field with every value of the same type, or an `SdpParseError` of the same
kind and text. The compiled fast path reads every ASCII body the reference accepts
itself and hands over all others. Inputs: the SDP of the test suite's samples and
crafted flows, SDP written for the cases the parser distinguishes, the bodies of
the RFC 4475 and 5118 torture messages and of the corpus captures' SIP (when the
shared corpus is present), seeded random mutations of all of these, and
hypothesis-built bodies. Skipped when the extension was not built.
"""

from __future__ import annotations

import dataclasses
import importlib
import random
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.samples import SAMPLES, SDP_OFFER
from tests.sip.test_message_equivalence import corpus_sip, crafted, torture
from voiplog.sip import SdpParseError, SipParseError
from voiplog.sip._message import parse_message
from voiplog.sip._sdp import parse_sdp as reference_parse

try:
    _csdp = importlib.import_module("voiplog.sip._csdp")
except ImportError:
    _csdp = None

pytestmark = pytest.mark.skipif(_csdp is None, reason="compiled extensions not built")


def sdp(*lines: str, eol: str = "\r\n") -> bytes:
    return (eol.join(lines) + eol).encode()


# Bodies for what the parser tells apart: inheritance, directions, payload maps,
# RTCP, SRTP and DTLS, ICE, odd spacing and case, errors.
WRITTEN = [
    SDP_OFFER,
    SDP_OFFER.replace(b"\r\n", b"\n"),
    sdp(
        "v=0",
        "o=Example GW User 6613 4291 IN IP4 192.0.2.1",
        "s=-",
        "c=IN IP4 192.0.2.1",
        "t=0 0",
        "a=sendonly",
        "a=ptime:30",
        "a=fingerprint:sha-256 AB:CD",
        "a=setup:ACTPASS",
        "m=audio 4000 RTP/AVP 0 8",
        "a=rtcp:4001 IN IP4 192.0.2.1",
        "m=video 4002/2 RTP/AVP 96",
        "c=IN IP6 2001:db8::1",
        "a=rtpmap:96 H264/90000",
        "a=recvonly",
        "a=setup: active ",
        "m=image 0 udptl t38",
        "a=inactive",
    ),
    sdp(
        "v=0",
        "o=- 1 2 IN IP4 198.51.100.7",
        "s=WebRTC",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 0",
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=candidate:1 1 UDP 2122260223 192.168.1.20 50000 typ host generation 0",
        "a=candidate:2 2 udp 2122260222 192.168.1.20 50001 typ host",
        "a=candidate:3 1 tcp 1518280447 192.168.1.20 9 typ host tcptype active",
        "a=candidate:4 1 udp 1686052607 203.0.113.9 40000 typ srflx raddr 192.168.1.20",
        "a=candidate:5 1 udp 1 203.0.113.9 99999 typ relay",
        "a=candidate:6 x udp 1 203.0.113.9 5 typ relay",
        "a=candidate:7 1 udp 1 203.0.113.9 5 type relay",
        "a=ice-ufrag:abcd",
        "a=fingerprint:sha-256 12:34",
        "a=setup:actpass",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=rtpmap:96 VP8/90000",
        "a=ssrc:1 cname:x",
    ),
    sdp(
        "v=0",
        "c=IN IP4 224.2.1.1/127/3",
        "m=audio 49170 RTP/SAVP 0 18",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc",
        "a=rtpmap:18 G729/8000",
        "a=rtpmap:18 G729/16000",
        "a=rtpmap:31 LPC",
        "a=rtpmap:200 X/8000",
        "a=rtpmap: 97 \tAMR / 8000 / \t1",
        "a=rtpmap:98 AMR-WB/16000/ ",
        "a=rtpmap:99 L16/1234567890",
        "a=rtpmap:1000 X/8000",
        "a=rtpmap:100 a/b/8000",
        "a=RTPMAP:101 telephone-event/8000",
        " a = sendonly ",
        "a=SendRecv:x",
        "a=ptime:1234567",
        "a=ptime: 20",
        "a=ptime:2x",
        "a=rtcp:",
        "a=rtcp:99999",
        "a=rtcp:00080 IN IP4 x",
        "a=setup:",
        "a=Fingerprint",
        "a=crypto",
        "a=",
        "a=:",
        "garbage",
        "x",
        "z=unknown",
        "s=late",
        "o=late 1 1 IN IP4 192.0.2.9",
    ),
    b"\nv=0\n\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\na=sendonly\n",
    b"v=0\r\ns=\xff\xfe\r\nm=audio 4000 RTP/AVP 0\r\n",
    b"v=0\rs=x\r\nm=audio 4000 RTP/AVP 0\ra=sendonly\r\n",
    b"v=0\x0b\r\n\x1cm=audio 4000 RTP/AVP 0\x1f\r\na=ptime:20\x0c\r\n",
    b"v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PC\x00MU/8000\r\n",
    sdp("v=0", "o=too few"),
    sdp("v=0", "m=audio 1 RTP/AVP 0", "m=audio 0 RTP/AVP", "m=audio 2/0 RTP/AVP"),
    sdp("v=0", "m=audio 65536 RTP/AVP 0"),
    sdp("v=0", "m=audio x RTP/AVP 0"),
    sdp("v=0", "m=audio 4000"),
    sdp("v=0", "c=IN IP4"),
    sdp("v=0", "c=IN IP4 /127"),
    sdp("v=0", "m=audio 4000 RTP/AVP 0", "c=IN"),
    sdp("o=- 1 1 IN IP4 192.0.2.1", "v=0"),
    b"",
    b"\r\n \r\n",
    b"v",
    b"v=",
    b"hello",
]


def shape(value) -> object:
    """`value` with the type of everything in it, for a comparison that tells 1 from
    True and a list from a tuple."""
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        return (type(value), tuple((f.name, shape(getattr(value, f.name))) for f in fields))
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(shape(item) for item in value))
    if isinstance(value, dict):
        return (type(value), tuple((shape(k), shape(v)) for k, v in value.items()))
    return (type(value), value)


def outcome(parse, data: bytes) -> tuple:
    """What `parse` makes of `data`: the description's fields, or the error's."""
    try:
        description = parse(data)
    except SdpParseError as err:
        return ("error", type(err), err.kind, str(err))
    return ("sdp", shape(description))


def assert_same(data: bytes) -> None:
    expected = outcome(reference_parse, data)
    assert outcome(_csdp.parse_sdp, data) == expected, data
    taken = _csdp.fast_path(data)
    if expected[0] == "sdp" and data.isascii():
        assert taken is not None, data
        assert ("sdp", shape(taken)) == expected, data
    else:
        assert taken is None, data


def _bodies(messages: list[bytes]) -> list[bytes]:
    """The bodies of the messages the reference reads, SDP or not."""
    out = []
    for data in messages:
        try:
            message = parse_message(data)
        except SipParseError:
            continue
        if message.body:
            out.append(message.body)
    return out


@cache
def fixtures() -> list[bytes]:
    return [*WRITTEN, *_bodies([*SAMPLES, *crafted()])]


@pytest.mark.parametrize("data", WRITTEN, ids=lambda d: d[:20].decode("latin-1"))
def test_written_bodies(data):
    assert_same(data)


def test_sample_and_crafted_flow_bodies():
    bodies = _bodies([*SAMPLES, *crafted()])
    assert bodies
    for data in bodies:
        assert_same(data)


def test_torture_bodies():
    bodies = _bodies(torture())
    if not bodies:
        pytest.skip("torture corpus not found")
    for data in bodies:
        assert_same(data)


def test_corpus_capture_bodies():
    bodies = _bodies(corpus_sip())
    if not bodies:
        pytest.skip("corpus captures not found")
    sdp_bodies = [data for data in bodies if data.lstrip()[:2] == b"v="]
    assert sdp_bodies
    for data in bodies:
        assert_same(data)


# -- seeded random mutations ---------------------------------------------------------

_ODD_BYTES = [b"\xff", b"\xc3\xa9", b"\x00", b"\x7f", b"\x0b", b"\x1c", b"\x85", b"\t", b" ", b"\r"]
_FRAGMENTS = [b":", b"/", b"=", b" ", b"\t", b"a=", b"\n", b"\r\n", b"0", b"-"]
_LINES = [
    b"a=rtcp-mux",
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc",
    b"a=fingerprint:sha-256 AB:CD:EF",
    b"a=setup:passive",
    b"a=candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host",
    b"a=candidate:2 2 TCP 1 10.0.0.1 5001 typ relay raddr 1.2.3.4 rport 9",
    b"a=rtcp:5001 IN IP4 10.0.0.1",
    b"a=rtpmap:96 opus/48000/2",
    b"a=ptime:40",
    b"a=X-unknown:1 2 3",
    b"a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    b"a=inactive",
    b"a=RecvOnly",
    b"m=video 5002 RTP/AVP 96",
    b"m=audio 0 RTP/AVP 0",
    b"m=application 5004 UDP/DTLS/SCTP webrtc-datachannel",
    b"c=IN IP6 2001:db8::5",
    b"c=IN IP4 198.51.100.1/64",
    b"c=IN",
    b"m=audio",
    b"o=- 1 1 IN IP4 10.1.1.1",
    b"s=Renamed",
    b"t=0 0",
    b"b=AS:64",
    b"v=0",
]


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """`data` with one to three random edits of the kinds that steer the parser."""
    for _ in range(rng.randint(1, 3)):
        lines = data.split(b"\n")
        index = rng.randrange(len(lines))
        kind = rng.randrange(10)
        if kind == 0:  # truncation
            data = data[: rng.randrange(len(data) + 1)]
            continue
        if kind == 1:  # LF and CRLF mixed, or CR alone
            old, new = rng.choice([(b"\r\n", b"\n"), (b"\n", b"\r\n"), (b"\r\n", b"\r")])
            data = data.replace(old, new, rng.randrange(1, 30))
            continue
        if kind == 2:  # odd whitespace around the line, the "=" or the ":"
            pad = rng.choice([b" ", b"\t", b"  ", b"\x0b", b"\x1f", b"\x0c", b""])
            line = lines[index]
            where = rng.randrange(4)
            if where == 0:
                line = pad + line + pad
            elif where == 1:
                line = line.replace(b"=", pad + b"=" + pad, 1)
            elif where == 2:
                line = line.replace(b":", pad + b":" + pad, 1)
            else:
                line = line.replace(b" ", pad + b" " + pad)
            lines[index] = line
        elif kind == 3:  # an attribute or section line inserted
            lines.insert(index + 1, rng.choice(_LINES) + rng.choice([b"\r", b""]))
        elif kind == 4:  # a line repeated or dropped
            if rng.random() < 0.5:
                lines.insert(index, lines[index])
            else:
                del lines[index]
        elif kind == 5:  # case
            lines[index] = lines[index].swapcase()
        elif kind == 6:  # bad bytes
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(_ODD_BYTES) + data[at:]
            continue
        elif kind == 7:  # SDP-significant characters
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(_FRAGMENTS) + data[at:]
            continue
        elif kind == 8:  # a digit changed (ports, payload types, clock rates, ptime)
            digits = [i for i, byte in enumerate(data) if 48 <= byte <= 57]
            if digits:
                at = rng.choice(digits)
                new = rng.choice([b"0", b"9", b"1000", b"99999999999", b"-", b"", b"x"])
                data = data[:at] + new + data[at + 1 :]
            continue
        else:  # two lines swapped
            other = rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        data = b"\n".join(lines)
    return data


def test_seeded_mutations():
    seeds = [body for body in fixtures() if body.lstrip()[:2] == b"v="]
    seeds += [body for body in _bodies(torture()) if body.lstrip()[:2] == b"v="]
    rng = random.Random(4566)
    accepted = 0
    count = 8000
    for _ in range(count):
        data = _mutations(rng.choice(seeds), rng)
        assert_same(data)
        accepted += _csdp.fast_path(data) is not None
    # Most mutations leave a body the fast path reads itself.
    assert accepted > count // 3, accepted


# -- hypothesis-built bodies ------------------------------------------------------------

_ATTRIBUTE_NAMES = [
    "rtpmap", "RTPMAP", " rtpmap ", "rtcp", "rtcp-mux", "Rtcp-Mux", "ptime", "crypto",
    "fingerprint", "setup", "candidate", "sendrecv", "sendonly", "recvonly", "inactive",
    "InActive", "fmtp", "ssrc", "ice-ufrag", "group", "x", "",
]  # fmt: skip
_VALUE_ALPHABET = " \t:/=.-0123456789aAbPCMUtypudphostIN\x0b\x1c\r\x00\x7fé"
_VALUES = [
    "0 PCMU/8000",
    "96 opus/48000/2",
    "101 telephone-event/8000",
    "9 IN IP4 0.0.0.0",
    "1 1 udp 2122260223 10.0.0.1 5000 typ host",
    "20",
    "actpass",
    "sha-256 AB:CD",
    "1 AES_CM_128_HMAC_SHA1_80 inline:x",
]
_OTHER_LINES = [
    "m=audio 4000 RTP/AVP 0 8 101",
    "m=video 4002/2 RTP/AVP 96",
    "m=audio 0 RTP/AVP",
    "m=image 5000 udptl t38",
    "m=audio 70000 RTP/AVP 0",
    "m=audio",
    "c=IN IP4 192.0.2.1",
    "c=IN IP6 2001:db8::1",
    "c=IN IP4 233.252.0.1/127/2",
    "c=IN IP4",
    "o=- 1 1 IN IP4 192.0.2.1",
    "o=a b c 1 1 IN IP4 192.0.2.1",
    "o=x",
    "s=Session",
    "s=",
    "t=0 0",
    "b=AS:80",
    "v=0",
    "garbage",
]


@st.composite
def attribute_lines(draw) -> str:
    name = draw(st.sampled_from(_ATTRIBUTE_NAMES))
    value = draw(
        st.one_of(st.sampled_from(_VALUES), st.text(alphabet=_VALUE_ALPHABET, max_size=30))
    )
    separator = draw(st.sampled_from([":", ":", "", " : "]))
    return f"a={name}{separator}{value}"


@st.composite
def bodies(draw) -> bytes:
    lines = draw(st.lists(st.one_of(attribute_lines(), st.sampled_from(_OTHER_LINES)), max_size=25))
    first = draw(st.sampled_from(["v=0", "v=0", " v=1", "", "o=- 1 1 IN IP4 x"]))
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    return eol.join([first, *lines]).encode("utf-8")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_built_bodies(data):
    assert_same(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(WRITTEN[:4]), st.binary(max_size=8), st.integers(0, 3000))
def test_random_bytes_inserted(sample, insert, position):
    at = position % (len(sample) + 1)
    assert_same(sample[:at] + insert + sample[at:])
