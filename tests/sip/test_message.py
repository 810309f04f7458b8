"""SIP message parser: start lines, headers, required fields, bodies, sniffing, framing."""

import pytest

from tests.sip.samples import BASE_HEADERS, BYE, INVITE, OK_200, SDP_OFFER, build
from voiplog.errors import ParseError
from voiplog.sip import (
    COMPACT_FORMS,
    SipMessage,
    SipParseError,
    looks_like_sip,
    parse_message,
    split_stream,
)


def request(*extra: str, start: str = "OPTIONS sip:bob@example.com SIP/2.0", body=b"") -> bytes:
    headers = [h.replace("CSeq: 2 INVITE", "CSeq: 2 OPTIONS") for h in BASE_HEADERS]
    return build(start, [*headers, *extra], body)


def kind_of(data: bytes) -> str:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert isinstance(info.value, ParseError)
    return info.value.kind


# --- whole messages ---------------------------------------------------------------


def test_invite_fields():
    msg = parse_message(INVITE)
    assert isinstance(msg, SipMessage)
    assert msg.is_request and not msg.is_response
    assert msg.method == "INVITE"
    assert msg.request_uri == "sip:+4930123456@sip.example.net;user=phone"
    assert msg.status is None and msg.reason is None
    assert msg.call_id == "7a1b2c3d4e5f@10.20.30.40"
    assert (msg.cseq_num, msg.cseq_method) == (2, "INVITE")
    assert msg.from_.display == "Alice Example"
    assert msg.from_.uri == "sip:4989111222@sip.example.net"
    assert msg.from_tag == "8f3a2c1d"
    assert msg.to.uri == "sip:+4930123456@sip.example.net;user=phone"
    assert msg.to_tag is None
    assert msg.user_agent == "ExamplePhone 5.3.7 (build 1234)"
    assert msg.via_branch == "z9hG4bK-524287-1"
    assert msg.top_via.startswith("SIP/2.0/UDP 10.20.30.40:5060")
    assert msg.content_type == "application/sdp"
    assert msg.contact.uri == "sip:4989111222@10.20.30.40:5060;transport=udp"
    assert msg.body == SDP_OFFER
    assert msg.sdp_body == SDP_OFFER
    assert msg.anomalies == ()


def test_response_fields():
    msg = parse_message(OK_200)
    assert msg.is_response and not msg.is_request
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.method is None and msg.request_uri is None
    assert msg.cseq_method == "INVITE"
    assert msg.to_tag == "as58f4201b"
    assert msg.server == "ExampleSBC/2.1"
    assert msg.body == b""
    assert msg.sdp_body is None


def test_bye():
    msg = parse_message(BYE)
    assert (msg.method, msg.cseq_num, msg.from_tag, msg.to_tag) == (
        "BYE",
        102,
        "as58f4201b",
        "8f3a2c1d",
    )


def test_headers_keep_order_and_lower_case_names():
    msg = parse_message(INVITE)
    names = [name for name, _ in msg.headers]
    assert names[:6] == ["via", "max-forwards", "from", "to", "call-id", "cseq"]
    assert all(name == name.lower() for name in names)


def test_get_is_case_insensitive_and_accepts_compact_names():
    msg = parse_message(INVITE)
    assert msg.get("CALL-ID") == msg.get("i") == msg.get("Call-Id") == msg.call_id
    assert msg.get("X-Absent") is None
    assert msg.get_all("x-absent") == []


@pytest.mark.parametrize(
    ("reason_part", "reason"), [(" ", ""), ("", ""), (" Not Found", "Not Found")]
)
def test_reason_phrase_may_be_empty(reason_part, reason):
    data = OK_200.replace(b"SIP/2.0 200 OK", f"SIP/2.0 404{reason_part}".encode())
    assert parse_message(data).reason == reason


def test_reason_phrase_keeps_utf8():
    data = OK_200.replace(b"200 OK", "200 Принято".encode())
    assert parse_message(data).reason == "Принято"


def test_version_is_case_insensitive():
    data = INVITE.replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1)
    assert parse_message(data).method == "INVITE"
    assert parse_message(OK_200.replace(b"SIP/2.0 200", b"sip/2.0 200")).status == 200


def test_leading_keepalive_crlf_is_skipped():
    assert parse_message(b"\r\n\r\n" + BYE).method == "BYE"


# --- header syntax ----------------------------------------------------------------


@pytest.mark.parametrize(("compact", "full"), sorted(COMPACT_FORMS.items()))
def test_compact_forms_are_expanded(compact, full):
    value = {"l": "0", "v": "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKc"}.get(compact, "<sip:x@y>")
    msg = parse_message(request(f"{compact.upper()}: {value}"))
    # Required headers are already present, so the compact copy comes last.
    assert msg.get_all(full)[-1] == value
    assert compact not in {name for name, _ in msg.headers}


def test_compact_required_headers():
    data = build(
        "INVITE sip:bob@example.com SIP/2.0",
        [
            "v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
            "f: <sip:alice@example.com>;tag=1",
            "t: sip:bob@example.com",
            "i: compact-call-id",
            "CSeq: 1 INVITE",
            "l: 0",
        ],
    )
    msg = parse_message(data)
    assert msg.call_id == "compact-call-id"
    assert msg.from_tag == "1"
    assert msg.to.uri == "sip:bob@example.com"
    assert msg.via_branch == "z9hG4bK1"


def test_whitespace_before_colon_and_around_value():
    msg = parse_message(request("Subject   :    hello world   "))
    assert msg.get("subject") == "hello world"


def test_folded_lines_are_unfolded():
    data = request(
        "Subject: first part",
        "   second part",
        "\tthird part",
        "X-After: ok",
    )
    msg = parse_message(data)
    assert msg.get("subject") == "first part second part third part"
    assert msg.get("x-after") == "ok"


def test_folded_required_header():
    data = build(
        "OPTIONS sip:bob@example.com SIP/2.0",
        [
            "Via: SIP/2.0/UDP",
            "  192.0.2.1;branch=z9hG4bK1",
            "From:",
            ' "Alice"',
            "   <sip:alice@example.com>;tag=9",
            "To: <sip:bob@example.com>",
            "Call-ID: folded",
            "CSeq: 7",
            "  OPTIONS",
        ],
    )
    msg = parse_message(data)
    assert msg.via_branch == "z9hG4bK1"
    assert msg.from_.display == "Alice"
    assert msg.from_tag == "9"
    assert msg.cseq_num == 7


def test_continuation_before_first_header_is_an_error():
    data = b"OPTIONS sip:bob@example.com SIP/2.0\r\n  stray\r\n" + request()[38:]
    assert kind_of(data) == "sip.bad_header"


def test_header_without_colon_is_an_error():
    assert kind_of(request("This line has no colon")) == "sip.bad_header"


def test_header_name_must_be_a_token():
    assert kind_of(request("Bad Name: value")) == "sip.bad_header"
    assert kind_of(request("Caf\u00e9: value")) == "sip.bad_header"


def test_list_headers_are_split():
    data = request(
        "Via: SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1, SIP/2.0/TCP 192.0.2.7:5061"
        ";branch=z9hG4bKp2",
        "Allow: INVITE,ACK , BYE,,",
        "Supported: timer, replaces",
    )
    msg = parse_message(data)
    vias = msg.get_all("via")
    assert len(vias) == 3
    assert vias[1] == "SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1"
    assert vias[2] == "SIP/2.0/TCP 192.0.2.7:5061;branch=z9hG4bKp2"
    # The first Via is still the top one.
    assert msg.via_branch == "z9hG4bK-524287-1"
    assert msg.get_all("allow") == ["INVITE", "ACK", "BYE"]
    assert msg.get_all("supported") == ["timer", "replaces"]


def test_list_split_respects_quotes_and_angle_brackets():
    data = request(
        'Contact: "Smith, John" <sip:john@192.0.2.1>;q=0.5, <sip:odd,user@192.0.2.2>,'
        ' "Quote \\", comma" <sip:q@192.0.2.3>',
        "Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>",
    )
    msg = parse_message(data)
    assert msg.get_all("contact") == [
        '"Smith, John" <sip:john@192.0.2.1>;q=0.5',
        "<sip:odd,user@192.0.2.2>",
        '"Quote \\", comma" <sip:q@192.0.2.3>',
    ]
    assert msg.contact.display == "Smith, John"
    assert msg.get_all("route") == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]


@pytest.mark.parametrize(
    "header",
    [
        'WWW-Authenticate: Digest realm="example.com", nonce="abc", qop="auth"',
        'Authorization: Digest username="alice", realm="example.com", uri="sip:x"',
        'Proxy-Authenticate: Digest realm="x", nonce="y"',
        'Proxy-Authorization: Digest username="alice", response="z"',
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "User-Agent: Phone (Linux, ARM)",
        "Server: SBC, version 2",
        "X-Unknown: a, b, c",
    ],
)
def test_headers_whose_values_hold_commas_are_not_split(header):
    name, _, value = header.partition(": ")
    msg = parse_message(request(header))
    assert msg.get_all(name) == [value]


def test_contact_star_and_unreadable_contact_give_none():
    assert parse_message(request("Contact: *")).contact is None
    assert parse_message(request('Contact: "unterminated <sip:x@y>')).contact is None
    assert parse_message(request()).contact is None


def test_duplicate_single_value_headers_keep_the_first_and_are_noted():
    data = request("Call-ID: second", "CSeq: 99 OPTIONS", "To: <sip:other@example.com>")
    msg = parse_message(data)
    assert msg.call_id == "7a1b2c3d4e5f@10.20.30.40"
    assert msg.cseq_num == 2
    assert msg.to.uri == "sip:+4930123456@sip.example.net;user=phone"
    assert set(msg.anomalies) == {"sip.duplicate_call_id", "sip.duplicate_cseq", "sip.duplicate_to"}


def test_via_branch_with_odd_whitespace():
    data = request().replace(
        b"Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1;rport",
        b"Via: SIP / 2.0 / UDP 10.20.30.40 ; rport ; BRANCH = z9hG4bKodd",
    )
    assert parse_message(data).via_branch == "z9hG4bKodd"


def test_via_without_branch():
    data = request().replace(b";branch=z9hG4bK-524287-1;rport", b"")
    assert parse_message(data).via_branch is None


@pytest.mark.parametrize("via", ["Via: ;", "Via: SIP/2.0/UDP", "Via: 192.0.2.1", "Via: "])
def test_malformed_via_is_an_error(via):
    data = build(
        "OPTIONS sip:bob@example.com SIP/2.0",
        [via, *[h for h in BASE_HEADERS if not h.startswith("Via")]],
    )
    data = data.replace(b"CSeq: 2 INVITE", b"CSeq: 2 OPTIONS")
    assert kind_of(data) == "sip.bad_via"


# --- line endings and bytes ---------------------------------------------------------


def test_bare_lf_line_endings():
    head, _, body = INVITE.partition(b"\r\n\r\n")
    msg = parse_message(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert msg.call_id == "7a1b2c3d4e5f@10.20.30.40"
    assert msg.from_tag == "8f3a2c1d"
    assert msg.via_branch == "z9hG4bK-524287-1"
    assert msg.body == SDP_OFFER


def test_bare_lf_message_with_matching_length():
    body = (
        b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
    )
    data = request("Content-Type: application/sdp", f"Content-Length: {len(body)}", body=b"")
    data = data.replace(b"\r\n", b"\n") + body
    msg = parse_message(data)
    assert msg.body == body
    assert msg.sdp_body == body


def test_mixed_line_endings():
    data = request("Content-Length: 4").replace(b"\r\n", b"\n").replace(b"\n\n", b"\n\r\n")
    msg = parse_message(data + b"body")
    assert msg.body == b"body"
    crlf_head_lf_end = request("Content-Length: 4")[:-4] + b"\r\n\n" + b"body"
    assert parse_message(crlf_head_lf_end).body == b"body"


def test_message_without_empty_line_is_tolerated():
    data = request("Content-Length: 0")[:-2]
    msg = parse_message(data)
    assert msg.body == b""
    assert "sip.no_empty_line" in msg.anomalies


def test_non_utf8_and_nul_bytes_never_escape_as_unicode_errors():
    data = request().replace(b"Max-Forwards: 70", b"X-Raw: \xff\xfe\x00\xc3(")
    msg = parse_message(data)
    assert msg.get("x-raw") == "\ufffd\ufffd\x00\ufffd("
    msg.get("x-raw").encode("utf-8")  # always encodable for JSON and Postgres


def test_utf8_display_name():
    data = request().replace(b'"Alice Example"', '"Jürgen Müller"'.encode())
    assert parse_message(data).from_.display == "Jürgen Müller"


# --- required headers and CSeq --------------------------------------------------------


@pytest.mark.parametrize("missing", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_required_header(missing):
    headers = [h for h in BASE_HEADERS if not h.startswith(missing + ":")]
    data = build("INVITE sip:bob@example.com SIP/2.0", headers)
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.kind == "sip.missing_header"
    assert missing in str(info.value)


def test_all_missing_headers_are_named():
    data = build("INVITE sip:bob@example.com SIP/2.0", ["Max-Forwards: 70"])
    with pytest.raises(SipParseError, match="Via, From, To, Call-ID, CSeq"):
        parse_message(data)


@pytest.mark.parametrize(
    ("cseq", "number"),
    [("0 OPTIONS", 0), ("4294967295 OPTIONS", 4294967295), ("0009  OPTIONS", 9)],
)
def test_cseq_accepted(cseq, number):
    data = request().replace(b"CSeq: 2 OPTIONS", f"CSeq: {cseq}".encode())
    assert parse_message(data).cseq_num == number


@pytest.mark.parametrize(
    "cseq",
    [
        "4294967296 OPTIONS",
        "36893488147419103232 OPTIONS",
        "-1 OPTIONS",
        "1.5 OPTIONS",
        "OPTIONS",
        "1",
        "1 OPTIONS extra",
        "1 INVITE",
        "1 options",
        "\u0661 OPTIONS",  # a non-ASCII digit
        "9" * 5000 + " OPTIONS",
    ],
)
def test_cseq_rejected(cseq):
    data = request().replace(b"CSeq: 2 OPTIONS", f"CSeq: {cseq}".encode())
    assert kind_of(data) == "sip.bad_cseq"


def test_response_cseq_method_is_free():
    data = OK_200.replace(b"CSeq: 2 INVITE", b"CSeq: 2 NEWMETHOD")
    assert parse_message(data).cseq_method == "NEWMETHOD"


# --- start line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "kind"),
    [
        ("", "sip.bad_start_line"),
        ("INVITE", "sip.bad_start_line"),
        ("INVITE sip:bob@example.com", "sip.bad_start_line"),
        ("INVITE sip:bob@example.com; lr SIP/2.0", "sip.bad_start_line"),
        ("GET / HTTP/1.1", "sip.bad_start_line"),
        ("INV(ITE sip:bob@example.com SIP/2.0", "sip.bad_start_line"),
        ("INVITE sip:bob@example.com SIP/3.0", "sip.bad_version"),
        ("INVITE sip:bob@example.com SIP/2.00", "sip.bad_version"),
        ("SIP/1.0 200 OK", "sip.bad_version"),
        ("SIP/2.0", "sip.bad_start_line"),
        ("SIP/2.0 99 Too Low", "sip.bad_status_code"),
        ("SIP/2.0 099 Too Low", "sip.bad_status_code"),
        ("SIP/2.0 700 Too High", "sip.bad_status_code"),
        ("SIP/2.0 1000 Too Long", "sip.bad_status_code"),
        ("SIP/2.0 4294967301 Overlarge", "sip.bad_status_code"),
        ("SIP/2.0 2x0 Letters", "sip.bad_status_code"),
        ("SIP/2.0 OK", "sip.bad_status_code"),
        ("INVITE <sip:bob@example.com> SIP/2.0", "sip.bad_uri"),
        ("INVITE bob@example.com SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:bob@example.com?Subject=x SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:host:12ab SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:bob@a:b:c SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:[2001:db8:::1] SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:bob@example.com:99999 SIP/2.0", "sip.bad_uri"),
        ("INVITE sip:bob@ SIP/2.0", "sip.bad_uri"),
    ],
)
def test_bad_start_lines(start, kind):
    method = start.split(" ", 1)[0] if not start.startswith("SIP/") else "INVITE"
    headers = [h.replace("CSeq: 2 INVITE", f"CSeq: 2 {method}") for h in BASE_HEADERS]
    assert kind_of(build(start, headers)) == kind


@pytest.mark.parametrize(
    "start",
    [
        "INVITE  sip:bob@example.com  SIP/2.0",
        "INVITE sip:bob@example.com SIP/2.0  ",
        "INVITE\tsip:bob@example.com SIP/2.0",
    ],
)
def test_extra_blanks_in_request_line_are_tolerated(start):
    msg = parse_message(build(start, BASE_HEADERS))
    assert msg.request_uri == "sip:bob@example.com"
    assert "sip.start_line_whitespace" in msg.anomalies


@pytest.mark.parametrize(
    "uri",
    [
        "sip:bob@[2001:db8::1]:5070;transport=tcp",
        "sips:bob@example.com",
        "tel:+1-201-555-0123",
        "urn:service:sos",
        "sip:example.com",
        "sip:1_unusual?user@example.com",
    ],
)
def test_request_uris_accepted(uri):
    assert parse_message(build(f"INVITE {uri} SIP/2.0", BASE_HEADERS)).request_uri == uri


def test_unbracketed_ipv6_request_uri_is_tolerated():
    # Seen from a real phone in an answered call, although RFC 5118 calls it invalid.
    msg = parse_message(
        build("INVITE sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060 SIP/2.0", BASE_HEADERS)
    )
    assert "sip.unbracketed_ipv6" in msg.anomalies


def test_any_token_is_a_method():
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    headers = [h.replace("CSeq: 2 INVITE", f"CSeq: 2 {method}") for h in BASE_HEADERS]
    assert parse_message(build(f"{method} sip:bob@example.com SIP/2.0", headers)).method == method


# --- Content-Length and body ---------------------------------------------------------------


def test_body_cut_to_content_length():
    data = request("Content-Length: 4", body=b"bodyEXTRA")
    msg = parse_message(data)
    assert msg.body == b"body"
    assert "sip.trailing_octets" in msg.anomalies


def test_trailing_blank_bytes_after_body_are_not_an_anomaly():
    msg = parse_message(request("Content-Length: 4", body=b"body\r\n"))
    assert msg.body == b"body"
    assert msg.anomalies == ()


def test_body_shorter_than_content_length():
    assert kind_of(request("Content-Length: 10", body=b"short")) == "sip.content_length"


def test_content_length_without_empty_line():
    data = request("Content-Length: 10")[:-4]
    assert kind_of(data) == "sip.content_length"


@pytest.mark.parametrize("value", ["-1", "-999", "9" * 5000])
def test_negative_or_absurd_content_length(value):
    assert kind_of(request(f"Content-Length: {value}")) == "sip.content_length"


@pytest.mark.parametrize("value", ["abc", "1.0", "0x10", "", "1 2", "bad"])
def test_content_length_that_is_not_a_number_takes_the_datagram(value):
    msg = parse_message(request(f"Content-Length: {value}", body=b"v=0\r\n"))
    assert msg.body == b"v=0\r\n"
    assert "sip.content_length_not_a_number" in msg.anomalies


def test_absent_content_length_takes_the_rest():
    assert parse_message(request(body=b"all of it\r\n")).body == b"all of it\r\n"


def test_zero_content_length():
    assert parse_message(request("l: 0", body=b"")).body == b""


def test_conflicting_content_lengths_take_the_rest():
    msg = parse_message(request("Content-Length: 13", "Content-Length: 5", body=b"0123456789"))
    assert msg.body == b"0123456789"
    assert "sip.content_length_conflict" in msg.anomalies


def test_repeated_equal_content_lengths():
    msg = parse_message(request("Content-Length: 5", "l: 5", body=b"01234"))
    assert msg.body == b"01234"
    assert msg.anomalies == ()


def test_binary_body_is_kept_as_bytes():
    body = bytes(range(256))
    msg = parse_message(request(f"Content-Length: {len(body)}", body=body))
    assert msg.body == body


def test_sdp_inside_multipart_body():
    body = (
        b"--unique-boundary-1\r\n"
        b"Content-Type: application/sdp\r\n"
        b"\r\n" + SDP_OFFER + b"\r\n"
        b"--unique-boundary-1\r\n"
        b"Content-Type: application/ISUP;version=itu-t92+\r\n"
        b"Content-Disposition: signal;handling=optional\r\n"
        b"\r\n"
        b"\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x00\x03\r\n"
        b"--unique-boundary-1--\r\n"
    )
    data = request(
        'Content-Type: multipart/mixed;boundary="unique-boundary-1"',
        f"Content-Length: {len(body)}",
        "MIME-Version: 1.0",
        body=body,
    )
    msg = parse_message(data)
    assert msg.content_type == "multipart/mixed"
    assert msg.sdp_body == SDP_OFFER


def test_sdp_body_absent_for_other_content():
    data = request("Content-Type: text/plain", "Content-Length: 5", body=b"hello")
    assert parse_message(data).sdp_body is None
    data = request("Content-Type: multipart/mixed", "Content-Length: 5", body=b"hello")
    assert parse_message(data).sdp_body is None


# --- looks_like_sip ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        INVITE,
        OK_200,
        BYE,
        b"SIP/2.0 100 Trying\r\n",
        b"sip/2.0 180 Ringing\r\n",
        b"SIP/2.0 100 \r\n",
        b"OPTIONS sip:x SIP/2.0\r\n",
        b"NEWMETHOD sip:x SIP/2.0\n",
        b"\r\nREGISTER sip:example.com SIP/2.0\r\n",
        b"OPTIONS sip:x SIP/7.0\r\n",  # reaches the parser, counted as bad_version
        b"INVITE sip:x@y; lr SIP/2.0\r\n",  # reaches the parser, counted as bad_start_line
        b"SIP/2.0 4294967301 better not break the receiver\r\n",
    ],
)
def test_looks_like_sip(payload):
    assert looks_like_sip(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\r\n\r\n",
        b"\x80\x08\x12\x34" + bytes(160),  # RTP
        b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12),  # STUN binding request
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"INVITE sip:x SIP/2.0",  # no end of line yet
        b"INVITE SIP/2.0\r\n",
        b"SIP/2.0\r\n",
        b"A" * 600 + b" sip:x SIP/2.0\r\n",
        b"INVITE " + b"x" * 600 + b" SIP/2.0\r\n",  # beyond the sniffing window
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS ClientHello
    ],
)
def test_does_not_look_like_sip(payload):
    assert not looks_like_sip(payload)


# --- stream framing ------------------------------------------------------------------------


def test_split_stream_frames_messages_and_keeps_the_remainder():
    buffer = b"\r\n\r\n" + INVITE + OK_200 + BYE[:50]
    messages, consumed = split_stream(buffer)
    assert messages == [INVITE, OK_200]
    assert buffer[consumed:] == BYE[:50]
    more, used = split_stream(buffer[consumed:] + BYE[50:])
    assert more == [BYE]
    assert used == len(BYE)


def test_split_stream_waits_for_the_whole_body():
    messages, consumed = split_stream(INVITE[:-1])
    assert (messages, consumed) == ([], 0)


def test_split_stream_without_content_length_means_no_body():
    message = build("OPTIONS sip:bob@example.com SIP/2.0", ["Call-ID: x"])
    messages, consumed = split_stream(message + message)
    assert messages == [message, message]
    assert consumed == 2 * len(message)


def test_split_stream_consumes_bare_keepalives():
    assert split_stream(b"\r\n\r\n") == ([], 4)


@pytest.mark.parametrize(
    "headers", [["Content-Length: -1"], ["l: x"], ["Content-Length: 1", "Content-Length: 2"]]
)
def test_split_stream_bad_content_length(headers):
    with pytest.raises(SipParseError) as info:
        split_stream(build("OPTIONS sip:bob@example.com SIP/2.0", headers))
    assert info.value.kind == "sip.content_length"


def test_split_stream_head_too_long():
    with pytest.raises(SipParseError) as info:
        split_stream(b"OPTIONS sip:bob@example.com SIP/2.0\r\n" + b"X: y\r\n" * 20, max_head=64)
    assert info.value.kind == "sip.stream_head_too_long"
