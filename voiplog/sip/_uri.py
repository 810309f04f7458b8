"""SIP URIs and name-addr header values (From, To, Contact, Route...).

Strategy: plain string operations, no full RFC 3261 grammar. A URI is kept as the
exact text the peer sent, because CDRs quote it verbatim; the functions here pull
out the parts voiplog needs (user, host, port) on demand. Validation is light on
purpose: it rejects what would make an extracted field ambiguous or meaningless,
not every slip of the grammar, since a call that the endpoints accepted must not be
lost because a passive observer was stricter than they were.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from voiplog._frozen import fast_frozen_init
from voiplog.sip._errors import SipParseError

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_HEX = frozenset("0123456789abcdefABCDEF")
_SIP_SCHEMES = ("sip", "sips")


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact-style value: optional display name, URI, header parameters.

    `uri` is the text between ``<`` and ``>`` exactly as sent (or the bare addr-spec);
    header parameters such as ``tag`` follow the URI and are never part of it.
    """

    display: str | None
    """Display name, unquoted and unescaped; None when absent or empty."""
    uri: str
    """The URI without header parameters, exactly as sent."""
    params: tuple[tuple[str, str | None], ...]
    """Header parameters in order: (lower-case name, raw value or None)."""
    tag: str | None
    """The ``tag`` parameter, the dialog identifier half carried by From and To."""

    def param(self, name: str) -> str | None:
        """Value of the first header parameter `name` (case-insensitive), else None.

        A parameter present without a value (``;lr``) also gives None; use
        `has_param` to tell it from an absent one.
        """
        name = name.lower()
        for key, value in self.params:
            if key == name:
                return value
        return None

    def has_param(self, name: str) -> bool:
        """Whether header parameter `name` is present, with or without a value."""
        name = name.lower()
        return any(key == name for key, _ in self.params)


def split_quoted(text: str, sep: str, angle: bool = False) -> list[str]:
    """Split `text` on `sep`, except inside quoted strings (and ``<...>`` if `angle`).

    Backslash escapes are honoured inside quotes, so ``"a\\",b"`` stays whole. An
    unterminated quote swallows the rest of the text rather than failing: callers
    that care (name-addr parsing) detect it themselves.
    """
    pieces: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    escaped = False
    for i, ch in enumerate(text):
        if in_quotes:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif angle and ch == "<":
            in_angle = True
        elif angle and ch == ">":
            in_angle = False
        elif ch == sep and not in_angle:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return pieces


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;name=value;flag`` parameters; names lower-cased, values kept raw.

    Empty parameters (``;;``) are skipped: they carry nothing and real devices emit
    stray separators.
    """
    if not text:
        return ()
    pieces = split_quoted(text, ";") if '"' in text else text.split(";")
    params: list[tuple[str, str | None]] = []
    for piece in pieces:
        eq = piece.find("=")
        if eq < 0:
            name = piece.strip()
            if name:
                params.append((name.lower(), None))
        else:
            name = piece[:eq].strip()
            if name:
                params.append((name.lower(), piece[eq + 1 :].strip()))
    return tuple(params)


def _closing_quote(text: str) -> int:
    """Index of the quote closing the quoted string opening at text[0], or -1."""
    i = 1
    while True:
        j = text.find('"', i)
        if j < 0:
            return -1
        # A quote is escaped when an odd run of backslashes precedes it.
        k = j - 1
        while k > 0 and text[k] == "\\":
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j
        i = j + 1


def _bad_uri(uri: str, value: str) -> SipParseError:
    if not uri:
        return SipParseError(f"empty URI in {value[:200]!r}", "sip.bad_name_addr")
    return SipParseError(f"whitespace inside URI {uri[:200]!r}", "sip.bad_name_addr")


def _params_and_tag(text: str) -> tuple[tuple[tuple[str, str | None], ...], str | None]:
    if not text:
        return (), None
    # The usual case, a lone tag, skips the general parameter parser.
    if text[:5] == ";tag=" and ";" not in text[5:] and '"' not in text:
        tag = text[5:].strip()
        return (("tag", tag),), tag
    params = parse_params(text)
    for key, param in params:
        if key == "tag":
            return params, param
    return params, None


def parse_name_addr(value: str) -> NameAddr:
    """Parse a name-addr (``"Bob" <sip:bob@host>;tag=x``) or addr-spec value.

    In the addr-spec form (no ``<>``) everything after the first ``;`` is a header
    parameter, as RFC 3261 §20.10 prescribes. Raises SipParseError
    (``sip.bad_name_addr``) on an unterminated quote, a missing ``>``, an empty URI,
    whitespace inside the URI, or text that is neither parameters nor URI.
    """
    text = value.strip()
    if not text:
        raise SipParseError("empty name-addr", "sip.bad_name_addr")
    display: str | None
    if text[0] == '"':
        end = text.find('"', 1)
        if end < 0 or text[end - 1] == "\\":
            end = _closing_quote(text)
            if end < 0:
                raise SipParseError(
                    f"unterminated quoted display name in {value[:200]!r}", "sip.bad_name_addr"
                )
        display = text[1:end]
        if "\\" in display:
            display = _QUOTED_PAIR_RE.sub(r"\1", display)
        rest = text[end + 1 :].lstrip()
        if rest[:1] != "<":
            raise SipParseError(
                f"quoted display name without <URI> in {value[:200]!r}", "sip.bad_name_addr"
            )
        display = display or None
    else:
        lt = text.find("<")
        if lt < 0:
            semi = text.find(";")
            if semi < 0:
                uri, after = text, ""
            else:
                uri, after = text[:semi].rstrip(), text[semi:]
            # RFC 3261 allows no whitespace inside a URI (RFC 4475 badaspec);
            # accepting it would make the URI text ambiguous.
            if not uri or " " in uri or "\t" in uri:
                raise _bad_uri(uri, value)
            params, tag = _params_and_tag(after)
            return NameAddr(None, uri, params, tag)
        # Unquoted display names are often not RFC tokens (UTF-8 names, commas in
        # "Bell, Alexander"); they are not CDR fields, so take them as written.
        display = text[:lt].strip() or None
        rest = text[lt:]
    gt = rest.find(">")
    if gt < 0:
        raise SipParseError(f"missing '>' in {value[:200]!r}", "sip.bad_name_addr")
    uri = rest[1:gt]
    if not uri or " " in uri or "\t" in uri:
        raise _bad_uri(uri, value)
    after = rest[gt + 1 :].strip()
    if after and after[0] != ";":
        raise SipParseError(f"unexpected text after URI in {value[:200]!r}", "sip.bad_name_addr")
    params, tag = _params_and_tag(after)
    return NameAddr(display, uri, params, tag)


def percent_unescape(text: str) -> str:
    """Decode ``%HH`` escapes as UTF-8; a ``%`` not followed by two hex digits stays.

    Invalid UTF-8 after decoding becomes U+FFFD rather than failing, so the result
    is always printable into a CDR.
    """
    if "%" not in text:
        return text
    pieces = text.split("%")
    out = bytearray(pieces[0].encode("utf-8", "surrogatepass"))
    for piece in pieces[1:]:
        if len(piece) >= 2 and piece[0] in _HEX and piece[1] in _HEX:
            out.append(int(piece[:2], 16))
            out += piece[2:].encode("utf-8", "surrogatepass")
        else:
            out.append(0x25)
            out += piece.encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


def _bare(uri: str) -> str:
    uri = uri.strip()
    if uri[:1] == "<" and uri[-1:] == ">":
        return uri[1:-1].strip()
    return uri


def uri_scheme(uri: str) -> str | None:
    """Lower-case scheme of `uri` (``sip``, ``tel``...), or None if it has none."""
    uri = _bare(uri)
    colon = uri.find(":")
    if colon <= 0 or not _SCHEME_RE.fullmatch(uri, 0, colon):
        return None
    return uri[:colon].lower()


def _split_sip(uri: str) -> tuple[str | None, str]:
    """(scheme, text after ``scheme:``) of a bare URI; scheme None if absent."""
    colon = uri.find(":")
    if colon <= 0:
        return None, uri
    return uri[:colon].lower(), uri[colon + 1 :]


def uri_user(uri: str) -> str | None:
    """User part of a sip:/sips: URI, or the number of a tel: URI, %-unescaped.

    The password (``user:secret@``) is dropped. Parameters inside the user part
    (``sip:+123;npdi@host``) belong to it per RFC 3261 and are kept. Other schemes
    and URIs without a user give None. Never raises.
    """
    if uri[:4] == "sip:":
        # Nothing to strip before the scheme, and what follows the host does not
        # change the user: the common form, without the general steps.
        scheme, rest = "sip", uri[4:]
    else:
        scheme, rest = _split_sip(_bare(uri))
    if scheme in _SIP_SCHEMES:
        # A user part cannot hold an unescaped "@", so the first one ends it; the
        # user itself may contain "?", ";" and ":" (RFC 4475 intmeth, semiuri).
        at = rest.find("@")
        if at <= 0:
            return None
        user = rest[:at]
        colon = user.find(":")
        if colon >= 0:
            user = user[:colon]
        return percent_unescape(user) or None
    if scheme == "tel":
        semi = rest.find(";")
        number = rest if semi < 0 else rest[:semi]
        return percent_unescape(number.strip()) or None
    return None


def _hostport(rest: str) -> str:
    """The hostport of a sip: URI given the text after ``sip:``."""
    at = rest.find("@")
    if at >= 0:
        rest = rest[at + 1 :]
    end = len(rest)
    for sep in ";?":
        i = rest.find(sep)
        if 0 <= i < end:
            end = i
    return rest[:end]


def _split_hostport(hostport: str) -> tuple[str, str | None] | None:
    """(host, port text or None); None when the hostport is malformed.

    An IPv6 reference is returned without its brackets.
    """
    if hostport[:1] == "[":
        close = hostport.find("]")
        if close < 0:
            return None
        host, tail = hostport[1:close], hostport[close + 1 :]
    else:
        colon = hostport.find(":")
        if colon < 0:
            host, tail = hostport, ""
        elif hostport.find(":", colon + 1) >= 0:
            return _unbracketed_ipv6(hostport)
        else:
            host, tail = hostport[:colon], hostport[colon:]
    if not host:
        return None
    if not tail:
        return host, None
    port = tail[1:]
    if tail[0] != ":" or not (port.isascii() and port.isdigit()) or len(port) > 5:
        return None
    return host, port


def _unbracketed_ipv6(hostport: str) -> tuple[str, str | None] | None:
    """Read an IPv6 address written without brackets, possibly followed by a port.

    RFC 5118 §4.2 calls this invalid, but real phones send it in answered calls
    (``sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060``). The whole text is taken as the
    address when it is one; otherwise a last ``:digits`` is taken as the port.
    """
    try:
        ipaddress.IPv6Address(hostport)
    except ValueError:
        pass
    else:
        return hostport, None
    host, _, port = hostport.rpartition(":")
    if port.isascii() and port.isdigit() and len(port) <= 5:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return host, port
    return None


def uri_host(uri: str) -> str | None:
    """Host of a sip:/sips: URI, lower-cased, IPv6 without brackets; else None."""
    scheme, rest = _split_sip(_bare(uri))
    if scheme not in _SIP_SCHEMES:
        return None
    parts = _split_hostport(_hostport(rest))
    return parts[0].lower() if parts else None


def uri_port(uri: str) -> int | None:
    """Explicit port of a sip:/sips: URI, or None when absent or malformed."""
    scheme, rest = _split_sip(_bare(uri))
    if scheme not in _SIP_SCHEMES:
        return None
    parts = _split_hostport(_hostport(rest))
    if parts is None or parts[1] is None:
        return None
    port = int(parts[1])
    return port if port <= 65535 else None


def check_request_uri(uri: str) -> str | None:
    """Reject a Request-URI whose target cannot be read unambiguously.

    Checked: a scheme is present and no ``<>`` encloses the URI (RFC 4475 ltgtruri);
    for sip:/sips:, a readable hostport, a valid IPv6 reference (RFC 5118 three-colon
    bug) and no ``?headers`` component, which RFC 3261 §19.1.5 forbids in a
    Request-URI (RFC 4475 escruri). Other schemes are opaque. Returns the name of
    a tolerated oddity (``sip.unbracketed_ipv6``), or None.
    """
    if uri[:4] == "sip:":
        rest = uri[4:]
    else:
        if uri[:1] == "<":
            raise SipParseError(f"Request-URI enclosed in <>: {uri[:200]!r}", "sip.bad_uri")
        colon = uri.find(":")
        if colon <= 0 or not _SCHEME_RE.fullmatch(uri, 0, colon):
            raise SipParseError(f"Request-URI without a scheme: {uri[:200]!r}", "sip.bad_uri")
        if uri[:colon].lower() not in _SIP_SCHEMES:
            return None
        rest = uri[colon + 1 :]
    at = rest.find("@")
    if at >= 0:
        rest = rest[at + 1 :]
    if "?" in rest:
        raise SipParseError(f"headers in Request-URI {uri[:200]!r}", "sip.bad_uri")
    semi = rest.find(";")
    hostport = rest if semi < 0 else rest[:semi]
    parts = _split_hostport(hostport)
    if parts is None:
        raise SipParseError(f"malformed host or port in Request-URI {uri[:200]!r}", "sip.bad_uri")
    host, port = parts
    if port is not None and int(port) > 65535:
        raise SipParseError(f"port out of range in Request-URI {uri[:200]!r}", "sip.bad_uri")
    if hostport[0] == "[":
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(
                f"invalid IPv6 reference in Request-URI {uri[:200]!r}", "sip.bad_uri"
            ) from None
    elif ":" in host:
        return "sip.unbracketed_ipv6"
    return None
