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

The classifier is in four modules: this one (the tables, the UDP session
path, the records), `_state.py` (the tracking state and the rules that need
no table), `_appcall_rules.py` (app calls) and `_tls_sessions.py` (SIP over
TLS). This one stays longer than the others because the UDP path reads and
updates every table at once: it is one state machine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from voiplog.cdr import (
    CallRecord,
    Disposition,
    EndedBy,
    EndReason,
    MediaStream,
    RecordKind,
    format_ts,
)
from voiplog.cdr.sip_call import SubscriberLookup, no_subscriber_lookup
from voiplog.flows._appcall_rules import AppCallRules
from voiplog.flows._appcalls import AppCallTable
from voiplog.flows._appheaders import UNWRAPPERS
from voiplog.flows._apps import AppClassifier, AppVerdict
from voiplog.flows._dtls import looks_like_dtls, parse_dtls
from voiplog.flows._errors import FlowParseError
from voiplog.flows._labels import app_label, udp_session_label
from voiplog.flows._rtp_heuristic import (
    RtpCandidate,
    looks_like_srtcp,
    plausible_payload_type,
    rtcp_sender_ssrcs,
)
from voiplog.flows._state import (
    _EMPTY,
    _NO_RECORDS,
    _SURE,
    _US,
    DEMUX,
    DEMUX_DTLS,
    DEMUX_RTP,
    DEMUX_STUN,
    DEMUX_TURN,
    _builtin_verdict,
    _encryption,
    _may_start_session,
    _media,
    _media_kind,
    _pair,
    _remember,
    _TlsConnection,
    _UdpSession,
    _unindex,
    _voip_traits,
)
from voiplog.flows._stun import (
    METHOD_DATA,
    METHOD_SEND,
    TURN_METHODS,
    looks_like_channel_data,
    looks_like_stun,
    parse_channel_data,
    parse_stun,
)
from voiplog.flows._tls_sessions import TlsRules
from voiplog.packet import flow_key, format_ip
from voiplog.rtp import RtpStream, codec_for, looks_like_rtcp, looks_like_rtp
from voiplog.settings import FlowSettings

_MAX_CANDIDATES = 8  # unproven SSRCs per session; random UDP makes a new one per packet
_MAX_CLAIMED = 100_000
_MAX_IGNORED = 200_000  # flow keys the application classifier said are not VoIP
_MAX_PENDING_APP_FLOWS = 20_000


class FlowClassifier(AppCallRules, TlsRules):
    """Finds media sessions and encrypted VoIP flows; yields one `CallRecord` per session."""

    def __init__(
        self,
        settings: FlowSettings | None = None,
        lookup_subscriber: SubscriberLookup = no_subscriber_lookup,
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
        self._lookup_subscriber = lookup_subscriber
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

    def _ignore(self, session: _UdpSession) -> None:
        """Forget a session without a record; pass over its flow from now on."""
        self._forget_udp(session)
        ignored = self._ignored
        if len(ignored) >= _MAX_IGNORED:
            ignored.clear()
        ignored[session.key] = ignored[session.reverse_key] = session.last_us

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
        kind = DEMUX[payload[0]]
        if kind == DEMUX_RTP:
            self._on_rtp_or_rtcp(session, direction, ts_us, payload)
        elif kind == DEMUX_STUN:
            if looks_like_stun(payload):
                inner = self._on_stun(session, payload)
                if inner and not relayed:
                    self._on_datagram(session, direction, ts_us, inner, relayed=True)
        elif kind == DEMUX_DTLS:
            if looks_like_dtls(payload):
                self._on_dtls(session, payload)
        elif kind == DEMUX_TURN and not relayed and looks_like_channel_data(payload):
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
            RecordKind.ENCRYPTED if session.encrypted else RecordKind.MEDIA,
            "udp",
            Disposition.MEDIA_SESSION,
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

    # -- records -------------------------------------------------------------

    def _record(
        self,
        entry: _UdpSession | _TlsConnection,
        kind: RecordKind,
        transport: str,
        disposition: Disposition,
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
                ended_by = EndedBy.SHUTDOWN
        subscriber_ip, direction, subscriber = self._lookup_subscriber(caller_ip, callee_ip)
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
