"""SDP (RFC 4566/8866) parsing: what media a call negotiates, and where it flows.

Strategy: one pass over the lines; session-level values are collected until the
first ``m=``, then each media section collects its own and inherits the session's
connection address, direction and DTLS attributes. Only the fields that RTP
correlation and CDRs need are kept. Unknown lines and malformed attributes are
skipped, as endpoints do; a malformed ``m=`` or ``c=`` line is an error because it
would silently misplace a stream (media sections are matched by position).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from voiplog._frozen import fast_frozen_init
from voiplog.sip._errors import SdpParseError

_RTPMAP_RE = re.compile(
    r"[ \t]*([0-9]{1,3})[ \t]+([^/\s]+)[ \t]*/[ \t]*([0-9]{1,9})(?:/[ \t]*(\S+))?"
)

DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

# RFC 3551 static payload types: pt -> (encoding name, clock rate, channels).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, str | None]] = {
    0: ("PCMU", 8000, "1"),
    3: ("GSM", 8000, "1"),
    4: ("G723", 8000, "1"),
    5: ("DVI4", 8000, "1"),
    6: ("DVI4", 16000, "1"),
    7: ("LPC", 8000, "1"),
    8: ("PCMA", 8000, "1"),
    9: ("G722", 8000, "1"),
    10: ("L16", 44100, "2"),
    11: ("L16", 44100, "1"),
    12: ("QCELP", 8000, "1"),
    13: ("CN", 8000, "1"),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, "1"),
    16: ("DVI4", 11025, "1"),
    17: ("DVI4", 22050, "1"),
    18: ("G729", 8000, "1"),
    25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None),
    28: ("nv", 90000, None),
    31: ("H261", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
    34: ("H263", 90000, None),
}


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Origin:
    """The ``o=`` line: who created the session and the address it named."""

    username: str
    sess_id: str
    sess_version: str
    nettype: str
    addrtype: str
    address: str


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class IceCandidate:
    """One ``a=candidate`` (RFC 8839): an address where ICE media may flow."""

    component: int
    """1 for RTP, 2 for RTCP."""
    transport: str
    """Lower-case transport (``udp``, ``tcp``)."""
    address: str
    port: int
    type: str
    """``host``, ``srflx``, ``prflx`` or ``relay``."""


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One ``m=`` section with its effective (inherited) attributes."""

    media: str
    """``audio``, ``video``, ``image``, ``application``..."""
    port: int
    """Transport port; 0 means the stream is rejected or disabled."""
    port_count: int
    """Number of consecutive ports (``m=audio 49170/2`` gives 2), normally 1."""
    proto: str
    """``RTP/AVP``, ``RTP/SAVP``, ``UDP/TLS/RTP/SAVPF``, ``udptl``..."""
    formats: tuple[str, ...]
    """Format list as sent (payload type numbers for RTP)."""
    connection: str | None
    """Effective connection address: media-level ``c=``, else session-level."""
    rtpmap: dict[int, tuple[str, int, str | None]]
    """Payload type -> (encoding name, clock rate, channels or other parameters)."""
    direction: str
    """Media-level direction, else session-level, else ``sendrecv``."""
    rtcp_port: int | None
    """Port from ``a=rtcp``, when RTCP is not on port + 1."""
    rtcp_mux: bool
    """``a=rtcp-mux``: RTCP shares the RTP port."""
    ptime: int | None
    """Packet time in milliseconds from ``a=ptime``."""
    crypto: bool
    """``a=crypto`` present: SDES-keyed SRTP."""
    fingerprint: bool
    """``a=fingerprint`` present here or at session level: DTLS-SRTP."""
    setup: str | None
    """``a=setup`` role (``actpass``, ``active``, ``passive``) for DTLS."""
    candidates: tuple[IceCandidate, ...]
    """ICE candidates offered for this section."""

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The numeric formats, for RTP profiles."""
        return tuple(int(f) for f in self.formats if f.isascii() and f.isdigit() and len(f) <= 3)

    def codec(self, payload_type: int) -> str | None:
        """Encoding name of `payload_type`: from ``a=rtpmap``, else the static table."""
        entry = self.rtpmap.get(payload_type) or STATIC_PAYLOAD_TYPES.get(payload_type)
        return entry[0] if entry else None


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A parsed SDP body."""

    origin: Origin | None
    """The ``o=`` line, or None when absent or unreadable."""
    session_name: str | None
    """The ``s=`` line."""
    connection: str | None
    """Session-level ``c=`` address, without ``/ttl`` or ``/count``."""
    direction: str
    """Session-level direction attribute, ``sendrecv`` by default."""
    media: tuple[MediaDescription, ...]
    """Media sections in order (answers match offers by position)."""


class _Section:
    """Mutable collector for one media section while its lines are read."""

    __slots__ = (
        "candidates",
        "connection",
        "crypto",
        "direction",
        "fingerprint",
        "formats",
        "media",
        "port",
        "port_count",
        "proto",
        "ptime",
        "rtcp_mux",
        "rtcp_port",
        "rtpmap",
        "setup",
    )

    def __init__(self) -> None:
        self.connection: str | None = None
        self.direction: str | None = None
        self.rtpmap: dict[int, tuple[str, int, str | None]] = {}
        self.rtcp_port: int | None = None
        self.rtcp_mux = False
        self.ptime: int | None = None
        self.crypto = False
        self.fingerprint = False
        self.setup: str | None = None
        self.candidates: list[IceCandidate] = []
        self.media = ""
        self.port = 0
        self.port_count = 1
        self.proto = ""
        self.formats: tuple[str, ...] = ()


def _port(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    port = int(text)
    return port if port <= 65535 else None


def _connection(value: str) -> str:
    fields = value.split()
    if len(fields) < 3:
        raise SdpParseError(f"malformed c= line {value[:100]!r}", "sdp.bad_connection")
    # Multicast suffixes (/ttl, /count) are not part of the address.
    address = fields[2].split("/", 1)[0]
    if not address:
        raise SdpParseError(f"malformed c= line {value[:100]!r}", "sdp.bad_connection")
    return address


def _media_line(value: str, section: _Section) -> None:
    fields = value.split()
    if len(fields) < 3:
        raise SdpParseError(f"malformed m= line {value[:100]!r}", "sdp.bad_media")
    port_text, _, count_text = fields[1].partition("/")
    port = _port(port_text)
    count = _port(count_text) if count_text else 1
    if port is None or not count:
        raise SdpParseError(f"bad port in m= line {value[:100]!r}", "sdp.bad_media")
    section.media = fields[0]
    section.port = port
    section.port_count = count
    section.proto = fields[2]
    section.formats = tuple(fields[3:])


def _rtpmap(arg: str, section: _Section) -> None:
    # A malformed rtpmap, such as one without a clock rate (RFC 4475's
    # "a=rtpmap:31 LPC"), is skipped: the static table then answers for the type.
    match = _RTPMAP_RE.match(arg)
    if match is None:
        return
    pt_text, name, clock, channels = match.groups()
    payload_type = int(pt_text)
    if payload_type <= 127 and payload_type not in section.rtpmap:
        section.rtpmap[payload_type] = (name, int(clock), channels or None)


def _rtcp(arg: str, section: _Section) -> None:
    fields = arg.split(None, 1)
    section.rtcp_port = _port(fields[0]) if fields else None


def _rtcp_mux(arg: str, section: _Section) -> None:
    section.rtcp_mux = True


def _ptime(arg: str, section: _Section) -> None:
    text = arg.strip()
    if text.isascii() and text.isdigit() and len(text) <= 6:
        section.ptime = int(text)


def _crypto(arg: str, section: _Section) -> None:
    section.crypto = True


def _fingerprint(arg: str, section: _Section) -> None:
    section.fingerprint = True


def _setup(arg: str, section: _Section) -> None:
    section.setup = arg.strip().lower() or None


def _candidate(arg: str, section: _Section) -> None:
    fields = arg.split()
    if len(fields) >= 8 and fields[6] == "typ":
        component = _port(fields[1])
        port = _port(fields[5])
        if component is not None and port is not None:
            section.candidates.append(
                IceCandidate(component, fields[2].lower(), fields[4], port, fields[7])
            )


# Attributes that matter; any other (fmtp, ssrc, extmap...) is skipped.
_ATTRIBUTES: dict[str, Callable[[str, _Section], None]] = {
    "rtpmap": _rtpmap,
    "rtcp": _rtcp,
    "rtcp-mux": _rtcp_mux,
    "ptime": _ptime,
    "crypto": _crypto,
    "fingerprint": _fingerprint,
    "setup": _setup,
    "candidate": _candidate,
}


def _attribute(value: str, section: _Section) -> None:
    name, _, arg = value.partition(":")
    handler = _ATTRIBUTES.get(name)
    if handler is not None:
        handler(arg, section)
        return
    name = name.strip().lower()
    if name in DIRECTIONS:
        section.direction = name
    else:
        handler = _ATTRIBUTES.get(name)
        if handler is not None:
            handler(arg, section)


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body; raise SdpParseError (with a stable `kind`) if unreadable.

    Lines may end in CRLF or bare LF. The body must start with a ``v=`` line;
    ``o=``, ``s=`` and ``t=`` are not required, since their absence (RFC 4475
    mismatch02) does not hide where media flows.
    """
    text = body.decode("utf-8", "replace")
    lines = text.split("\n")
    session = _Section()
    origin: Origin | None = None
    session_name: str | None = None
    sections: list[_Section] = []
    current = session
    seen_version = False
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if not seen_version:
            if line[:2] != "v=":
                raise SdpParseError(f"SDP must start with v=, got {line[:40]!r}", "sdp.not_sdp")
            seen_version = True
            continue
        if len(line) < 2 or line[1] != "=":
            continue
        kind = line[0]
        value = line[2:]
        if kind == "a":
            _attribute(value, current)
        elif kind == "c":
            current.connection = _connection(value)
        elif kind == "m":
            current = _Section()
            _media_line(value, current)
            sections.append(current)
        elif kind == "o" and current is session:
            fields = value.split()
            # Some gateways put spaces in the user name; the last five fields are
            # unambiguous, so the rest is taken as the user name.
            if len(fields) >= 6:
                origin = Origin(" ".join(fields[:-5]), *fields[-5:])
        elif kind == "s" and current is session:
            session_name = value
    if not seen_version:
        raise SdpParseError("empty SDP body", "sdp.empty")
    direction = session.direction or "sendrecv"
    media = tuple(
        MediaDescription(
            media=section.media,
            port=section.port,
            port_count=section.port_count,
            proto=section.proto,
            formats=section.formats,
            connection=section.connection or session.connection,
            rtpmap=section.rtpmap,
            direction=section.direction or direction,
            rtcp_port=section.rtcp_port,
            rtcp_mux=section.rtcp_mux,
            ptime=section.ptime if section.ptime is not None else session.ptime,
            crypto=section.crypto,
            fingerprint=section.fingerprint or session.fingerprint,
            setup=section.setup or session.setup,
            candidates=tuple(section.candidates),
        )
        for section in sections
    )
    return SessionDescription(origin, session_name, session.connection, direction, media)
