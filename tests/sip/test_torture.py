"""RFC 4475 and RFC 5118 torture messages against the SIP parser.

The messages live in the shared corpus (``shared/corpus/torture`` next to the
repository); these tests skip when it is absent. `EXPECTED` records, per file, what
voiplog does with it: parse it, or reject it with a given error kind. A few messages
the RFCs call invalid are accepted on purpose, each with the reason: voiplog is a
passive observer, and refusing a message that the endpoints themselves went on with
would lose a real call from the records.
"""

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from voiplog.sip import (
    SipParseError,
    looks_like_sip,
    parse_message,
    parse_name_addr,
    parse_sdp,
    uri_host,
    uri_port,
    uri_user,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "torture"

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason=f"torture corpus not found at {CORPUS}"),
]


@dataclass(frozen=True)
class Expect:
    kind: str | None = None
    """Error kind the parser must raise; None when the message must parse."""
    accepted_because: str = ""
    """For a message the RFCs call invalid that voiplog parses: why."""


PARSES = Expect()

_UNUSED_DATE = (
    "the Date header is never used by voiplog; checking date syntax would cost time on "
    "every message and drop calls from devices with sloppy clocks or formats"
)
_DISPLAY_NAME = (
    "unquoted display names with non-token characters (commas, UTF-8 names) are common "
    "from real devices, display names are not CDR fields, and the URI inside <> is "
    "unambiguous"
)
_START_LINE_BLANKS = (
    "extra blanks around request-line elements leave its meaning unambiguous and lenient "
    "stacks accept them; the message is flagged with the sip.start_line_whitespace anomaly"
)

EXPECTED: dict[str, Expect] = {
    # RFC 4475 §3.1.1: valid messages.
    "rfc4475/wsinv.dat": PARSES,
    "rfc4475/intmeth.dat": PARSES,
    "rfc4475/esc01.dat": PARSES,
    "rfc4475/escnull.dat": PARSES,
    "rfc4475/esc02.dat": PARSES,
    "rfc4475/lwsdisp.dat": PARSES,
    "rfc4475/longreq.dat": PARSES,
    "rfc4475/dblreq.dat": PARSES,
    "rfc4475/semiuri.dat": PARSES,
    "rfc4475/transports.dat": PARSES,
    "rfc4475/mpart01.dat": PARSES,
    "rfc4475/unreason.dat": PARSES,
    "rfc4475/noreason.dat": PARSES,
    # RFC 4475 §3.1.2: invalid messages.
    "rfc4475/badinv01.dat": Expect("sip.bad_via"),
    "rfc4475/clerr.dat": Expect("sip.content_length"),
    "rfc4475/ncl.dat": Expect("sip.content_length"),
    "rfc4475/scalar02.dat": Expect("sip.bad_cseq"),
    "rfc4475/scalarlg.dat": Expect("sip.bad_cseq"),
    "rfc4475/quotbal.dat": Expect("sip.bad_name_addr"),
    "rfc4475/ltgtruri.dat": Expect("sip.bad_uri"),
    "rfc4475/lwsruri.dat": Expect("sip.bad_start_line"),
    "rfc4475/lwsstart.dat": Expect(accepted_because=_START_LINE_BLANKS),
    "rfc4475/trws.dat": Expect(accepted_because=_START_LINE_BLANKS),
    "rfc4475/escruri.dat": Expect("sip.bad_uri"),
    "rfc4475/baddate.dat": Expect(accepted_because=_UNUSED_DATE),
    "rfc4475/regbadct.dat": Expect(
        accepted_because=(
            "the fault is in Contact, which a call does not need; its text still reads as "
            "one URI (a '?' can only start its headers part), and the registrar's own "
            "answer decides whether the binding exists"
        )
    ),
    "rfc4475/badaspec.dat": Expect("sip.bad_name_addr"),
    "rfc4475/baddn.dat": Expect(accepted_because=_DISPLAY_NAME),
    "rfc4475/badvers.dat": Expect("sip.bad_version"),
    "rfc4475/mismatch01.dat": Expect("sip.bad_cseq"),
    "rfc4475/mismatch02.dat": Expect("sip.bad_cseq"),
    "rfc4475/bigcode.dat": Expect("sip.bad_status_code"),
    # RFC 4475 §3.2 and §3.3: syntactically valid, odd at higher layers.
    "rfc4475/badbranch.dat": PARSES,
    # Missing From, To and Call-ID: no call can be identified without them, so this
    # one is refused even though the RFC files it under the application layer.
    "rfc4475/insuf.dat": Expect("sip.missing_header"),
    "rfc4475/unkscm.dat": PARSES,
    "rfc4475/novelsc.dat": PARSES,
    "rfc4475/unksm2.dat": PARSES,
    "rfc4475/bext01.dat": PARSES,
    "rfc4475/invut.dat": PARSES,
    "rfc4475/regaut01.dat": PARSES,
    "rfc4475/multi01.dat": PARSES,
    "rfc4475/mcl01.dat": PARSES,
    "rfc4475/bcast.dat": PARSES,
    "rfc4475/zeromf.dat": PARSES,
    "rfc4475/cparam01.dat": PARSES,
    "rfc4475/cparam02.dat": PARSES,
    "rfc4475/regescrt.dat": PARSES,
    "rfc4475/sdp01.dat": PARSES,
    # RFC 4475 §3.4: backward compatibility.
    "rfc4475/inv2543.dat": PARSES,
    # RFC 4475 copies shipped by another project.
    "rfc4475_variants/baddn.sipsorcery.dat": Expect(
        accepted_because=_DISPLAY_NAME + "; the missing final empty line is tolerated too"
    ),
    "rfc4475_variants/test.sipsorcery.dat": Expect("sip.bad_start_line"),
    # RFC 5118: IPv6.
    "rfc5118/ipv6-good": PARSES,
    "rfc5118/ipv6-bad": Expect(
        accepted_because=(
            "a real phone sends un-bracketed IPv6 Request-URIs in answered calls (corpus "
            "capture heplify__sip_ipv6.pcap: sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060); "
            "the address is read as IPv6 when it parses as one, a final :digits as the "
            "port otherwise, and the message is flagged sip.unbracketed_ipv6"
        )
    ),
    "rfc5118/port-ambiguous": Expect(
        accepted_because=(
            "RFC 5118 §4.3: [2001:db8::10:5070] is a well-formed IPv6 reference, so the "
            "message is syntactically valid; the port its author probably meant cannot be "
            "recovered, and the address is read literally"
        )
    ),
    "rfc5118/port-unambiguous": PARSES,
    "rfc5118/via-received-param-with-delim": PARSES,
    "rfc5118/via-received-param-no-delim": PARSES,
    "rfc5118/ipv6-in-sdp": PARSES,
    "rfc5118/mult-ip-in-header": PARSES,
    "rfc5118/mult-ip-in-sdp": PARSES,
    "rfc5118/ipv4-mapped-ipv6": PARSES,
    "rfc5118/ipv6-bug-abnf-3-colons": Expect("sip.bad_uri"),
    "rfc5118/ipv6-correct-abnf-2-colons": PARSES,
}


def manifest() -> dict[str, str]:
    with (CORPUS / "MANIFEST.tsv").open(newline="", encoding="utf-8") as handle:
        return {row["file"]: row["description"] for row in csv.DictReader(handle, delimiter="\t")}


def load(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_table_covers_the_manifest_exactly():
    assert set(manifest()) == set(EXPECTED)


def test_table_agrees_with_the_manifest_descriptions():
    for name, description in manifest().items():
        expect = EXPECTED[name]
        if " valid:" in description:
            assert expect == PARSES, name
        if "invalid" in description:
            assert expect.kind is not None or expect.accepted_because, name
        if expect.accepted_because:
            assert expect.kind is None, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message(name):
    data = load(name)
    expect = EXPECTED[name]
    if expect.kind is None:
        msg = parse_message(data)
        assert msg.call_id and msg.from_ is not None and msg.to is not None
    else:
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.kind == expect.kind


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_reaches_the_parser(name):
    """Everything but a start line without a SIP version is routed to the parser."""
    assert looks_like_sip(load(name)) == (name != "rfc4475_variants/test.sipsorcery.dat")


# --- key fields of selected messages ------------------------------------------------------


def test_wsinv_fields():
    msg = parse_message(load("rfc4475/wsinv.dat"))
    assert msg.request_uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.to.uri == "sip:vivekg@chair-dnrc.example.com"
    assert msg.to_tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_tag == "98asjd8"
    assert (msg.cseq_num, msg.cseq_method) == (9, "INVITE")
    assert msg.via_branch == "390skdjuw"
    assert len(msg.get_all("via")) == 3
    assert msg.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.get("subject") == ""
    assert msg.contact.display == 'Quoted string ""'
    assert msg.contact.param("q") == "0.33"
    assert parse_sdp(msg.sdp_body).media[0].connection == "192.0.2.4"


def test_intmeth_fields():
    msg = parse_message(load("rfc4475/intmeth.dat"))
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq_method == msg.method
    assert uri_user(msg.request_uri) == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.from_.param("fromparam''~+*_!.-%") == '"работающий"'
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_user_parts_are_unescaped():
    msg = parse_message(load("rfc4475/esc01.dat"))
    assert uri_user(msg.request_uri) == "sips:user@example.com"
    assert uri_host(msg.request_uri) == "example.net"
    assert uri_user(msg.to.uri) == "user"
    assert uri_user(msg.from_.uri) == "I have spaces"
    assert uri_user(msg.contact.uri) == "caller"
    assert msg.get("content-type") == "application/sdp"


def test_escnull_keeps_escaped_nul():
    msg = parse_message(load("rfc4475/escnull.dat"))
    assert uri_user(msg.to.uri) == "null-\x00-null"
    contacts = [parse_name_addr(value).uri for value in msg.get_all("contact")]
    assert [uri_user(uri) for uri in contacts] == ["\x00", "\x00\x00"]


def test_esc02_percent_is_not_an_escape_in_tokens():
    msg = parse_message(load("rfc4475/esc02.dat"))
    assert msg.method == "RE%47IST%45R"
    assert msg.from_.display == "%Z%45"
    assert msg.via_branch == "z9hG4bK209%fzsnel234"
    assert msg.get_all("contact") == [
        "<sip:alias1@host1.example.com>",
        "<sip:alias3@host3.example.com>",
    ]
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_dblreq_ignores_the_second_request():
    msg = parse_message(load("rfc4475/dblreq.dat"))
    assert msg.method == "REGISTER"
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    assert msg.body == b""
    assert "sip.trailing_octets" in msg.anomalies


def test_semiuri_user_keeps_its_parameters():
    msg = parse_message(load("rfc4475/semiuri.dat"))
    assert uri_user(msg.request_uri) == "user;par=u@example.net"
    assert msg.get_all("accept")[-1] == "message/sipfrag"
    assert len(msg.get_all("accept")) == 6


def test_longreq_long_values():
    msg = parse_message(load("rfc4475/longreq.dat"))
    assert len(msg.get_all("via")) == 34
    assert msg.to.display.startswith("I have a user name of extreme")
    assert uri_user(msg.from_.uri).startswith("amazinglylongcallername")
    assert msg.from_tag.startswith("12982982982982")
    assert len(msg.body) == 150


def test_mpart01_binary_multipart_body():
    msg = parse_message(load("rfc4475/mpart01.dat"))
    assert msg.content_type == "multipart/mixed"
    assert len(msg.body) == 553
    assert msg.sdp_body is None
    assert msg.user_agent == "SIPimp.org/0.2.5 (curses)"


def test_reason_phrases():
    assert parse_message(load("rfc4475/unreason.dat")).reason == (
        "= 2**3 * 5**2 но сто девяносто девять - простое"
    )
    noreason = parse_message(load("rfc4475/noreason.dat"))
    assert (noreason.status, noreason.reason) == (100, "")


def test_multi01_keeps_first_values_and_notes_duplicates():
    msg = parse_message(load("rfc4475/multi01.dat"))
    assert msg.call_id == "multi01.98asdh@192.0.2.1"
    assert msg.cseq_num == 5
    assert msg.to.uri == "sip:user@example.com"
    assert msg.from_tag == "3413415"
    assert {"sip.duplicate_call_id", "sip.duplicate_cseq", "sip.duplicate_from"} <= set(
        msg.anomalies
    )


def test_mcl01_conflicting_lengths_take_the_datagram():
    msg = parse_message(load("rfc4475/mcl01.dat"))
    assert msg.body.startswith(b"There's no way to know")
    assert "sip.content_length_conflict" in msg.anomalies


def test_unknown_schemes():
    assert parse_message(load("rfc4475/unkscm.dat")).request_uri == (
        "nobodyKnowsThisScheme:totallyopaquecontent"
    )
    msg = parse_message(load("rfc4475/unksm2.dat"))
    assert msg.to.uri == "isbn:2983792873"
    assert uri_user(msg.to.uri) is None
    assert msg.from_.uri == "http://www.example.com"


def test_inv2543_without_branch_or_length():
    msg = parse_message(load("rfc4475/inv2543.dat"))
    assert msg.via_branch is None
    assert msg.from_tag is None
    assert uri_user(msg.from_.uri) == "+13035551111"
    assert parse_sdp(msg.body).media[0].port == 49217


def test_rfc5118_ipv6_hosts():
    good = parse_message(load("rfc5118/ipv6-good"))
    assert uri_host(good.request_uri) == "2001:db8::10"
    assert uri_host(good.contact.uri) == "2001:db8::1"
    unambiguous = parse_message(load("rfc5118/port-unambiguous"))
    assert (uri_host(unambiguous.request_uri), uri_port(unambiguous.request_uri)) == (
        "2001:db8::10",
        5070,
    )
    ambiguous = parse_message(load("rfc5118/port-ambiguous"))
    assert (uri_host(ambiguous.request_uri), uri_port(ambiguous.request_uri)) == (
        "2001:db8::10:5070",
        None,
    )
    bad = parse_message(load("rfc5118/ipv6-bad"))
    assert (uri_host(bad.request_uri), uri_port(bad.request_uri)) == ("2001:db8::10", None)
    assert "sip.unbracketed_ipv6" in bad.anomalies
    two_colons = parse_message(load("rfc5118/ipv6-correct-abnf-2-colons"))
    assert uri_host(two_colons.request_uri) == "2001:db8::192.0.2.1"
    mapped = parse_message(load("rfc5118/ipv4-mapped-ipv6"))
    assert uri_host(mapped.contact.uri) == "::ffff:192.0.2.2"


def test_rfc5118_vias():
    headers = parse_message(load("rfc5118/mult-ip-in-header"))
    assert len(headers.get_all("via")) == 3
    assert headers.via_branch == "z9hG4bKas3-111"
    for name in ("rfc5118/via-received-param-no-delim", "rfc5118/via-received-param-with-delim"):
        assert parse_message(load(name)).via_branch.startswith("z9hG4bKas3")


def test_rfc5118_ipv6_in_sdp():
    # These RFC examples understate Content-Length by a few octets, so the bodies are
    # cut short; the connection lines all come before the cut.
    sdp = parse_sdp(parse_message(load("rfc5118/ipv6-in-sdp")).sdp_body)
    assert sdp.origin.addrtype == "IP6"
    assert [m.connection for m in sdp.media] == ["2001:db8::20", "2001:db8::20"]
    mixed = parse_sdp(parse_message(load("rfc5118/mult-ip-in-sdp")).sdp_body)
    assert mixed.connection is None
    assert [m.connection for m in mixed.media] == ["192.0.2.1", "2001:db8::1"]
    mapped = parse_sdp(parse_message(load("rfc5118/ipv4-mapped-ipv6")).sdp_body)
    assert mapped.media[0].connection == "::ffff:192.0.2.2"
    assert mapped.media[0].codec(2) == "G726-32"


def test_rfc4475_sdp_bodies_parse():
    for name, expect in EXPECTED.items():
        if expect.kind is not None:
            continue
        body = parse_message(load(name)).sdp_body
        if body is not None:
            assert parse_sdp(body).media, name
