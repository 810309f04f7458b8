"""Name-addr parsing and URI part extraction."""

import pytest

from voiplog.sip import (
    NameAddr,
    SipParseError,
    parse_name_addr,
    percent_unescape,
    uri_host,
    uri_port,
    uri_scheme,
    uri_user,
)

# --- parse_name_addr -------------------------------------------------------------------


def test_quoted_display_name_with_tag():
    addr = parse_name_addr('"Alice Example" <sip:alice@example.com>;tag=1928301774')
    assert addr == NameAddr(
        "Alice Example", "sip:alice@example.com", (("tag", "1928301774"),), "1928301774"
    )


def test_quoted_display_with_escaped_quotes_and_backslashes():
    addr = parse_name_addr(r'"Bob \"the\" Builder \\ Jr" <sip:bob@example.com>')
    assert addr.display == 'Bob "the" Builder \\ Jr'
    assert addr.uri == "sip:bob@example.com"
    assert addr.tag is None


def test_quoted_display_ending_in_escaped_backslash():
    addr = parse_name_addr(r'"J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display == 'J Rosenberg \\"'
    assert addr.tag == "98asjd8"


def test_quoted_display_holding_angle_brackets_and_semicolons():
    addr = parse_name_addr('"<not a uri>; x" <sip:a@b>')
    assert addr.display == "<not a uri>; x"
    assert addr.uri == "sip:a@b"


def test_quoted_control_characters():
    addr = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:x@example.com>')
    assert addr.display == "BEL:\x07 NUL:\x00 DEL:\x7f"


def test_empty_quoted_display_is_none():
    assert parse_name_addr('"" <sip:a@b>').display is None


@pytest.mark.parametrize(
    ("value", "display"),
    [
        ("Alice <sip:alice@example.com>", "Alice"),
        ("caller<sip:caller@example.com>", "caller"),
        ("token1~` token2'+_ <sip:x@y>", "token1~` token2'+_"),
        ("Bell, Alexander <sip:a.g.bell@example.com>", "Bell, Alexander"),
        ("Jürgen <sip:j@example.de>", "Jürgen"),
        ("<sip:anonymous@anonymous.invalid>", None),
    ],
)
def test_unquoted_display_names(value, display):
    assert parse_name_addr(value).display == display


def test_angle_brackets_keep_uri_parameters_in_the_uri():
    addr = parse_name_addr("<sip:+4930123@example.com;user=phone>;tag=abc;x-flag")
    assert addr.uri == "sip:+4930123@example.com;user=phone"
    assert addr.params == (("tag", "abc"), ("x-flag", None))
    assert addr.param("TAG") == "abc"
    assert addr.has_param("x-flag") and addr.param("x-flag") is None
    assert not addr.has_param("absent")


def test_addr_spec_parameters_are_header_parameters():
    # RFC 3261 §20.10: without <>, everything after ";" belongs to the header.
    addr = parse_name_addr("sip:caller@example.net;tag=2234923;user=phone")
    assert addr.uri == "sip:caller@example.net"
    assert addr.tag == "2234923"
    assert addr.param("user") == "phone"
    assert addr.display is None


def test_addr_spec_with_odd_whitespace():
    addr = parse_name_addr(" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n ")
    assert addr.uri == "sip:vivekg@chair-dnrc.example.com"
    assert addr.tag == "1918181833n"


def test_parameters_with_quoted_values():
    addr = parse_name_addr('<sip:x@y>;p="a;b=c";tag=7;q=0.5')
    assert addr.params == (("p", '"a;b=c"'), ("tag", "7"), ("q", "0.5"))
    assert addr.tag == "7"


def test_empty_parameters_are_skipped():
    addr = parse_name_addr('"Joe" <sip:joe@example.org>;;;;')
    assert addr.params == ()


def test_ipv6_host_in_name_addr():
    addr = parse_name_addr('"T. desk phone" <sip:ted@[::ffff:192.0.2.2]:5070>;tag=z')
    assert addr.uri == "sip:ted@[::ffff:192.0.2.2]:5070"
    assert uri_host(addr.uri) == "::ffff:192.0.2.2"
    assert uri_port(addr.uri) == 5070


def test_other_schemes_are_kept():
    assert parse_name_addr("<http://www.example.com>;tag=3234233").uri == "http://www.example.com"
    assert parse_name_addr("isbn:2983792873").uri == "isbn:2983792873"
    assert parse_name_addr("<tel:+1-201-555-0123>").uri == "tel:+1-201-555-0123"


def test_headers_component_inside_angle_brackets():
    addr = parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert addr.uri == "sip:user@example.com?Route=%3Csip:sip.example.com%3E"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        '"Mr. J. User <sip:j.user@example.com>',
        '"Alice" sip:alice@example.com',
        "Alice <sip:alice@example.com",
        "<>",
        "Alice <>;tag=1",
        '"Watson, Thomas" < sip:t.watson@example.org >',
        "<sip:john smith@example.com>",
        "Watson Thomas sip:t.watson@example.org",
        "<sip:a@b> trailing",
        ";tag=1",
    ],
)
def test_bad_name_addr(value):
    with pytest.raises(SipParseError) as info:
        parse_name_addr(value)
    assert info.value.kind == "sip.bad_name_addr"


def test_name_addr_is_frozen_and_hashable():
    addr = parse_name_addr("<sip:a@b>;tag=1")
    with pytest.raises(AttributeError):
        addr.tag = "2"  # type: ignore[misc]
    assert hash(addr) == hash(parse_name_addr("<sip:a@b>;tag=1"))


# --- uri_user -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:alice@example.com", "alice"),
        ("SIP:alice@example.com", "alice"),
        ("sips:alice@example.com:5061;transport=tls", "alice"),
        ("sip:+4930123456@sip.example.net;user=phone", "+4930123456"),
        ("sip:alice:secret@example.com", "alice"),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "+1-212-555-1212"),
        ("sip:%75se%72@example.com", "user"),
        ("sip:I%20have%20spaces@example.net", "I have spaces"),
        ("sip:sips%3Auser%40example.com@example.net", "sips:user@example.com"),
        ("sip:null-%00-null@example.com", "null-\x00-null"),
        ("sip:user;par=u%40example.net@example.com", "user;par=u@example.net"),
        ("sip:j%C3%BCrgen@example.de", "jürgen"),
        ("sip:100%@example.com", "100%"),
        ("sip:alice@[2001:db8::1]", "alice"),
        ("<sip:alice@example.com>", "alice"),
        ("tel:+1-201-555-0123", "+1-201-555-0123"),
        ("tel:+1-201-555-0123;phone-context=example.com", "+1-201-555-0123"),
        ("TEL:7042;phone-context=+1-201", "7042"),
        ("tel:%2B49301234", "+49301234"),
    ],
)
def test_uri_user(uri, user):
    assert uri_user(uri) == user


@pytest.mark.parametrize(
    "uri",
    [
        "sip:example.com",
        "sip:[2001:db8::10]",
        "sip:@example.com",
        "tel:",
        "http://www.example.com",
        "urn:service:sos",
        "name:John_Smith",
        "alice@example.com",
        "",
    ],
)
def test_uri_without_user(uri):
    assert uri_user(uri) is None


def test_unusual_user_part_from_rfc4475_intmeth():
    uri = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    assert uri_user(uri) == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri_host(uri) == "example.com"


# --- uri_host / uri_port / uri_scheme ---------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("sip:alice@Example.COM", "example.com", None),
        ("sip:alice@example.com:5080;transport=tcp", "example.com", 5080),
        ("sip:example.com", "example.com", None),
        ("sip:192.0.2.4:5060", "192.0.2.4", 5060),
        ("sips:[2001:DB8::10]:5061", "2001:db8::10", 5061),
        ("sip:[2001:db8::10:5070]", "2001:db8::10:5070", None),
        ("sip:user@[2001:db8::192.0.2.1]", "2001:db8::192.0.2.1", None),
        ("sip:host?Subject=x", "host", None),
        ("<sip:alice@example.com:5060>", "example.com", 5060),
        ("sip:2001:db8::10", "2001:db8::10", None),
        ("sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060", "fec0:0:0:0:216:d3ff:fe0d:22c", 5060),
        ("sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c", "fec0:0:0:0:216:d3ff:fe0d:22c", None),
    ],
)
def test_uri_host_and_port(uri, host, port):
    assert uri_host(uri) == host
    assert uri_port(uri) == port


@pytest.mark.parametrize(
    "uri",
    [
        "sip:a:b:c",
        "sip:2001:db8:::1:5060",
        "sip:alice@[2001:db8::1",
        "sip:alice@host:port",
        "sip:alice@host:123456",
        "sip:alice@",
        "tel:+123",
        "mailto:x@example.com",
        "",
    ],
)
def test_uri_host_unreadable(uri):
    assert uri_host(uri) is None
    assert uri_port(uri) is None


def test_uri_port_out_of_range():
    assert uri_port("sip:a@b:70000") is None


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("sip:a@b", "sip"),
        ("SIPS:a@b", "sips"),
        ("tel:+1", "tel"),
        ("soap.beep://192.0.2.103:3002", "soap.beep"),
        ("<sip:a@b>", "sip"),
        ("a@b", None),
        (":x", None),
        ("1sip:x", None),
    ],
)
def test_uri_scheme(uri, scheme):
    assert uri_scheme(uri) == scheme


# --- percent_unescape -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("%41%42c", "ABc"),
        ("%e2%82%ac", "€"),
        ("%Z%45", "%ZE"),
        ("50%", "50%"),
        ("%4", "%4"),
        ("% 1", "% 1"),
        ("%+1", "%+1"),
        ("%ff", "\ufffd"),
    ],
)
def test_percent_unescape(text, result):
    assert percent_unescape(text) == result


def test_percent_unescape_output_is_always_encodable():
    result = percent_unescape("\udc80%41%C3")
    assert result.endswith("A\ufffd")
    result.encode("utf-8")
