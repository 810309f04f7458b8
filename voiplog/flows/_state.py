"""The flow classifier's tracking state, and the pure rules it reads it with.

A UDP session (one per pair of address:port ends), a SIP-over-TLS connection,
an app call seen as one session for its record, and the small functions and
tables that judge a datagram (RFC 7983's first-byte demux, TURN unwrapping),
an address (an access network's inside) or a port (a relay's) without any
state of the classifier's own.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

from voiplog.cdr import CallRecord, MediaStream, make_uid
from voiplog.flows._appcalls import AppCall
from voiplog.flows._apps import AppVerdict
from voiplog.flows._dtls import looks_like_dtls
from voiplog.flows._errors import FlowParseError
from voiplog.flows._labels import udp_session_label
from voiplog.flows._rtp_heuristic import (
    RtpCandidate,
    looks_like_srtcp,
)
from voiplog.flows._stun import (
    looks_like_channel_data,
    looks_like_stun,
    parse_stun,
)
from voiplog.flows._tls import Hello
from voiplog.packet import flow_key, format_ip
from voiplog.rtp import RtpStream, looks_like_rtcp, looks_like_rtp

_US = 1_000_000


_MAX_RECENT = 20_000  # address pairs whose closed sessions are remembered for linking


_RECENT_PER_PAIR = 8


_MAX_SOCKET_TAGS = 100_000


_MAX_HELLO_APPS = 20_000


_NO_RECORDS: tuple[CallRecord, ...] = ()


_EMPTY: dict = {}  # never filled: see _UdpSession


_STUN_COOKIE = b"\x21\x12\xa4\x42"


# Confidences of an application classifier's verdict that are enough to say a
# flow is not a call: a port or a guess is not.
_SURE = frozenset({"dpi", "dpi_cache", "ip"})


# Verdicts of deep inspection of the flow itself.
_NAMED = frozenset({"dpi", "dpi_cache"})


# Verdicts sure enough to name the other flows of the same subscriber socket.
_TAGGING = frozenset({"dpi", "dpi_cache", "socket", "builtin"})


# Built-in labels that name a calling stack (not just a relay): their sessions
# are gathered into calls as an application's are.
_BUILTIN_CALL_STACKS = frozenset({"webrtc", "pjsip", "jitsi"})


def _pair(ip_a: bytes, ip_b: bytes) -> tuple[bytes, bytes]:
    return (ip_a, ip_b) if ip_a <= ip_b else (ip_b, ip_a)


class _UdpSession:
    """Tracking state of one UDP session; nothing here is written out as is."""

    __slots__ = (
        "_uid",
        "anchor",
        "app_state",
        "believed",
        "by_ssrc",
        "call",
        "candidates",
        "dtls",
        "first_us",
        "gaps",
        "ice",
        "ips",
        "key",
        "last_us",
        "mapped",
        "media",
        "media_first_us",
        "media_last_us",
        "octets",
        "packets",
        "peer",
        "ports",
        "reverse_key",
        "rtcp",
        "rtcp_media",
        "software",
        "sr_ssrcs",
        "srtcp",
        "srtp_agreed",
        "srtp_profiles",
        "streams",
        "stun",
        "turn",
        "unwrap",
        "verdict",
    )

    def __init__(self, ts_us: int, src: bytes, sport: int, dst: bytes, dport: int) -> None:
        self.key = flow_key(src, sport, dst, dport)
        self.reverse_key = flow_key(dst, dport, src, sport)
        self.ips = (src, dst)  # the first sender, then the other end
        self.ports = (sport, dport)
        self.first_us = self.last_us = ts_us
        self.packets = [0, 0]
        self.octets = [0, 0]
        # Containers are shared empty ones until something goes in (most
        # candidate sessions are stray datagrams that never need them); only
        # the methods below that fill them replace them first.
        self.candidates: dict[tuple[int, bytes], RtpCandidate] = _EMPTY
        self.streams: dict[tuple[int, bytes], RtpStream] = _EMPTY
        # The same streams by direction, then SSRC bytes: the per-packet lookup.
        self.by_ssrc: tuple[dict[bytes, RtpStream], dict[bytes, RtpStream]] = (_EMPTY, _EMPTY)
        self.sr_ssrcs: frozenset | set[tuple[int, bytes]] = frozenset()
        self.rtcp = 0
        self.srtcp = 0
        self.stun = 0
        self.ice = False
        self.turn = False
        self.software: str | None = None
        self.peer: tuple[str, int] | None = None
        self.mapped: tuple[str, int] | None = None
        self.dtls = 0
        self.srtp_profiles: tuple[int, ...] | None = None
        # The server's hello chose an SRTP profile: DTLS-SRTP was agreed both
        # ways. A client's offer alone (a handshake no one answered) proves nothing.
        self.srtp_agreed = False
        self._uid: str | None = None
        self.believed = False  # in the table of believed sessions, not of candidates
        # Application classification: the classifier's state while undecided,
        # its verdict, and (for a flow of an app call) the call it belongs to.
        self.app_state: object | None = None
        self.verdict: AppVerdict | None = None
        self.unwrap = None  # the application's own header in front of RTP, if known
        self.call: AppCall | None = None
        self.anchor = 0  # which end is the subscriber's, for app calls
        # Datagrams that may be call media (not STUN, not a DTLS handshake), by
        # direction, with RTCP apart, counted until the session is believed.
        self.media = [0, 0]
        self.rtcp_media = [0, 0]
        self.media_first_us = self.media_last_us = 0
        self.gaps: list[tuple[int, int]] = []  # (saved, resumed) of restarts lived through

    @property
    def uid(self) -> str:
        """Stable id: the session's first packet time and endpoints (made when first asked)."""
        if self._uid is None:
            src, dst = self.ips
            sport, dport = self.ports
            self._uid = make_uid(
                "udp-session", self.first_us, format_ip(src), sport, format_ip(dst), dport
            )
        return self._uid

    @property
    def proven(self) -> bool:
        return bool(self.streams) or self.srtp_agreed

    @property
    def encrypted(self) -> bool:
        return bool(self.dtls or self.srtcp or self.stun or self.turn)


class _TlsConnection:
    """Tracking state of one TLS connection taken as SIP over TLS."""

    __slots__ = (
        "alpn",
        "first_us",
        "gaps",
        "ips",
        "key",
        "last_us",
        "octets",
        "packets",
        "ports",
        "reverse_key",
        "server_name",
        "sip_basis",
        "uid",
    )

    def __init__(
        self,
        ts_us: int,
        client: tuple[bytes, int],
        server: tuple[bytes, int],
        hello: Hello | None,
        sip_basis: str,
    ) -> None:
        self.ips = (client[0], server[0])
        self.ports = (client[1], server[1])
        self.key = flow_key(client[0], client[1], server[0], server[1])
        self.reverse_key = flow_key(server[0], server[1], client[0], client[1])
        self.first_us = self.last_us = ts_us
        self.packets = [0, 0]
        self.octets = [0, 0]
        self.server_name = hello.server_name if hello else None
        self.alpn = list(hello.alpn) if hello else []
        self.sip_basis = sip_basis
        self.gaps: list[tuple[int, int]] = []  # (saved, resumed) of restarts lived through
        self.uid = make_uid(
            "tls-session", ts_us, format_ip(client[0]), client[1], format_ip(server[0]), server[1]
        )


@dataclass(frozen=True, slots=True)
class _AppCallView:
    """An app call seen as one session, for `FlowClassifier._record`."""

    uid: str
    ips: tuple[bytes, bytes]
    ports: tuple[int, int]
    first_us: int
    last_us: int
    packets: list[int]
    octets: list[int]
    gaps: list[tuple[int, int]]


def _builtin_verdict(session: _UdpSession) -> AppVerdict | None:
    """A WebRTC or known ICE stack's proven session, named by the built-in traits,
    as an application for grouping its flows into one call."""
    if not session.proven:
        return None
    found = udp_session_label(
        session.software, session.ice, session.srtp_profiles is not None, session.turn
    )
    if found is None or found["name"] not in _BUILTIN_CALL_STACKS:
        return None
    return AppVerdict(f"builtin:{found['basis']}", found["name"], "", "builtin", call_app=True)


# Ports on which servers, never a call's other party, take calls' datagrams
# (besides every port below 1024: a NAT maps a subscriber to a higher one):
# STUN/TURN (RFC 8489, 8656: 3478, 3479 alternate, 5349-5350 over DTLS) and
# Google's STUN/relay ports (Meet and Duo media go to 19302-19309).
_SERVER_PORTS = frozenset((3478, 3479, 5349, 5350, *range(19302, 19310)))


# Google's media relays of Meet and Duo (its public STUN servers are on 19302).
_GOOGLE_MEDIA_PORTS = range(19305, 19310)


# An application's own media servers (Zoom's multimedia routers: 8801-8810).
_APP_SERVER_PORTS: dict[str | None, range] = {"zoom": range(8801, 8811)}


_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # RFC 6598: carrier-grade NAT
        "169.254.0.0/16",  # link-local
        "fc00::/7",  # unique local
        "fe80::/10",
    )
)


def _local_address(ip: bytes) -> bool:
    """Whether a packed address is one of an access network's inside (private,
    carrier-grade NAT, link-local), which the public Internet never sees."""
    address = ipaddress.ip_address(ip)
    return any(address in net for net in _LOCAL_NETWORKS if net.version == address.version)


def _encryption(session: _UdpSession) -> str | None:
    if session.srtp_profiles is not None:
        return "dtls-srtp"
    if session.srtcp:
        return "srtp"
    return None


def _voip_traits(session: _UdpSession) -> bool:
    """Whether a session showed anything of VoIP of its own (for the built-in traits)."""
    return bool(
        session.streams
        or session.candidates
        or session.stun
        or session.dtls
        or session.turn
        or session.rtcp
        or session.srtcp
    )


def _media_kind(payload: bytes) -> int:
    """0 if a datagram is no call media (STUN or STUN-framed, a DTLS handshake,
    TURN wrapping either), 2 if it is RTCP, 1 for anything else: RTP, SRTP, an
    app's own media."""
    kind = DEMUX[payload[0]]
    if payload[4:8] == _STUN_COOKIE and (payload[2] << 8 | payload[3]) + 20 == len(payload):
        # STUN, or an application's own message in STUN's format (WhatsApp's
        # relays use methods of the 0x0800 range, which RFC 7983 does not cover).
        data = _indication_data(payload) if kind == DEMUX_STUN else None
        return _media_kind(data) if data else 0
    if kind == DEMUX_DTLS and looks_like_dtls(payload):
        return 1 if payload[0] == 23 else 0  # DTLS application data may be media
    if kind == DEMUX_TURN and looks_like_channel_data(payload):
        inner = payload[4 : 4 + (payload[2] << 8 | payload[3])]
        return _media_kind(inner) if inner else 0
    if kind == DEMUX_RTP and len(payload) > 1 and 200 <= payload[1] <= 207:
        return 2  # RTCP (version 2: the first byte is 128-191)
    return 1


def _indication_data(payload: bytes) -> bytes | None:
    """The DATA of a TURN Send or Data indication (no nesting), else None."""
    if payload[0] != 0x00 or payload[1] not in (0x16, 0x17) or not looks_like_stun(payload):
        return None
    try:
        msg = parse_stun(payload)
    except FlowParseError:
        return None
    return msg.data if msg.data and not looks_like_stun(msg.data) else None


# What a datagram sharing one port with others is, by its first byte (RFC 7983,
# as RFC 9443 updates it): the one table both the session path and the test for
# a new session read.
DEMUX_OTHER, DEMUX_STUN, DEMUX_ZRTP, DEMUX_DTLS, DEMUX_TURN, DEMUX_RTP = range(6)
DEMUX = bytes(
    DEMUX_STUN if first < 4
    else DEMUX_ZRTP if 16 <= first < 20
    else DEMUX_DTLS if 20 <= first < 64
    else DEMUX_TURN if 64 <= first < 80
    else DEMUX_RTP if 128 <= first < 192  # RTP and RTCP, SRTP and SRTCP
    else DEMUX_OTHER
    for first in range(256)
)  # fmt: skip


def _may_start_session(payload: bytes) -> bool:
    """Whether a datagram of an unknown flow is worth a session (RFC 7983 demultiplexing)."""
    kind = DEMUX[payload[0]]
    if kind == DEMUX_RTP:
        return looks_like_rtp(payload) or looks_like_rtcp(payload) or looks_like_srtcp(payload)
    if kind == DEMUX_STUN:
        return looks_like_stun(payload)
    if kind == DEMUX_DTLS:
        return looks_like_dtls(payload)
    if kind == DEMUX_TURN:
        return looks_like_channel_data(payload)
    return False


def _remember(table: OrderedDict, pair: tuple[bytes, bytes], item: tuple) -> None:
    entries = table.get(pair)
    if entries is None:
        if len(table) >= _MAX_RECENT:
            table.popitem(last=False)
        entries = table[pair] = []
    else:
        table.move_to_end(pair)
    entries.append(item)
    del entries[:-_RECENT_PER_PAIR]


def _media(streams) -> tuple[MediaStream, ...]:
    out = []
    for stream in streams:
        s = stream.summary()
        out.append(MediaStream.from_summary(s))
    out.sort(key=lambda m: (m.first_at, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.ssrc))
    return tuple(out)


def _unindex(item, by_key: dict, by_pair: dict) -> tuple:
    """Take a session or connection out of its key and address-pair indexes
    (only where the entries are still its own); return its address pair."""
    for key in (item.key, item.reverse_key):
        entry = by_key.get(key)
        if entry is not None and entry[0] is item:
            del by_key[key]
    pair = _pair(*item.ips)
    members = by_pair.get(pair)
    if members is not None:
        members.discard(item)
        if not members:
            del by_pair[pair]
    return pair
