"""Sample SIP messages and SDP bodies shared by the SIP parser tests."""

SDP_OFFER = (
    b"v=0\r\n"
    b"o=- 3912345678 3912345678 IN IP4 10.20.30.40\r\n"
    b"s=SIP Call\r\n"
    b"c=IN IP4 10.20.30.40\r\n"
    b"t=0 0\r\n"
    b"m=audio 40000 RTP/AVP 8 0 18 101\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


def build(start: str, headers: list[str], body: bytes = b"", eol: str = "\r\n") -> bytes:
    """A message from its start line and header lines, Content-Length left to the caller."""
    head = eol.join([start, *headers]) + eol + eol
    return head.encode("utf-8") + body


BASE_HEADERS = [
    "Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1;rport",
    "Max-Forwards: 70",
    'From: "Alice Example" <sip:4989111222@sip.example.net>;tag=8f3a2c1d',
    "To: <sip:+4930123456@sip.example.net;user=phone>",
    "Call-ID: 7a1b2c3d4e5f@10.20.30.40",
    "CSeq: 2 INVITE",
]

INVITE = build(
    "INVITE sip:+4930123456@sip.example.net;user=phone SIP/2.0",
    [
        *BASE_HEADERS,
        "Contact: <sip:4989111222@10.20.30.40:5060;transport=udp>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS",
        "Content-Type: application/sdp",
        "User-Agent: ExamplePhone 5.3.7 (build 1234)",
        f"Content-Length: {len(SDP_OFFER)}",
    ],
    SDP_OFFER,
)

OK_200 = build(
    "SIP/2.0 200 OK",
    [
        "Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1;rport=5060",
        'From: "Alice Example" <sip:4989111222@sip.example.net>;tag=8f3a2c1d',
        "To: <sip:+4930123456@sip.example.net;user=phone>;tag=as58f4201b",
        "Call-ID: 7a1b2c3d4e5f@10.20.30.40",
        "CSeq: 2 INVITE",
        "Server: ExampleSBC/2.1",
        "Content-Length: 0",
    ],
)

BYE = build(
    "BYE sip:4989111222@10.20.30.40:5060 SIP/2.0",
    [
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye1",
        "From: <sip:+4930123456@sip.example.net>;tag=as58f4201b",
        "To: <sip:4989111222@sip.example.net>;tag=8f3a2c1d",
        "Call-ID: 7a1b2c3d4e5f@10.20.30.40",
        "CSeq: 102 BYE",
        "Content-Length: 0",
    ],
)

SAMPLES = [INVITE, OK_200, BYE]
