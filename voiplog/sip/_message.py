"""SIP message parsing: the bytes of one message in, a `SipMessage` out.

Strategy: this runs on every SIP packet, so it works on whole strings with C-level
operations and avoids per-header regexes. The head is cut from the body at the
first empty line (CRLF or bare LF, both seen from real devices), decoded once, split
into lines once; folded lines are joined only when a continuation line turns up. Each header is
then named (compact forms expanded), split on commas only where the grammar allows
lists, and the few fields a call tracker needs are pulled out and checked.

Checks are chosen from the point of view of a passive observer: reject what would
make a CDR field wrong or ambiguous (start line, CSeq, From/To, Content-Length,
Request-URI target, Via), tolerate what the endpoints themselves commonly tolerate,
and record tolerated oddities in `SipMessage.anomalies` so they can be counted.
Where the head, the body and its SDP end is `voiplog.sip._framing`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voiplog._frozen import fast_frozen_init
from voiplog.sip._errors import SipParseError
from voiplog.sip._framing import _body, _find_sdp, _head_end
from voiplog.sip._uri import (
    NameAddr,
    check_request_uri,
    parse_name_addr,
    parse_params,
    split_quoted,
)

# RFC 3261 §7.3.3 and the extensions that registered a compact form.
COMPACT_FORMS: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1 lets them be
# split or combined). Headers whose single value may itself contain commas
# (Date, User-Agent, Server, Authorization, WWW-Authenticate, Proxy-*, Call-ID...)
# are deliberately absent.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "accept",
        "accept-contact",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "diversion",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-associated-uri",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "recv-info",
        "reject-contact",
        "request-disposition",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

# What parse_message does with each header, looked up once per header line:
# keep it, split it as a list, remember the first value, or check it as a Via or
# Content-Length. Common headers are listed so that they skip the name checks.
_PLAIN, _LIST, _SINGLE, _VIA, _LENGTH = range(5)
_ROLES: dict[str, tuple[str, int]] = {name: (name, _LIST) for name in LIST_HEADERS}
_ROLES.update(
    {
        name: (name, _PLAIN)
        for name in (
            "authorization",
            "content-disposition",
            "content-type",
            "date",
            "event",
            "expires",
            "max-forwards",
            "min-se",
            "p-access-network-info",
            "p-charging-vector",
            "privacy",
            "proxy-authenticate",
            "proxy-authorization",
            "rack",
            "refer-to",
            "referred-by",
            "rseq",
            "server",
            "session-expires",
            "subject",
            "subscription-state",
            "timestamp",
            "user-agent",
            "www-authenticate",
        )
    }
)
_ROLES.update({name: (name, _SINGLE) for name in ("call-id", "cseq", "from", "to")})
_ROLES["via"] = ("via", _VIA)
_ROLES["content-length"] = ("content-length", _LENGTH)
for _compact, _full in COMPACT_FORMS.items():
    _ROLES[_compact] = _ROLES.get(_full, (_full, _PLAIN))

_REQUIRED = ("via", "from", "to", "call-id", "cseq")
_PRETTY = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
_MAX_CSEQ = 0xFFFFFFFF
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")

# Bounded so that a large non-SIP payload costs no more than a short one.
_SNIFF_LIMIT = 512
_STATUS_LINE_RE = re.compile(rb"(?:\r?\n)*(?i:SIP)/[0-9]{1,3}\.[0-9]{1,3} +[0-9]{1,12}[ \r\n]")
_REQUEST_START_RE = re.compile(rb"(?:\r?\n)*[A-Za-z0-9\-.!%*_+`'~]{1,64} +[^\x00-\x20]")
_VERSION_TAIL_RE = re.compile(rb" (?i:SIP)/[0-9]{1,3}\.[0-9]{1,3}\Z")


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class SipMessage:
    """One parsed SIP request or response."""

    method: str | None
    """Request method, case as sent (methods are case-sensitive); None for responses."""
    request_uri: str | None
    """Request-URI as sent; None for responses."""
    status: int | None
    """Response status code, 100-699; None for requests."""
    reason: str | None
    """Response reason phrase, possibly empty; None for requests."""
    headers: tuple[tuple[str, str], ...]
    """(lower-case full header name, value) in message order, lists split."""
    body: bytes
    """Message body, cut to Content-Length when the datagram holds more."""
    call_id: str | None
    """Call-ID (the first one if the message repeats it)."""
    cseq_num: int | None
    """CSeq sequence number, 0 to 2**32-1."""
    cseq_method: str | None
    """CSeq method; equals `method` for requests."""
    from_: NameAddr | None
    """Parsed From header."""
    to: NameAddr | None
    """Parsed To header."""
    anomalies: tuple[str, ...] = ()
    """Names of tolerated oddities (``sip.duplicate_call_id``...), for counting."""

    @property
    def is_request(self) -> bool:
        """True for a request, False for a response."""
        return self.method is not None

    @property
    def is_response(self) -> bool:
        """True for a response, False for a request."""
        return self.method is None

    def get(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive, compact forms accepted)."""
        key = canonical_header_name(name)
        for header, value in self.headers:
            if header == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name` in order, list headers already split."""
        key = canonical_header_name(name)
        return [value for header, value in self.headers if header == key]

    @property
    def from_tag(self) -> str | None:
        """Tag of the From header."""
        return self.from_.tag if self.from_ is not None else None

    @property
    def to_tag(self) -> str | None:
        """Tag of the To header (None on an out-of-dialog request)."""
        return self.to.tag if self.to is not None else None

    @property
    def user_agent(self) -> str | None:
        """User-Agent header value."""
        return self.get("user-agent")

    @property
    def server(self) -> str | None:
        """Server header value (the User-Agent counterpart in responses)."""
        return self.get("server")

    @property
    def content_type(self) -> str | None:
        """Media type of the body, lower-case without parameters (``application/sdp``)."""
        value = self.get("content-type")
        if value is None:
            return None
        return value.split(";", 1)[0].strip().lower() or None

    @property
    def top_via(self) -> str | None:
        """The topmost Via value (the one added by the sender of this message)."""
        return self.get("via")

    @property
    def via_branch(self) -> str | None:
        """``branch`` parameter of the topmost Via: the transaction identifier."""
        via = self.get("via")
        if via is None:
            return None
        semi = via.find(";")
        if semi < 0:
            return None
        for key, value in parse_params(via[semi:]):
            if key == "branch":
                return value
        return None

    @property
    def via_branches(self) -> list[str]:
        """The ``branch`` of every Via that has one, topmost first: a proxy
        forwarding a request adds its own on top of the sender's."""
        branches = []
        for header, via in self.headers:
            if header != "via":
                continue
            semi = via.find(";")
            if semi < 0:
                continue
            if '"' in via:
                for key, value in parse_params(via[semi:]):
                    if key == "branch" and value:
                        branches.append(value)
                        break
                continue
            # Without quotes, parameters are what lies between semicolons (as
            # `parse_params` splits them); only the first non-empty branch counts.
            for param in via[semi + 1 :].split(";"):
                name, eq, value = param.partition("=")
                if eq and name.strip().lower() == "branch":
                    value = value.strip()
                    if value:
                        branches.append(value)
                        break
        return branches

    @property
    def contact(self) -> NameAddr | None:
        """First Contact, parsed; None when absent, ``*`` or unreadable.

        Contact is not needed to identify a call, so an unreadable one is not worth
        failing the whole message for.
        """
        value = self.get("contact")
        if value is None or value == "*":
            return None
        try:
            return parse_name_addr(value)
        except SipParseError:
            return None

    @property
    def sdp_body(self) -> bytes | None:
        """The SDP carried by this message, also from inside a multipart body (SIP-I).

        None when the message carries no ``application/sdp`` body.
        """
        body = self.body
        if not body:
            return None
        content_type = self.get("content-type")
        if content_type is None:
            return None
        return _find_sdp(body, content_type, 0)


def canonical_header_name(name: str) -> str:
    """Lower-case full header name: ``I`` -> ``call-id``, ``Via`` -> ``via``."""
    key = _CANONICAL.get(name)
    if key is None:
        key = name.strip().lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_CANONICAL) < _MAX_CANONICAL:
            _CANONICAL[name] = key
    return key


# Names asked for by `SipMessage.get`, canonical: the callers name the same few.
_CANONICAL: dict[str, str] = {}
_MAX_CANONICAL = 4096


def looks_like_sip(payload: bytes) -> bool:
    """Cheap test: does `payload` start with a SIP request line or status line?

    Looks at no more than the first 512 bytes. Any method token is accepted, and
    any SIP version, so that a message with a bad version still reaches the parser
    and is counted as ``sip.bad_version`` rather than vanishing.
    """
    if (payload[:4].upper() == b"SIP/" or payload[:1] in (b"\r", b"\n")) and (
        _STATUS_LINE_RE.match(payload, 0, _SNIFF_LIMIT)
    ):
        return True
    start = _REQUEST_START_RE.match(payload, 0, _SNIFF_LIMIT)
    if start is None:
        return False
    # The line must end in a SIP version; blanks inside the Request-URI are
    # admitted so that a malformed request line still reaches the parser and is
    # counted, instead of passing for non-SIP traffic.
    end = payload.find(b"\n", start.end(), _SNIFF_LIMIT)
    if end < 0:
        return False
    line = payload[start.end() - 1 : end].rstrip(b"\r \t")
    return _VERSION_TAIL_RE.search(line, max(0, len(line) - 12)) is not None


def _bad(message: str, kind: str) -> SipParseError:
    return SipParseError(message, kind)


def _split_list(value: str) -> list[str]:
    """Comma-split a list header value, keeping quoted strings and <URIs> whole."""
    if '"' in value or "<" in value:
        pieces = split_quoted(value, ",", angle=True)
    else:
        pieces = value.split(",")
    # Empty elements (a trailing comma) carry nothing; dropping them is harmless.
    return [piece for piece in map(str.strip, pieces) if piece]


def _check_via(value: str) -> None:
    """A Via element must read ``protocol/version/transport sent-by[;params]``."""
    parts = value.split("/", 2)
    if len(parts) == 3 and parts[0].strip() and parts[1].strip():
        transport_and_host = parts[2].split(None, 1)
        if len(transport_and_host) == 2 and transport_and_host[1][:1] not in (";", ","):
            return
    raise _bad(f"malformed Via {value!r}", "sip.bad_via")


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (starting with SP or HT) to the header they continue."""
    logical: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not logical:
                raise _bad("continuation line before the first header", "sip.bad_header")
            logical[-1] = logical[-1].rstrip() + " " + line.strip()
        else:
            logical.append(line)
    return logical


_Headers = tuple[list[tuple[str, str]], dict[str, str], list[str], list[str], list[str]]


def _read_headers(lines: list[str], begin: int) -> _Headers | None:
    """Headers, first values of the tracked ones, Vias, Content-Lengths, anomalies.

    None when a continuation line is met, so that the caller can unfold and retry.
    """
    anomalies: list[str] = []
    headers: list[tuple[str, str]] = []
    append = headers.append
    first: dict[str, str] = {}
    vias: list[str] = []
    content_lengths: list[str] = []
    for index in range(begin, len(lines)):
        line = lines[index]
        name, colon, value = line.partition(":")
        if not colon:
            if line[:1] in (" ", "\t"):
                return None
            if not line.strip():
                continue
            raise _bad(f"header line without a colon: {line[:200]!r}", "sip.bad_header")
        role = _ROLES.get(name.lower())
        if role is None:
            if line[:1] in (" ", "\t"):
                return None
            name = name.rstrip().lower()
            role = _ROLES.get(name)
            if role is None:
                if not _TOKEN_RE.fullmatch(name):
                    raise _bad(f"header name is not a token: {name[:100]!r}", "sip.bad_header")
                append((name, value.strip()))
                continue
        name, role_kind = role
        value = value.strip()
        if role_kind == _PLAIN:
            append((name, value))
        elif role_kind == _LIST:
            if "," in value:
                for item in _split_list(value):
                    append((name, item))
            else:
                append((name, value))
        elif role_kind == _SINGLE:
            if name in first:
                anomalies.append("sip.duplicate_" + name.replace("-", "_"))
            else:
                first[name] = value
            append((name, value))
        elif role_kind == _VIA:
            # Checked only once the whole head is read: a continuation line
            # further down may still complete this value.
            items = _split_list(value) if "," in value else [value]
            for item in items:
                append((name, item))
            if items:
                vias += items
                if "via" not in first:
                    first["via"] = items[0]
        else:
            content_lengths.append(value)
            append((name, value))
    return headers, first, vias, content_lengths, anomalies


def parse_message(data: bytes) -> SipMessage:
    """Parse one SIP message; raise SipParseError (with a stable `kind`) if unreadable.

    `data` is one UDP payload or one message framed out of a stream. Leading CRLFs
    (keep-alives) are skipped. Without Content-Length the body is the rest of
    `data`; with it, extra trailing octets are ignored (RFC 4475 dblreq) and a
    shortfall is an error (RFC 4475 clerr).
    """
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    head_end, body_start = _head_end(data)
    # "replace" rather than "surrogateescape": the text ends up in JSON and in
    # Postgres, which both refuse lone surrogates. Valid UTF-8 decodes the same
    # whatever else the message holds, so dialog matching stays stable.
    text = data[:head_end].decode("utf-8", "replace")
    # Lines keep a trailing CR: every value is stripped anyway, which is cheaper
    # than rewriting CRLF to LF first.
    lines = text.split("\n")
    anomalies: list[str] = []
    if head_end == len(data) and data:
        anomalies.append("sip.no_empty_line")

    # Start line.
    start = lines[0].rstrip("\r")
    method: str | None = None
    request_uri: str | None = None
    status: int | None = None
    reason: str | None = None
    if start[:4].upper() == "SIP/":
        parts = start.split(None, 2)
        if parts[0].upper() != "SIP/2.0":
            raise _bad(f"unsupported version {parts[0]!r}", "sip.bad_version")
        if len(parts) < 2:
            raise _bad(f"status line without a code: {start!r}", "sip.bad_start_line")
        code = parts[1]
        if len(code) != 3 or not (code.isascii() and code.isdigit()) or code[0] == "0":
            raise _bad(f"bad status code {code[:40]!r}", "sip.bad_status_code")
        status = int(code)
        if status > 699:
            raise _bad(f"bad status code {code!r}", "sip.bad_status_code")
        reason = parts[2].strip() if len(parts) == 3 else ""
    else:
        parts = start.split()
        if len(parts) != 3:
            raise _bad(f"malformed start line {start[:200]!r}", "sip.bad_start_line")
        method, request_uri, version = parts
        if version.upper() != "SIP/2.0":
            if version[:4].upper() == "SIP/":
                raise _bad(f"unsupported version {version!r}", "sip.bad_version")
            raise _bad(f"malformed start line {start[:200]!r}", "sip.bad_start_line")
        if not _TOKEN_RE.fullmatch(method):
            raise _bad(f"method is not a token: {method!r}", "sip.bad_start_line")
        oddity = check_request_uri(request_uri)
        if oddity is not None:
            anomalies.append(oddity)
        # Extra or trailing blanks (RFC 4475 lwsstart, trws) leave the line
        # unambiguous and lenient stacks accept them: no reason to lose the call.
        if len(start) != len(method) + len(request_uri) + len(version) + 2 or "\t" in start:
            anomalies.append("sip.start_line_whitespace")

    # Headers. Folded lines are rare, so they are looked for only when a line
    # does not parse as a header; the head is then read again, unfolded.
    read = _read_headers(lines, 1)
    if read is None:
        read = _read_headers(_unfold(lines), 0)
        if read is None:  # cannot happen: unfolded lines hold no continuation
            raise _bad("unreadable folded header", "sip.bad_header")
    headers, first, vias, content_lengths, header_anomalies = read
    anomalies += header_anomalies

    if len(first) != len(_REQUIRED):
        missing = [_PRETTY[name] for name in _REQUIRED if name not in first]
        raise _bad("missing " + ", ".join(missing), "sip.missing_header")
    for via in vias:
        _check_via(via)

    # CSeq: a 32-bit number and, for requests, the request's own method.
    cseq = first["cseq"].split()
    if len(cseq) != 2:
        raise _bad(f"malformed CSeq {first['cseq']!r}", "sip.bad_cseq")
    number, cseq_method = cseq
    if (
        not (number.isascii() and number.isdigit())
        or len(number.lstrip("0")) > 10
        or int(number) > _MAX_CSEQ
    ):
        raise _bad(f"CSeq number out of range {number[:40]!r}", "sip.bad_cseq")
    if method is not None and cseq_method != method:
        raise _bad(f"CSeq method {cseq_method!r} differs from {method!r}", "sip.bad_cseq")

    try:
        from_ = parse_name_addr(first["from"])
    except SipParseError as err:
        raise _bad(f"From: {err}", err.kind) from None
    try:
        to = parse_name_addr(first["to"])
    except SipParseError as err:
        raise _bad(f"To: {err}", err.kind) from None

    # Body.
    available = len(data) - body_start
    if content_lengths == ["0"]:
        # The usual case of a message without a body, decided at once.
        body = b""
        if available and data[body_start:].strip():
            anomalies.append("sip.trailing_octets")
    else:
        body = _body(data, body_start, available, content_lengths, anomalies)

    return SipMessage(
        method,
        request_uri,
        status,
        reason,
        tuple(headers),
        body,
        first["call-id"],
        int(number),
        cseq_method,
        from_,
        to,
        tuple(anomalies),
    )
