"""The compiled `parse_message` (`_cmessage.pyx`) against the pure-Python reference.

Invariant: for every input both give the same result, an equal `SipMessage` (every
field, anomalies included) or a `SipParseError` of the same kind and text. Inputs:
the test suite's sample messages and crafted calls and registrations, the RFC 4475
and 5118 torture messages and the SIP of the corpus captures (when the shared corpus
is present), seeded random mutations of all of these, and hypothesis-built messages.
The compiled fast path must also take the ordinary messages itself, not leave them
all to the reference. Skipped when the extension was not built.
"""

from __future__ import annotations

import importlib
import random
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sip.samples import BASE_HEADERS, SAMPLES, SDP_OFFER, build
from tests.sipcraft import make_dialog, make_registration
from voiplog.errors import ParseError
from voiplog.packet import PROTO_UDP, decode
from voiplog.sip import COMPACT_FORMS, SipParseError, looks_like_sip
from voiplog.sip._message import parse_message as reference_parse

try:
    _cmessage = importlib.import_module("voiplog.sip._cmessage")
except ImportError:
    _cmessage = None

pytestmark = pytest.mark.skipif(_cmessage is None, reason="compiled extensions not built")

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def outcome(parse, data: bytes) -> tuple:
    """What `parse` makes of `data`: the message's fields, or the error's."""
    try:
        message = parse(data)
    except SipParseError as err:
        return ("error", type(err), err.kind, str(err))
    return ("message", type(message), message)


def assert_same(data: bytes) -> None:
    expected = outcome(reference_parse, data)
    assert outcome(_cmessage.parse_message, data) == expected, data
    taken = _cmessage.fast_path(data)
    if taken is not None:
        assert expected == ("message", type(taken), taken), data


def _payloads(frames) -> list[bytes]:
    out = []
    for _ts, frame in frames:
        datagram = decode(1, frame)
        if datagram is not None and datagram[0] == PROTO_UDP and looks_like_sip(datagram[5]):
            out.append(datagram[5])
    return out


@cache
def crafted() -> list[bytes]:
    """The SIP of the crafted calls and registrations the call tests replay."""
    dialog = make_dialog(1)
    dialog.basic_answered(1_000_000, rtp=False)
    ipv6 = make_dialog(2, caller_ip="2001:db8::10", callee_ip="2001:db8::50")
    ipv6.basic_answered(2_000_000, rtp=False)
    registration = make_registration(1)
    registration.register(3_000_000, 1)
    registration.reply(3_010_000, 401, 1)
    registration.register(3_020_000, 2, auth_user="3001")
    registration.reply(3_030_000, 200, 2, contacts=["<sip:3001@10.1.0.20:5061>;expires=3600"])
    frames = dialog.frames + ipv6.frames + registration.frames
    return _payloads(frames)


def torture() -> list[bytes]:
    root = CORPUS / "torture"
    if not root.is_dir():
        return []
    return [path.read_bytes() for path in sorted(root.rglob("*.dat"))]


def corpus_sip() -> list[bytes]:
    """Every UDP payload of the corpus captures that looks like SIP."""
    from voiplog.capture import open_capture

    root = CORPUS / "pcaps"
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir()):
        if path.suffix not in (".pcap", ".pcapng"):
            continue
        try:
            with open_capture(path) as reader:
                for _ts, linktype, frame in reader:
                    try:
                        datagram = decode(linktype, frame)
                    except ParseError:
                        continue
                    if datagram is None or datagram[0] != PROTO_UDP:
                        continue
                    if looks_like_sip(datagram[5]):
                        out.append(datagram[5])
        except ParseError:
            continue
    return out


def test_the_fast_path_takes_ordinary_messages():
    for data in [*SAMPLES, *crafted()]:
        assert _cmessage.fast_path(data) == reference_parse(data), data


@pytest.mark.parametrize("data", [*SAMPLES, *crafted()], ids=lambda d: d[:24].decode())
def test_samples_and_crafted_flows(data):
    assert_same(data)


def test_torture_messages():
    messages = torture()
    if not messages:
        pytest.skip(f"torture corpus not found at {CORPUS / 'torture'}")
    for data in messages:
        assert_same(data)


def test_corpus_captures():
    messages = corpus_sip()
    if not messages:
        pytest.skip(f"corpus captures not found at {CORPUS / 'pcaps'}")
    taken = 0
    for data in messages:
        assert_same(data)
        taken += _cmessage.fast_path(data) is not None
    # Real devices' messages are mostly ordinary: the fast path must not be idle.
    assert taken > len(messages) // 2, (taken, len(messages))


# -- seeded random mutations ---------------------------------------------------------

_COMPACT = {full: compact for compact, full in COMPACT_FORMS.items()}
_ODD_BYTES = [b"\xff", b"\xc3\xa9", b"\x00", b"\x7f", b"\x0b", b"\x1c", b"\x85", b"\t", b" ", b"\r"]
_FRAGMENTS = [b",", b";", b'"', b"<", b">", b":", b"/", b"\\", b"@", b"=", b";tag=x", b"?a=b"]


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """`data` with one to three random edits of the kinds that steer the parser."""
    for _ in range(rng.randint(1, 3)):
        lines = data.split(b"\r\n")
        kind = rng.randrange(11)
        index = rng.randrange(len(lines))
        if kind == 0:  # truncation
            data = data[: rng.randrange(len(data) + 1)]
            continue
        if kind == 1:  # folding: a header continued on the next line
            line = lines[index]
            cut = line.find(b" ")
            if cut > 0:
                lines[index] = line[:cut] + b"\r\n" + rng.choice([b" ", b"\t", b"  "]) + line[cut:]
        elif kind == 2:  # odd whitespace around the colon or the value
            line = lines[index]
            colon = line.find(b":")
            pad = rng.choice([b" ", b"\t", b"  ", b"\x0b", b"\x1f", b""])
            if colon > 0:
                lines[index] = line[:colon] + pad + b":" + pad + line[colon + 1 :] + pad
            else:
                lines[index] = line.replace(b" ", pad + b" ", 1) + pad
        elif kind == 3:  # compact header names
            line = lines[index]
            name, colon, rest = line.partition(b":")
            short = _COMPACT.get(name.strip().lower().decode("latin-1"))
            if colon and short:
                lines[index] = rng.choice([short, short.upper()]).encode() + b":" + rest
        elif kind == 4:  # bad bytes
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(_ODD_BYTES) + data[at:]
            continue
        elif kind == 5:  # SIP-significant characters
            at = rng.randrange(len(data) + 1)
            data = data[:at] + rng.choice(_FRAGMENTS) + data[at:]
            continue
        elif kind == 6:  # bare LF or mixed line ends
            return data.replace(b"\r\n", b"\n", rng.randrange(1, 40))
        elif kind == 7:  # a header repeated or dropped
            if index and rng.random() < 0.5:
                lines.insert(index, lines[index])
            elif index:
                del lines[index]
        elif kind == 8:  # case of a name or of the start line
            lines[index] = lines[index].swapcase()
        elif kind == 9:  # leading keep-alives, trailing octets
            data = rng.choice([b"\r\n", b"\r\n\r\n", b""]) + data + rng.choice([b"", b"\r\n", b"x"])
            continue
        else:  # a digit changed (status code, CSeq, Content-Length, port)
            digits = [i for i, byte in enumerate(data) if 48 <= byte <= 57]
            if digits:
                at = rng.choice(digits)
                data = (
                    data[:at] + rng.choice([b"0", b"9", b"99999999999", b"-", b""]) + data[at + 1 :]
                )
            continue
        data = b"\r\n".join(lines)
    return data


def test_seeded_mutations():
    seeds = [*SAMPLES, *crafted(), *torture()]
    rng = random.Random(4475)
    taken = 0
    count = 6000
    for _ in range(count):
        data = _mutations(rng.choice(seeds), rng)
        assert_same(data)
        taken += _cmessage.fast_path(data) is not None
    # Many mutations leave a message the fast path reads (odd whitespace, case...).
    assert taken > count // 10, taken


# -- hypothesis-built messages ---------------------------------------------------------

_NAMES = [
    "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Content-Length", "l",
    "Contact", "m", "Allow", "Supported", "k", "User-Agent", "Max-Forwards", "Route",
    "Record-Route", "X-Custom", "content-type", "c", "P-Asserted-Identity", "Bad Name",
    "", "ViA", "CALL-ID",
]  # fmt: skip
_VALUE_ALPHABET = ' \t:;,<>"\\@%[]/=?*.+-_~!0129aZsipSIPtagUDPvV\x0b\x1c\x7fé'
_START_LINES = [
    "INVITE sip:bob@example.com SIP/2.0",
    "OPTIONS sip:100@192.0.2.1:5060;transport=udp SIP/2.0",
    "BYE  sip:bob@example.com SIP/2.0 ",
    "ACK sip:[2001:db8::1]:5070 SIP/2.0",
    "REGISTER sips:example.com SIP/2.0",
    "INVITE tel:+4930123 SIP/2.0",
    "INVITE sip:a@fec0::1:5060 SIP/2.0",
    "SIP/2.0 200 OK",
    "sip/2.0 180 Ringing ",
    "SIP/2.0 404",
    "SIP/2.0 099 Low",
    "SIP/3.0 200 OK",
    "INVITE sip:bob@example.com SIP/2.1",
    "INV@TE sip:bob@example.com SIP/2.0",
]


@st.composite
def messages(draw) -> bytes:
    start = draw(st.sampled_from(_START_LINES))
    base = [line for line in BASE_HEADERS if draw(st.booleans()) or draw(st.booleans())]
    extra = draw(
        st.lists(
            st.tuples(st.sampled_from(_NAMES), st.text(alphabet=_VALUE_ALPHABET, max_size=40)),
            max_size=6,
        )
    )
    lines = base + [f"{name}:{value}" for name, value in extra]
    order = draw(st.permutations(range(len(lines))))
    lines = [lines[i] for i in order]
    body = draw(st.sampled_from([b"", SDP_OFFER, b"hello"]))
    length = draw(st.sampled_from([None, len(body), 0, len(body) + 5, -1]))
    if length is not None:
        lines.append(f"Content-Length: {length}")
    eol = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    return build(start, lines, body, eol)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_built_messages(data):
    assert_same(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.binary(max_size=8), st.integers(0, 2000))
def test_random_bytes_inserted(sample, insert, position):
    at = position % (len(sample) + 1)
    assert_same(sample[:at] + insert + sample[at:])


@pytest.mark.parametrize(
    "length, tail",
    [
        (len(SDP_OFFER), b""),
        (len(SDP_OFFER), b"\r\n \t"),
        (len(SDP_OFFER) - 4, b""),  # the body cut short: the rest is trailing octets
        (len(SDP_OFFER), b"garbage"),
        (len(SDP_OFFER) + 1, b""),  # more than the datagram holds: refused
        ("000" + str(len(SDP_OFFER)), b""),
        ("0000000000" + str(len(SDP_OFFER)), b""),
        ("1234567890", b""),
        (" " + str(len(SDP_OFFER)), b""),
        ("+" + str(len(SDP_OFFER)), b""),
    ],
)
def test_one_content_length(length, tail):
    lines = [*BASE_HEADERS, f"Content-Length: {length}"]
    data = build("INVITE sip:bob@example.com SIP/2.0", lines, SDP_OFFER, "\r\n") + tail
    assert_same(data)


@pytest.mark.parametrize(
    "cseq",
    [
        "1 INVITE",
        "0001 INVITE",
        "  1 \t INVITE  ",
        "1\x1cINVITE",  # a blank to str.split(), not to bytes
        "1 INVITE extra",
        "1",
        "INVITE",
        "",
        "9999999999 INVITE",
        "10000000000 INVITE",  # eleven digits
        "0000000000042 INVITE",
        "2147483648 INVITE",  # beyond RFC 3261's 2**31
        "-1 INVITE",
        "+1 INVITE",
        "1.0 INVITE",
        "\u0661 INVITE",  # an Arabic-Indic digit
        "1 INVIT\u00c9",
        "1\u00a0INVITE",  # a no-break space: a blank to str.split()
        "1 BYE",  # not the request's method
    ],
)
@pytest.mark.parametrize("start", ["INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK"])
def test_cseq(cseq, start):
    lines = [h if not h.startswith("CSeq:") else f"CSeq: {cseq}" for h in BASE_HEADERS]
    data = build(start, [*lines, f"Content-Length: {len(SDP_OFFER)}"], SDP_OFFER, "\r\n")
    assert_same(data)
