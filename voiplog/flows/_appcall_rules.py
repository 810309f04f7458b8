"""App calls, as the flow classifier judges them: which flow is call media,
which end is the subscriber's, which app it is, and one record per call.

`AppCallRules` is a part of `FlowClassifier` (it reads the classifier's tables);
the grouping of flows into calls is `AppCallTable`'s, in `_appcalls.py`.
"""

from __future__ import annotations

from dataclasses import replace

from voiplog.cdr import CallRecord, Disposition, EndReason, RecordKind, format_ts, make_uid
from voiplog.flows._appcalls import AppCall, AppFlow
from voiplog.flows._apps import AppVerdict
from voiplog.flows._labels import call_label
from voiplog.flows._state import (
    _APP_SERVER_PORTS,
    _GOOGLE_MEDIA_PORTS,
    _MAX_SOCKET_TAGS,
    _NAMED,
    _SERVER_PORTS,
    _TAGGING,
    _US,
    _AppCallView,
    _local_address,
    _media,
    _pair,
    _UdpSession,
)
from voiplog.packet import format_ip


class AppCallRules:
    """The app-call part of `FlowClassifier`."""

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
        subscriber_ip, _direction, _subscriber = self._lookup_subscriber(
            format_ip(first), format_ip(other)
        )
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
            view, RecordKind.ENCRYPTED, "udp", Disposition.APP_CALL, streams, flags, reason, extra
        )
        if far is None:
            # Relayed all the way: the relay is no party to the call, and the
            # party behind it is not visible here.
            record = replace(record, callee_ip=None, callee_port=None)
        return record

    def _finish_app_calls(self, calls: list[AppCall], reason: EndReason | None) -> None:
        for call in calls:
            self._done.append(self._app_call_record(call, reason))
