"""The flow classifier: UDP and TLS that no SIP explained, in; session records out.

Strategy: two tables, both ordered by last activity so that the least recently
active entry is the first one to time out or to be evicted.

* UDP sessions, one per pair of address:port ends (both directions, keyed by
  either 5-tuple), created by the first datagram that can be RTP, RTCP, STUN,
  DTLS or TURN ChannelData (RFC 7983 tells them apart by the first byte).
  Inside a session each SSRC of each direction is an `RtpCandidate` until it is
  proven, then an `RtpStream` whose numbers are Wireshark's. A session becomes
  a record when it has proven media or an agreed DTLS-SRTP handshake (the
  server chose a profile the client offered): ``kind`` "media"
  for RTP alone, "encrypted" when STUN/ICE, DTLS, TURN or SRTCP show the media
  is SRTP or relayed. Sessions that never prove anything vanish without a
  record, as they were never VoIP.
* TLS connections on SIP-TLS ports, or whose ClientHello names SIP (SNI or
  ALPN): one "encrypted" record each, linked to the media sessions between the
  same two addresses that overlap it in time.

An idle gap closes a session (the next packet starts a new one); a full table
evicts its least recently active entry, still writing its record, flagged
"evicted". Nothing of a payload is kept but the first eight RTP header bytes of
a candidate's packets, until the candidate is proven or dropped.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from voiplog.cdr import CallRecord, EndReason, MediaStream, format_ts, make_uid
from voiplog.flows._appcalls import AppCall, AppCallTable, AppFlow
from voiplog.flows._appheaders import UNWRAPPERS
from voiplog.flows._apps import AppClassifier, AppVerdict
from voiplog.flows._dtls import looks_like_dtls, parse_dtls
from voiplog.flows._errors import FlowParseError
from voiplog.flows._labels import app_label, call_label, tls_label, udp_session_label
from voiplog.flows._rtp_heuristic import (
    RtpCandidate,
    looks_like_srtcp,
    plausible_payload_type,
    rtcp_sender_ssrcs,
)
from voiplog.flows._settings import FlowSettings
from voiplog.flows._stun import (
    METHOD_DATA,
    METHOD_SEND,
    TURN_METHODS,
    looks_like_channel_data,
    looks_like_stun,
    parse_channel_data,
    parse_stun,
)
from voiplog.flows._tls import Hello, looks_like_tls, parse_client_hello, says_sip
from voiplog.packet import flow_key, format_ip
from voiplog.rtp import RtpStream, codec_for, looks_like_rtcp, looks_like_rtp

_US = 1_000_000
_MAX_CANDIDATES = 8  # unproven SSRCs per session; random UDP makes a new one per packet
_MAX_CLAIMED = 100_000
_MAX_RECENT = 20_000  # address pairs whose closed sessions are remembered for linking
_RECENT_PER_PAIR = 8
_MAX_IGNORED = 200_000  # flow keys the application classifier said are not VoIP
_MAX_PENDING_APP_FLOWS = 20_000
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

DISPOSITION_MEDIA = "media_session"
DISPOSITION_TLS = "tls_session"
DISPOSITION_APP_CALL = "app_call"
# Built-in labels that name a calling stack (not just a relay): their sessions
# are gathered into calls as an application's are.
_BUILTIN_CALL_STACKS = frozenset({"webrtc", "pjsip", "jitsi"})

# (caller_ip, callee_ip) -> (subscriber_ip, direction, subscriber object)
Classifier = Callable[[str, str], tuple[str | None, str | None, dict | None]]


def _no_classification(caller_ip: str, callee_ip: str) -> tuple[None, None, None]:
    return None, None, None


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


class FlowClassifier:
    """Finds media sessions and encrypted VoIP flows; yields one `CallRecord` per session."""

    def __init__(
        self,
        settings: FlowSettings | None = None,
        classify: Classifier = _no_classification,
        on_weird: Callable[[str], None] | None = None,
        apps: AppClassifier | None = None,
    ) -> None:
        """`apps` names the application behind each UDP flow (see `AppClassifier`);
        without one, sessions are found and labelled by the built-in traits only."""
        self.settings = settings or FlowSettings()
        self._apps = apps
        self.app_datagrams = 0  # datagrams handed to the application classifier
        self._labels = self.settings.app_classifier != "off"
        self._ignored: dict[bytes, int] = {}  # flow key -> last packet time
        settings_ = self.settings
        self._app_calls = AppCallTable(
            int(settings_.app_join_gap_s * _US),
            settings_.max_sessions,
            _MAX_PENDING_APP_FLOWS,
            int(settings_.app_new_socket_gap_s * _US),
        )
        self._app_min_span_us = int(settings_.app_min_span_s * _US)
        self._app_quiet_span_us = int(settings_.app_quiet_min_span_s * _US)
        self._join_gap_us = int(settings_.app_join_gap_s * _US)
        self._hello_window_us = int(settings_.app_sni_window_s * _US)
        # Subscriber sockets of flows named by application: (address, port) ->
        # (verdict, last packet); TLS server names that named an application, by
        # address pair: (app, basis, time of the ClientHello).
        self._socket_apps: dict[tuple[bytes, int], tuple[AppVerdict, int]] = {}
        self._hello_apps: OrderedDict[tuple[bytes, bytes], tuple[str, str, int]] = OrderedDict()
        self._classify = classify
        self._weird = on_weird or (lambda kind: None)
        self._gap_us = int(self.settings.idle_gap_s * _US)
        self._candidate_gap_us = int(self.settings.candidate_timeout_s * _US)
        self._tls_gap_us = int(self.settings.tls_idle_gap_s * _US)
        self._min_packets = self.settings.min_packets
        self._sip_tls_ports = frozenset(self.settings.sip_tls_ports)
        # UDP sessions by their first key, least recently active first: those
        # believed (proven media or a DTLS-SRTP handshake), and the candidates,
        # which time out sooner and whose eviction never touches a believed one.
        # Either direction's flow key gives (session, direction).
        self._sessions: OrderedDict[bytes, _UdpSession] = OrderedDict()
        self._candidates: OrderedDict[bytes, _UdpSession] = OrderedDict()
        self._by_key: dict[bytes, tuple[_UdpSession, int]] = {}
        self._sessions_by_pair: dict[tuple[bytes, bytes], set[_UdpSession]] = {}
        self._tls: OrderedDict[bytes, _TlsConnection] = OrderedDict()
        self._tls_by_key: dict[bytes, tuple[_TlsConnection, int]] = {}
        self._tls_by_pair: dict[tuple[bytes, bytes], set[_TlsConnection]] = {}
        # Closed records by address pair, for linking: (uid, first_us, last_us).
        self._recent_media: OrderedDict[tuple[bytes, bytes], list] = OrderedDict()
        self._recent_tls: OrderedDict[tuple[bytes, bytes], list] = OrderedDict()
        # Flow keys that turned out to belong to a signalled call.
        self._claimed: set[bytes] = set()
        self._done: list[CallRecord] = []

    # -- public API ----------------------------------------------------------

    @property
    def open_sessions(self) -> int:
        return len(self._sessions) + len(self._candidates) + len(self._tls)

    @property
    def app_attempts_without_media(self) -> int:
        """Flows of call applications that ended with no call media on any flow of
        theirs (an unanswered call, a STUN check): counted, not written."""
        return self._app_calls.attempts_without_media

    def feed_udp(
        self, ts_us: int, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> list[CallRecord] | tuple[CallRecord, ...]:
        """One UDP datagram that no signalled call claims; returns records it closed."""
        if not payload:
            return _NO_RECORDS
        key = flow_key(src, sport, dst, dport)
        entry = self._by_key.get(key)
        if entry is not None:
            session, direction = entry
            gap = self._gap_us if session.believed else self._candidate_gap_us
            if ts_us - session.last_us > gap:
                self._close_udp(session, None)
                entry = None
        apps = self._apps
        if entry is None and sport & dport & 1 and len(payload) > 1 and 200 <= payload[1] <= 207:
            # RTCP on the odd ports next to the RTP ones (RFC 3550 section 11)
            # belongs to the RTP session, if there is one.
            entry = self._by_key.get(flow_key(src, sport - 1, dst, dport - 1))
            if entry is not None and ts_us - entry[0].last_us > self._gap_us:
                entry = None
        if entry is None:
            if apps is not None:
                # A flow the application classifier said is no VoIP (QUIC, DNS,
                # a VPN...) is passed over until it has been idle for a gap.
                seen = self._ignored.get(key)
                if seen is not None:
                    if ts_us - seen <= self._gap_us:
                        self._ignored[key] = ts_us
                        return self._take() if self._done else _NO_RECORDS
                    del self._ignored[key]
            elif not _may_start_session(payload):
                return self._take() if self._done else _NO_RECORDS
            if key in self._claimed:
                return self._take() if self._done else _NO_RECORDS
            if len(self._candidates) >= self.settings.max_candidates:
                self._close_udp(next(iter(self._candidates.values())), EndReason.EVICTED)
            session = _UdpSession(ts_us, src, sport, dst, dport)
            direction = 0
            self._candidates[session.key] = session
            self._by_key[session.key] = (session, 0)
            self._by_key[session.reverse_key] = (session, 1)
            if apps is not None:
                session.app_state = apps.new_flow()
        else:
            session, direction = entry
            (self._sessions if session.believed else self._candidates).move_to_end(session.key)
        session.last_us = ts_us
        session.packets[direction] += 1
        session.octets[direction] += len(payload)
        unwrap = session.unwrap
        inner = unwrap(payload) if unwrap is not None else None
        self._on_datagram(session, direction, ts_us, inner or payload, relayed=False)
        if session.app_state is not None:
            self.app_datagrams += 1
            verdict = apps.feed(session.app_state, ts_us, src, sport, dst, dport, payload)
            if verdict is not None and not self._decided(session, verdict):
                return self._take() if self._done else _NO_RECORDS
        if not session.believed:
            if apps is not None:
                # Only an application's verdict can make media of these counts.
                self._count_media(session, direction, ts_us, payload)
                if session.proven or self._app_media(session):
                    self._believe(session)
            elif session.proven:
                self._believe(session)
        return self._take() if self._done else _NO_RECORDS

    @staticmethod
    def _count_media(session: _UdpSession, direction: int, ts_us: int, payload: bytes) -> None:
        media = _media_kind(payload)
        if media:
            if not session.media[0] and not session.media[1]:
                session.media_first_us = ts_us
            session.media_last_us = ts_us
            session.media[direction] += 1
            if media == 2:
                session.rtcp_media[direction] += 1

    def _decided(self, session: _UdpSession, verdict: AppVerdict) -> bool:
        """The application classifier's verdict on a session; False if it is dropped."""
        self._apps.release(session.app_state)
        session.app_state = None
        session.verdict = verdict
        if verdict.excluded and verdict.confidence in _SURE:
            self._weird("app.not_a_call")
            self._ignore(session)
            return False
        if verdict.app is None:
            inherited = self._inherited(session)
            if inherited is None:
                if not (session.believed or session.candidates or _voip_traits(session)):
                    self._ignore(session)
                    return False
                return True
            session.verdict = verdict = inherited
        session.unwrap = UNWRAPPERS.get(verdict.app)
        self._tag_socket(session)
        if session.believed and session.call is None:
            self._join_app_call(session)
        return True

    def _inherited(self, session: _UdpSession) -> AppVerdict | None:
        """The application of a flow its classifier could not name, from what came
        just before: a named flow from the same subscriber socket (ICE moves a call
        to a new path from the same local address and port), or a TLS connection
        to the same far address whose server name is the application's."""
        sockets = self._socket_apps
        for end in (0, 1):
            tag = sockets.get((session.ips[end], session.ports[end]))
            if tag is not None and tag[1] + self._join_gap_us >= session.first_us:
                parent = tag[0]
                return AppVerdict(
                    parent.protocol, parent.app, parent.category, "socket", parent.call, True
                )
        hello = self._hello_apps.get(_pair(*session.ips))
        if hello is not None and hello[2] + self._hello_window_us >= session.first_us:
            return AppVerdict(hello[1], hello[0], "", "sni", False, True)
        for port in session.ports:
            if port in _GOOGLE_MEDIA_PORTS:
                # Google's media relays for Meet and Duo (over IPv6 too, where
                # nDPI 4.2 knows no Google range); its public STUN servers on
                # 19302 carry no media, so a call there is Google's own.
                return AppVerdict(f"port:{port}", "google_meet", "", "port", call_app=True)
        return None

    def _streaming(self, session: _UdpSession) -> bool:
        """Whether a session is a one-way stream (cloud gaming, live video), not a
        call: far more datagrams a second one way than any call's video, and
        little coming back."""
        span = session.last_us - session.first_us
        if span < 2 * _US:
            return False
        high, low = sorted(session.packets, reverse=True)
        return high * _US >= self.settings.stream_min_rate_pps * span and low * 10 < high

    def _tag_socket(self, session: _UdpSession) -> None:
        """Remember the subscriber socket of a flow named by application, when the
        name is sure (deep inspection of this flow or a flow just before): an
        address range names the server's operator (Google's public STUN servers
        serve every WebRTC application), not the subscriber's application."""
        if session.verdict.confidence not in _TAGGING:
            return
        sockets = self._socket_apps
        if len(sockets) >= _MAX_SOCKET_TAGS:
            sockets.clear()
        end = self._anchor(session)
        sockets[(session.ips[end], session.ports[end])] = (session.verdict, session.last_us)

    def _ignore(self, session: _UdpSession) -> None:
        """Forget a session without a record; pass over its flow from now on."""
        self._forget_udp(session)
        ignored = self._ignored
        if len(ignored) >= _MAX_IGNORED:
            ignored.clear()
        ignored[session.key] = ignored[session.reverse_key] = session.last_us

    def _app_media(self, session: _UdpSession) -> bool:
        """Whether a session of a call application shows two-way real-time traffic."""
        verdict = session.verdict
        if verdict is None or verdict.app is None:
            return False
        settings = self.settings
        out, back = session.media
        low, high = (out, back) if out <= back else (back, out)
        if low < settings.app_min_return_packets:
            return False
        if session.rtcp_media[0] == out and session.rtcp_media[1] == back:
            return True  # RTCP alone both ways: a call whose parties are muted
        span = session.media_last_us - session.media_first_us
        if (
            verdict.call_protocol
            and verdict.confidence in _NAMED
            and low >= settings.app_named_min_packets
            and span >= self._app_min_span_us
        ):
            return True  # the classifier saw the call protocol itself
        if (
            high >= settings.app_min_packets
            and span >= self._app_min_span_us
            and high * _US >= settings.app_min_rate_pps * span
        ):
            return True
        # A quiet call (muted parties, silence suppressed) still exchanges
        # something every few seconds; a keepalive, every 15 s or more.
        return (
            low >= settings.app_quiet_min_packets
            and span >= self._app_quiet_span_us
            and high * _US >= settings.app_quiet_min_rate_pps * span
        )

    def _join_app_call(self, session: _UdpSession) -> None:
        session.anchor = self._anchor(session)
        session.call = self._app_calls.open(
            (session.verdict.app, session.ips[session.anchor]),
            session.first_us,
            session.verdict,
            session.ports[session.anchor],
            session.ips[1 - session.anchor],
            session,
        )

    def _anchor(self, session: _UdpSession) -> int:
        """Which end of a session of an app call is the subscriber's (0 or 1)."""
        first, other = session.ips
        subscriber_ip, _direction, _subscriber = self._classify(format_ip(first), format_ip(other))
        if subscriber_ip is not None:
            return 0 if subscriber_ip == format_ip(first) else 1
        # No subscriber networks. The end whose socket already carried a flow of
        # a call application: an app call keeps one local socket for its ICE
        # checks, relays and peer path, while its far ends change.
        sockets = self._socket_apps
        tagged = [(session.ips[end], session.ports[end]) in sockets for end in (0, 1)]
        if tagged[0] != tagged[1]:
            return 0 if tagged[0] else 1
        # The end that is not the application's server.
        apps = self._apps
        if apps is not None:
            servers = (bool(apps.server_app(first)), bool(apps.server_app(other)))
            if servers[0] != servers[1]:
                return 1 if servers[0] else 0
        # A private or shared (carrier-grade NAT) address facing a public one is
        # the subscriber's side of the access network.
        local = (_local_address(first), _local_address(other))
        if local[0] != local[1]:
            return 0 if local[0] else 1
        return 0

    def _believe(self, session: _UdpSession) -> None:
        """Move a candidate that proved itself to the table of believed sessions."""
        del self._candidates[session.key]
        if len(self._sessions) >= self.settings.max_sessions:
            self._close_udp(next(iter(self._sessions.values())), EndReason.EVICTED)
        session.believed = True
        self._sessions[session.key] = session
        self._sessions_by_pair.setdefault(_pair(*session.ips), set()).add(session)
        verdict = session.verdict
        if (verdict is None or verdict.app is None) and session.app_state is None and self._labels:
            # Nothing (or no classifier) names it: a WebRTC stack's session is
            # gathered into a call as an application's is.
            builtin = self._inherited(session) or _builtin_verdict(session)
            if builtin is not None:
                session.verdict = verdict = builtin
                session.unwrap = UNWRAPPERS.get(verdict.app)
                self._tag_socket(session)
        if verdict is not None and verdict.app is not None:
            self._join_app_call(session)

    def feed_tcp(
        self, ts_us: int, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> list[CallRecord] | tuple[CallRecord, ...]:
        """One TCP segment that may be TLS; returns records it closed."""
        key = flow_key(src, sport, dst, dport)
        entry = self._tls_by_key.get(key)
        if entry is not None:
            conn, direction = entry
            if ts_us - conn.last_us > self._tls_gap_us:
                self._close_tls(conn, None)
                entry = None
        if entry is None:
            conn = self._new_tls(ts_us, src, sport, dst, dport, payload)
            if conn is None:
                return self._take() if self._done else _NO_RECORDS
            direction = 0 if conn.key == key else 1
        else:
            self._tls.move_to_end(conn.key)
        conn.last_us = ts_us
        conn.packets[direction] += 1
        conn.octets[direction] += len(payload)
        return self._take() if self._done else _NO_RECORDS

    def take_rtp(self, ts_us: int, entry: tuple, frame: bytes, offset: int, size: int) -> bool:
        """Account an RTP packet of a believed stream, read in place; False if it is not one.

        For the pipeline's fast path: ``entry`` is what `session_keys` holds for
        the packet's flow key, the RTP header starts at ``frame[offset]`` and the
        UDP payload is ``size`` bytes. A packet this does not take (a new SSRC,
        one after an idle gap) goes through `feed_udp` instead.
        """
        session, direction = entry
        if ts_us - session.last_us > self._gap_us:
            return False
        stream = session.by_ssrc[direction].get(frame[offset + 8 : offset + 12])
        if stream is None:
            return False
        stream.add(ts_us, frame, offset)
        session.last_us = ts_us
        session.packets[direction] += 1
        session.octets[direction] += size
        self._sessions.move_to_end(session.key)
        return True

    @property
    def session_keys(self) -> dict[bytes, tuple]:
        """Open UDP sessions by either direction's flow key (read-only, for `take_rtp`)."""
        return self._by_key

    def claim(self, src: bytes, sport: int, dst: bytes, dport: int) -> None:
        """The flow belongs to a call that SDP announced: drop it here, write nothing.

        The call's own record accounts for its media from now on; the packets
        seen before the SDP arrived are counted as ``media.claimed_by_sdp``.
        """
        key = flow_key(src, sport, dst, dport)
        if len(self._claimed) >= _MAX_CLAIMED:
            self._claimed.clear()
        self._claimed.add(key)
        self._claimed.add(flow_key(dst, dport, src, sport))
        entry = self._by_key.get(key)
        if entry is not None:
            self._weird("media.claimed_by_sdp")
            self._forget_udp(entry[0])

    def expire(self, now_us: int) -> list[CallRecord]:
        """Close every session idle for longer than its gap at packet time ``now_us``."""
        for table, gap, close in (
            (self._candidates, self._candidate_gap_us, self._close_udp),
            (self._sessions, self._gap_us, self._close_udp),
            (self._tls, self._tls_gap_us, self._close_tls),
        ):
            while table:
                oldest = next(iter(table.values()))
                if now_us - oldest.last_us <= gap:
                    break
                close(oldest, None)
        self._finish_app_calls(self._app_calls.expire(now_us), None)
        return self._take()

    def snapshot(self) -> dict:
        """Every open media session, SIP-TLS connection and app call, as plain data
        (JSON-able) that `restore` takes back in a later run."""
        from voiplog.flows import _snapshot

        return _snapshot.snapshot(self)

    def restore(self, data: dict, gap: tuple[int, int] | None = None) -> int:
        """Go on with what `snapshot` saved, before any packet; each session is
        flagged ``restarted`` with ``gap`` (saved, resumed). Returns the sessions
        restored; raises ValueError, leaving this classifier untouched, for data
        that does not read."""
        from voiplog.flows import _snapshot

        return _snapshot.restore(self, data, gap)

    def close_all(self, reason: EndReason = EndReason.END_OF_INPUT) -> list[CallRecord]:
        """Close every open session (end of input, or shutdown), oldest first.

        Media sessions close before TLS connections, so that a connection's
        record names the media sessions it overlapped.
        """
        for session in sorted(self._sessions.values(), key=lambda s: (s.first_us, s.key)):
            self._close_udp(session, reason)
        for session in list(self._candidates.values()):
            self._close_udp(session, None)  # never believed: no record of its own
        self._finish_app_calls(self._app_calls.close_all(), reason)
        for conn in sorted(self._tls.values(), key=lambda c: (c.first_us, c.key)):
            self._close_tls(conn, reason)
        return self._take()

    # -- UDP -----------------------------------------------------------------

    def _on_datagram(
        self, session: _UdpSession, direction: int, ts_us: int, payload: bytes, relayed: bool
    ) -> None:
        first = payload[0]
        if first >= 128:
            if first < 192:
                self._on_rtp_or_rtcp(session, direction, ts_us, payload)
        elif first < 4:
            if looks_like_stun(payload):
                inner = self._on_stun(session, payload)
                if inner and not relayed:
                    self._on_datagram(session, direction, ts_us, inner, relayed=True)
        elif first < 20:
            return  # ZRTP (16-19) or unknown
        elif first < 64:
            if looks_like_dtls(payload):
                self._on_dtls(session, payload)
        elif first < 80 and not relayed and looks_like_channel_data(payload):
            try:
                _channel, inner = parse_channel_data(payload)
            except FlowParseError:
                return
            session.turn = True
            if inner:
                self._on_datagram(session, direction, ts_us, inner, relayed=True)

    def _on_rtp_or_rtcp(
        self, session: _UdpSession, direction: int, ts_us: int, payload: bytes
    ) -> None:
        if len(payload) < 8:
            return  # shorter than any RTCP or RTP header
        second = payload[1]
        if 200 <= second <= 207:
            # RTCP types read as RTP payload types 72-79, which RTP never uses.
            senders = rtcp_sender_ssrcs(payload)
            if senders or looks_like_rtcp(payload):
                session.rtcp += 1
            elif looks_like_srtcp(payload):
                session.srtcp += 1
                if second == 200:
                    senders = (int.from_bytes(payload[4:8], "big"),)
            for ssrc in senders:
                self._confirm(session, direction, ssrc.to_bytes(4, "big"))
            return
        if not (looks_like_rtp(payload) and plausible_payload_type(second & 0x7F)):
            return
        ssrc = payload[8:12]
        stream = session.by_ssrc[direction].get(ssrc)
        if stream is not None:
            stream.add(ts_us, payload)
            return
        skey = (direction, ssrc)
        candidate = session.candidates.get(skey)
        if candidate is None:
            if session.candidates is _EMPTY:
                session.candidates = {}
            elif len(session.candidates) >= _MAX_CANDIDATES:
                self._weird("media.too_many_candidates")
                return
            session.candidates[skey] = RtpCandidate(ts_us, payload)
            return
        candidate.offer(ts_us, payload)
        if candidate.proven(self._min_packets, skey in session.sr_ssrcs):
            self._promote(session, skey, candidate)

    def _confirm(self, session: _UdpSession, direction: int, ssrc: bytes) -> None:
        # A report's sender may send its RTP on this flow in this direction.
        skey = (direction, ssrc)
        if not session.sr_ssrcs:
            session.sr_ssrcs = {skey}
        elif len(session.sr_ssrcs) < _MAX_CANDIDATES:
            session.sr_ssrcs.add(skey)
        candidate = session.candidates.get(skey)
        if candidate is not None and candidate.proven(self._min_packets, True):
            self._promote(session, skey, candidate)

    def _promote(self, session: _UdpSession, skey: tuple[int, bytes], cand: RtpCandidate) -> None:
        direction, ssrc = skey
        src, dst = session.ips if direction == 0 else session.ips[::-1]
        sport, dport = session.ports if direction == 0 else session.ports[::-1]
        first_pt = cand.pending[0][1][1] & 0x7F
        codec, clock = codec_for(first_pt, None)
        stream = RtpStream(
            format_ip(src),
            sport,
            format_ip(dst),
            dport,
            int.from_bytes(ssrc, "big"),
            first_pt,
            codec,
            clock,
        )
        for ts_us, header in cand.pending:
            stream.add(ts_us, header)
        del session.candidates[skey]
        if session.streams is _EMPTY:
            session.streams = {}
            session.by_ssrc = ({}, {})
        session.streams[skey] = stream
        session.by_ssrc[direction][ssrc] = stream

    def _on_stun(self, session: _UdpSession, payload: bytes) -> bytes | None:
        """Note what a STUN message says; return the datagram it relays, if any."""
        try:
            msg = parse_stun(payload)
        except FlowParseError as exc:
            self._weird(exc.kind)
            return None
        session.stun += 1
        if msg.ice:
            session.ice = True
        if msg.software and session.software is None:
            session.software = msg.software
        if msg.method in TURN_METHODS:
            session.turn = True
        if msg.peer_address and session.peer is None:
            session.peer = msg.peer_address
        if msg.mapped_address and session.mapped is None:
            session.mapped = msg.mapped_address
        if msg.data and msg.method in (METHOD_SEND, METHOD_DATA):
            return msg.data
        return None

    def _on_dtls(self, session: _UdpSession, payload: bytes) -> None:
        try:
            datagram = parse_dtls(payload)
        except FlowParseError as exc:
            self._weird(exc.kind)
            return
        session.dtls += 1
        hello = datagram.hello
        # The server's choice (one profile) wins over the client's offer.
        if (
            hello is not None
            and hello.srtp_profiles is not None
            and (session.srtp_profiles is None or not hello.client)
        ):
            session.srtp_profiles = hello.srtp_profiles
            session.srtp_agreed = not hello.client

    def _forget_udp(self, session: _UdpSession) -> None:
        (self._sessions if session.believed else self._candidates).pop(session.key, None)
        _unindex(session, self._by_key, self._sessions_by_pair)
        if session.app_state is not None:
            self._apps.release(session.app_state)
            session.app_state = None
        if session.call is not None:
            # Dropped, not closed (claimed by SDP, or not a call after all): it
            # leaves its app call without adding a flow to it.
            self._app_calls.close(session.call, session, None)
            session.call = None

    def _close_udp(self, session: _UdpSession, reason: EndReason | None) -> None:
        if session.app_state is not None:
            verdict = self._apps.give_up(session.app_state)
            if verdict is not None:
                session.verdict = verdict
        call = session.call
        session.call = None
        self._forget_udp(session)
        verdict = session.verdict
        if verdict is not None and verdict.excluded and verdict.confidence in _SURE:
            self._weird("app.not_a_call")
            return
        if self._labels and (verdict is None or verdict.app is None):
            verdict = self._inherited(session) or _builtin_verdict(session)
            if verdict is not None:
                session.verdict = verdict
        if verdict is not None and verdict.app is not None:
            self._tag_socket(session)
            if (
                (call is not None or session.proven or self._app_media(session))
                and verdict.confidence not in _SURE
                and self._streaming(session)
            ):
                # Named by traits alone, and a one-way stream: cloud gaming or
                # live video over WebRTC, not a call.
                if call is not None:
                    self._app_calls.close(call, session, None)
                self._weird("media.stream_not_call")
                return
            if call is None and (session.proven or self._app_media(session)):
                # Proven media whose application was known only as it ended.
                session.anchor = self._anchor(session)
                call = self._app_calls.open(
                    (verdict.app, session.ips[session.anchor]),
                    session.first_us,
                    verdict,
                    session.ports[session.anchor],
                    session.ips[1 - session.anchor],
                    session,
                )
            if call is not None:
                self._app_calls.close(call, session, self._app_flow(session, True, reason))
                return
            # A call application's flow without call media: ICE checks or a
            # relay allocation of a call on another flow, or of none.
            session.anchor = self._anchor(session)
            self._app_calls.side_flow(
                (verdict.app, session.ips[session.anchor]),
                self._app_flow(session, False, reason),
            )
            return
        if not session.proven:
            if reason is EndReason.EVICTED:
                self._weird("media.candidate_evicted")
            return
        if self._streaming(session):
            self._weird("media.stream_not_call")
            return
        call = self._app_calls.beside(session.ips, session.first_us, session.last_us)
        if call is not None:
            # Plain RTP that an app call's named flows ran beside (KakaoTalk's
            # voice next to its control flows): a flow of that call.
            session.anchor = 0 if session.ips[0] == call.key[1] else 1
            self._app_calls.add(call, self._app_flow(session, True, reason))
            return
        pair = _pair(*session.ips)
        _remember(self._recent_media, pair, (session.uid, session.first_us, session.last_us))
        self._done.append(self._udp_record(session, reason))

    def _udp_record(self, session: _UdpSession, reason: EndReason | None) -> CallRecord:
        pair = _pair(*session.ips)
        tls = [
            (c.first_us, c.uid)
            for c in self._tls_by_pair.get(pair, ())
            if c.first_us <= session.last_us
        ]
        tls += [
            (first, uid)
            for uid, first, last in self._recent_tls.get(pair, ())
            if first <= session.last_us and last >= session.first_us
        ]
        media = _media(session.streams.values())
        flags = set()
        if media and len({(m.src_ip, m.src_port) for m in media}) == 1:
            flags.add("one_way_media")
        protocols = self._protocols(session)
        extra = {
            "protocols": sorted(protocols),
            "encryption": _encryption(session),
            "dtls_srtp_profiles": (
                list(session.srtp_profiles) if session.srtp_profiles is not None else None
            ),
            "stun_software": session.software,
            "turn_peer": (
                {"ip": session.peer[0], "port": session.peer[1]} if session.peer else None
            ),
            "stun_mapped_address": (
                {"ip": session.mapped[0], "port": session.mapped[1]} if session.mapped else None
            ),
            "app": self._session_label(session),
            "signalling_uid": max(tls)[1] if tls else None,
        }
        return self._record(
            session,
            "encrypted" if session.encrypted else "media",
            "udp",
            DISPOSITION_MEDIA,
            media,
            flags,
            reason,
            extra,
        )

    @staticmethod
    def _protocols(session: _UdpSession) -> set[str]:
        protocols = {"rtp"} if session.streams else set()
        if session.rtcp:
            protocols.add("rtcp")
        if session.srtcp:
            protocols.add("srtcp")
        if session.stun:
            protocols.add("stun")
        if session.turn:
            protocols.add("turn")
        if session.dtls:
            protocols.add("dtls")
        if _encryption(session) is not None and session.streams:
            protocols.discard("rtp")
            protocols.add("srtp")
        return protocols

    def _session_label(self, session: _UdpSession) -> dict | None:
        """The application label of a session, from the classifier and the built-in traits."""
        if not self._labels:
            return None
        builtin = udp_session_label(
            session.software, session.ice, session.srtp_profiles is not None, session.turn
        )
        if session.verdict is None or session.verdict.app is None:
            return builtin
        return app_label(session.verdict, builtin)

    # -- app calls -----------------------------------------------------------

    def _app_flow(self, session: _UdpSession, media: bool, reason: EndReason | None) -> AppFlow:
        """What an app call's record keeps of one of its flows."""
        near = session.anchor
        far = 1 - near
        anchor_ip, far_ip = session.ips[near], session.ips[far]
        anchor_port, far_port = session.ports[near], session.ports[far]
        apps = self._apps
        if session.turn:
            relay = "turn"
        elif apps is not None and apps.server_app(far_ip):
            relay = "app_range"
        elif (
            far_port < 1024
            or far_port in _SERVER_PORTS
            or far_port
            in _APP_SERVER_PORTS.get(
                session.verdict.app if session.verdict is not None else None, ()
            )
        ):
            relay = "server_port"
        else:
            relay = None
        streams = _media(session.streams.values())
        protocols = self._protocols(session)
        verdict = session.verdict
        entry = {
            "src_ip": format_ip(anchor_ip),
            "src_port": anchor_port,
            "dst_ip": format_ip(far_ip),
            "dst_port": far_port,
            "first_at": format_ts(session.first_us),
            "last_at": format_ts(session.last_us),
            "packets_out": session.packets[near],
            "packets_in": session.packets[far],
            "bytes_out": session.octets[near],
            "bytes_in": session.octets[far],
            "media": media,
            "path": "relay" if relay else "peer",
            "relay_basis": relay,
            "protocols": sorted(protocols),
            "classified_as": verdict.protocol if verdict is not None else None,
            "turn_peer": (
                {"ip": session.peer[0], "port": session.peer[1]} if session.peer else None
            ),
        }
        if not media:
            entry["path"] = "relay" if relay else "unknown"
        return AppFlow(
            first_us=session.first_us,
            last_us=session.last_us,
            anchor=(anchor_ip, anchor_port),
            far=(far_ip, far_port),
            packets=(session.packets[near], session.packets[far]),
            octets=(session.octets[near], session.octets[far]),
            media=media,
            entry=entry,
            streams=streams,
            protocols=frozenset(protocols),
            evicted=reason is EndReason.EVICTED,
            label=self._session_label(session),
            details={
                "dtls_srtp_profiles": (
                    list(session.srtp_profiles) if session.srtp_profiles is not None else None
                ),
                "stun_software": session.software,
                "stun_mapped_address": (
                    {"ip": session.mapped[0], "port": session.mapped[1]} if session.mapped else None
                ),
            },
        )

    def _app_call_record(self, call: AppCall, reason: EndReason | None) -> CallRecord:
        """The record of a finished app call: one for all its flows."""
        flows = sorted(call.flows, key=lambda f: (f.first_us, f.anchor, f.far))
        media_flows = [f for f in flows if f.media]
        main = max(media_flows, key=lambda f: (sum(f.octets), -f.first_us))
        peers = [f for f in media_flows if f.entry["path"] == "peer"]
        far = max(peers, key=lambda f: (sum(f.octets), -f.first_us)) if peers else None
        first = flows[0]
        app_name, anchor_ip = call.key
        view = _AppCallView(
            uid=make_uid(
                "app-call",
                first.first_us,
                format_ip(anchor_ip),
                app_name,
                format_ip(first.far[0]),
                first.far[1],
            ),
            ips=(anchor_ip, (far or main).far[0]),
            ports=((far or main).anchor[1], (far or main).far[1]),
            first_us=call.first_us,
            last_us=call.last_us,
            packets=[sum(f.packets[0] for f in flows), sum(f.packets[1] for f in flows)],
            octets=[sum(f.octets[0] for f in flows), sum(f.octets[1] for f in flows)],
            gaps=call.gaps,
        )
        streams = tuple(
            sorted(
                (m for f in flows for m in f.streams),
                key=lambda m: (m.first_at, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.ssrc),
            )
        )
        protocols = set().union(*(f.protocols for f in flows))
        flags = {"evicted"} if any(f.evicted for f in flows) else set()
        if len({f.far for f in media_flows}) > 1:
            flags.add("path_changed")
        label = call_label([f.label for f in media_flows]) if self._labels else None
        turn_peers = [f.entry["turn_peer"] for f in flows if f.entry["turn_peer"]]
        details = {
            key: next((f.details[key] for f in flows if f.details[key] is not None), None)
            for key in ("dtls_srtp_profiles", "stun_software", "stun_mapped_address")
        }
        extra = {
            "protocols": sorted(protocols),
            "encryption": "dtls-srtp" if details["dtls_srtp_profiles"] is not None else None,
            **details,
            "app": label,
            "far_end": "peer" if far is not None else "relay",
            "app_flows": [f.entry for f in flows],
            "turn_peer": turn_peers[0] if turn_peers else None,
            "signalling_uid": None,
        }
        record = self._record(
            view, "encrypted", "udp", DISPOSITION_APP_CALL, streams, flags, reason, extra
        )
        if far is None:
            # Relayed all the way: the relay is no party to the call, and the
            # party behind it is not visible here.
            record = replace(record, callee_ip=None, callee_port=None)
        return record

    def _finish_app_calls(self, calls: list[AppCall], reason: EndReason | None) -> None:
        for call in calls:
            self._done.append(self._app_call_record(call, reason))

    # -- TLS -----------------------------------------------------------------

    def _new_tls(
        self, ts_us: int, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> _TlsConnection | None:
        if not looks_like_tls(payload):
            return None
        hello = None
        if payload[0] == 22 and payload[5:6] == b"\x01":
            try:
                hello = parse_client_hello(payload)
            except FlowParseError as exc:
                if dport in self._sip_tls_ports or sport in self._sip_tls_ports:
                    self._weird(exc.kind)
        if hello is not None and hello.server_name and self._apps is not None:
            self._note_hello(ts_us, src, dst, hello.server_name)
        if hello is not None and says_sip(hello):
            basis = "alpn" if any("sip" in p.lower() for p in hello.alpn) else "sni"
        elif dport in self._sip_tls_ports or sport in self._sip_tls_ports:
            basis = "port"
        else:
            return None
        if hello is not None or sport not in self._sip_tls_ports or dport in self._sip_tls_ports:
            client, server = (src, sport), (dst, dport)
        else:
            client, server = (dst, dport), (src, sport)
        if len(self._tls) >= self.settings.max_tls_connections:
            self._close_tls(next(iter(self._tls.values())), EndReason.EVICTED)
        conn = _TlsConnection(ts_us, client, server, hello, basis)
        self._tls[conn.key] = conn
        self._tls_by_key[conn.key] = (conn, 0)
        self._tls_by_key[conn.reverse_key] = (conn, 1)
        self._tls_by_pair.setdefault(_pair(*conn.ips), set()).add(conn)
        return conn

    def _note_hello(self, ts_us: int, src: bytes, dst: bytes, server_name: str) -> None:
        """A ClientHello whose server name is a call application's: remembered for
        the UDP flows between the same addresses that nothing else names."""
        app = self._apps.host_app(server_name)
        if app is None:
            return
        hellos = self._hello_apps
        pair = _pair(src, dst)
        if pair in hellos:
            hellos.move_to_end(pair)
        elif len(hellos) >= _MAX_HELLO_APPS:
            hellos.popitem(last=False)
        hellos[pair] = (app, f"sni:{server_name}", ts_us)

    def _close_tls(self, conn: _TlsConnection, reason: EndReason | None) -> None:
        self._tls.pop(conn.key, None)
        pair = _unindex(conn, self._tls_by_key, self._tls_by_pair)
        _remember(self._recent_tls, pair, (conn.uid, conn.first_us, conn.last_us))
        media = {
            s.uid
            for s in self._sessions_by_pair.get(pair, ())
            if s.proven and s.first_us <= conn.last_us
        }
        media.update(
            uid
            for uid, first, last in self._recent_media.get(pair, ())
            if first <= conn.last_us and last >= conn.first_us
        )
        extra = {
            "protocols": ["tls"],
            "encryption": "tls",
            "server_name": conn.server_name,
            "alpn": conn.alpn,
            "app": tls_label(conn.sip_basis),
            "media_uids": sorted(media),
        }
        self._done.append(
            self._record(conn, "encrypted", "tls", DISPOSITION_TLS, (), set(), reason, extra)
        )

    # -- records -------------------------------------------------------------

    def _record(
        self,
        entry: _UdpSession | _TlsConnection,
        kind: str,
        transport: str,
        disposition: str,
        media: tuple[MediaStream, ...],
        flags: set[str],
        reason: EndReason | None,
        extra: dict,
    ) -> CallRecord:
        caller_ip, callee_ip = format_ip(entry.ips[0]), format_ip(entry.ips[1])
        ended_by = None
        if reason is not None:
            flags.add(reason.value)
            if reason is EndReason.SHUTDOWN:
                ended_by = reason.value
        subscriber_ip, direction, subscriber = self._classify(caller_ip, callee_ip)
        started = format_ts(entry.first_us)
        if entry.gaps:
            # The daemon was restarted while the session lasted: its packets
            # then were not seen.
            flags.add("restarted")
            extra = {
                **extra,
                "restart_gaps": [
                    {"start": format_ts(start), "end": format_ts(end)} for start, end in entry.gaps
                ],
            }
        return CallRecord(
            uid=entry.uid,
            kind=kind,
            call_id=None,
            caller=None,
            callee=None,
            caller_uri=None,
            callee_uri=None,
            request_uri=None,
            caller_ip=caller_ip,
            caller_port=entry.ports[0],
            callee_ip=callee_ip,
            callee_port=entry.ports[1],
            transport=transport,
            subscriber_ip=subscriber_ip,
            direction=direction,
            started_at=started,
            ringing_at=None,
            answered_at=started,
            ended_at=format_ts(entry.last_us),
            duration_s=round((entry.last_us - entry.first_us) / _US, 6),
            setup_ms=None,
            disposition=disposition,
            final_status=None,
            ended_by=ended_by,
            user_agent=None,
            media=media,
            flags=tuple(sorted(flags)),
            subscriber=subscriber,
            extra={
                "caller_packets": entry.packets[0],
                "callee_packets": entry.packets[1],
                "caller_bytes": entry.octets[0],
                "callee_bytes": entry.octets[1],
                **extra,
            },
        )

    def _take(self) -> list[CallRecord]:
        done, self._done = self._done, []
        return done


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
    first = payload[0]
    if payload[4:8] == _STUN_COOKIE and (payload[2] << 8 | payload[3]) + 20 == len(payload):
        # STUN, or an application's own message in STUN's format (WhatsApp's
        # relays use methods of the 0x0800 range, which RFC 7983 does not cover).
        data = _indication_data(payload) if first < 4 else None
        return _media_kind(data) if data else 0
    if 20 <= first < 64 and looks_like_dtls(payload):
        return 1 if first == 23 else 0  # DTLS application data may be media
    if 64 <= first < 80 and looks_like_channel_data(payload):
        inner = payload[4 : 4 + (payload[2] << 8 | payload[3])]
        return _media_kind(inner) if inner else 0
    if first >= 128 and len(payload) > 1 and 200 <= payload[1] <= 207:
        return 2
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


def _may_start_session(payload: bytes) -> bool:
    """Whether a datagram of an unknown flow is worth a session (RFC 7983 demultiplexing)."""
    first = payload[0]
    if first >= 128:
        return first < 192 and (
            looks_like_rtp(payload) or looks_like_rtcp(payload) or looks_like_srtcp(payload)
        )
    if first < 4:
        return looks_like_stun(payload)
    if 20 <= first < 64:
        return looks_like_dtls(payload)
    if 64 <= first < 80:
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
