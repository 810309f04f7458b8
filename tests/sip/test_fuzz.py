"""Invariant: for any input, every SIP/SDP parser returns or raises its own ParseError subclass.

Inputs are random bytes and text, valid samples with random edits, and messages
assembled from SIP-significant characters. Properties of successful parses are
checked along the way (lower-case header names, body cut from the input, text
always encodable as UTF-8).
"""

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.samples import BASE_HEADERS, SAMPLES, SDP_OFFER, build
from voiplog.sip import (
    COMPACT_FORMS,
    SdpParseError,
    SipMessage,
    SipParseError,
    looks_like_sip,
    parse_message,
    parse_name_addr,
    parse_sdp,
    percent_unescape,
    split_stream,
    uri_host,
    uri_port,
    uri_scheme,
    uri_user,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that steer the parsers: separators, quotes, escapes, line ends, digits.
SIP_ALPHABET = ' \t\r\n:;,<>"\\@%[]/=?*.+-_~!0129aZsipSIPtelvV\x00\x7fé'
sip_text = st.text(alphabet=SIP_ALPHABET, max_size=80)


def try_message(data: bytes) -> SipMessage | None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return None
    check_message(msg, data)
    return msg


def check_message(msg: SipMessage, data: bytes) -> None:
    assert (msg.method is None) != (msg.status is None)
    assert msg.body in data
    assert msg.call_id is not None and msg.from_ is not None and msg.to is not None
    assert 0 <= msg.cseq_num <= 0xFFFFFFFF
    for name, value in msg.headers:
        assert name == name.lower()
        assert name not in COMPACT_FORMS
        value.encode("utf-8")
        assert msg.get(name) is not None
    for text in (msg.method, msg.request_uri, msg.reason, msg.call_id, msg.cseq_method):
        if text is not None:
            text.encode("utf-8")
    # Derived accessors must not raise either.
    _ = (msg.via_branch, msg.contact, msg.content_type, msg.sdp_body, msg.from_tag, msg.to_tag)
    for uri in (msg.request_uri, msg.from_.uri, msg.to.uri):
        if uri is not None:
            uri_user(uri)
            uri_host(uri)
            uri_port(uri)


def mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, deleted length, inserted bytes) edits in turn."""
    for position, length, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + length :]
    return data


edits = st.lists(
    st.tuples(
        st.integers(0, 4000),
        st.integers(0, 8),
        st.one_of(
            st.binary(max_size=6),
            st.sampled_from(
                [b"\r\n", b"\n", b"\r\n ", b"\r\n\r\n", b",", b";", b'"', b"\\", b"<", b">", b":"]
            ),
        ),
    ),
    min_size=1,
    max_size=8,
)


# --- parse_message ---------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_message_any_bytes(data):
    try_message(data)


@FUZZ
@given(st.sampled_from(SAMPLES), edits)
def test_parse_message_mutated_samples(sample, changes):
    try_message(mutate(sample, changes))


@FUZZ
@given(
    start=st.one_of(
        sip_text,
        st.builds(lambda m, u: f"{m} {u} SIP/2.0", sip_text, sip_text),
        st.builds(lambda c, r: f"SIP/2.0 {c} {r}", st.integers(-5, 1200), sip_text),
    ),
    headers=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "Via",
                    "v",
                    "From",
                    "f",
                    "To",
                    "t",
                    "Call-ID",
                    "i",
                    "CSeq",
                    "Contact",
                    "m",
                    "Content-Length",
                    "l",
                    "Content-Type",
                    "Route",
                    "X-Other",
                ]
            ),
            sip_text,
        ),
        max_size=12,
    ),
    body=st.binary(max_size=60),
)
def test_parse_message_structured(start, headers, body):
    lines = [start, *(f"{name}:{value}" for name, value in headers)]
    try_message(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body)


@FUZZ
@given(
    call_id=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
        min_size=1,
        max_size=40,
    ),
    cseq=st.integers(0, 0xFFFFFFFF),
    method=st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,20}", fullmatch=True),
    tag=st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,20}", fullmatch=True),
    display=st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
    body=st.binary(max_size=100),
    eol=st.sampled_from(["\r\n", "\n"]),
)
def test_generated_valid_messages_round_trip(call_id, cseq, method, tag, display, body, eol):
    quoted = display.replace("\\", "\\\\").replace('"', '\\"')
    data = build(
        f"{method} sip:bob@example.com SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            f'From: "{quoted}" <sip:alice@example.com>;tag={tag}',
            "To: <sip:bob@example.com>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            f"Content-Length: {len(body)}",
        ],
        body,
        eol=eol,
    )
    msg = parse_message(data)
    check_message(msg, data)
    assert (msg.method, msg.call_id, msg.cseq_num, msg.from_tag) == (method, call_id, cseq, tag)
    assert msg.from_.display == (display or None)
    assert msg.body == body


@FUZZ
@given(st.binary(max_size=600))
def test_looks_like_sip_any_bytes(data):
    assert looks_like_sip(data) in (True, False)


@FUZZ
@given(st.lists(st.sampled_from([*SAMPLES, b"\r\n", b"garbage"]), max_size=5), edits)
def test_split_stream_any_bytes(parts, changes):
    buffer = mutate(b"".join(parts), changes) if parts else b""
    try:
        messages, consumed = split_stream(buffer)
    except SipParseError:
        return
    assert 0 <= consumed <= len(buffer)
    assert sum(map(len, messages)) <= consumed
    for message in messages:
        assert message in buffer[:consumed]


# --- name-addr and URIs ------------------------------------------------------------------


@FUZZ
@given(st.one_of(st.text(max_size=100), sip_text))
def test_parse_name_addr_any_text(value):
    try:
        addr = parse_name_addr(value)
    except SipParseError:
        return
    assert addr.uri and " " not in addr.uri
    assert addr.tag == addr.param("tag") or addr.tag is None


@FUZZ
@given(st.one_of(st.text(max_size=100), sip_text, st.builds("sip:{}".format, sip_text)))
def test_uri_functions_any_text(uri):
    for result in (uri_user(uri), uri_host(uri), uri_scheme(uri)):
        assert result is None or isinstance(result, str)
        if result is not None:
            result.encode("utf-8")
    port = uri_port(uri)
    assert port is None or 0 <= port <= 65535


@FUZZ
@given(st.text(max_size=60))
def test_percent_unescape_any_text(text):
    percent_unescape(text).encode("utf-8")


# --- SDP ---------------------------------------------------------------------------------

sdp_line = st.builds(
    "{}={}".format,
    st.sampled_from([*"vosctmab", "x", ""]),
    st.one_of(
        sip_text,
        st.sampled_from(
            [
                "audio 4000 RTP/AVP 0",
                "audio 0/2 RTP/AVP",
                "IN IP4 192.0.2.1/127",
                "rtpmap:96 opus/48000/2",
                "rtpmap:x",
                "rtcp:9 IN IP4 x",
                "candidate:1 1 udp 1 10.0.0.1 5000 typ host",
                "sendonly",
                "ptime:20",
            ]
        ),
    ),
)


@FUZZ
@given(st.binary(max_size=1500))
def test_parse_sdp_any_bytes(body):
    with contextlib.suppress(SdpParseError):
        parse_sdp(body)


@FUZZ
@given(edits)
def test_parse_sdp_mutated_sample(changes):
    with contextlib.suppress(SdpParseError):
        parse_sdp(mutate(SDP_OFFER, changes))


@FUZZ
@given(st.lists(sdp_line, max_size=20), st.sampled_from(["\r\n", "\n"]))
def test_parse_sdp_structured(lines, eol):
    body = eol.join(["v=0", *lines]).encode("utf-8", "surrogatepass")
    try:
        desc = parse_sdp(body)
    except SdpParseError:
        return
    for media in desc.media:
        assert 0 <= media.port <= 65535
        assert media.direction in ("sendrecv", "sendonly", "recvonly", "inactive")
        for payload_type in media.payload_types:
            media.codec(payload_type)


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_prefix_of_a_sample(sample):
    # Truncation is what capture loss and IP fragments do to real messages.
    for end in range(len(sample) + 1):
        try_message(sample[:end])
    head = build("OPTIONS sip:bob@example.com SIP/2.0", BASE_HEADERS)
    for end in range(len(head) + 1):
        try_message(head[:end])
