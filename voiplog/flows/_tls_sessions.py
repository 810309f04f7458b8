"""SIP over TLS, as the flow classifier tracks it: connections on SIP-TLS
ports or whose ClientHello names SIP, one record each, and the server names of
other TLS connections that name a call application.

`TlsRules` is a part of `FlowClassifier` (it reads the classifier's tables).
"""

from __future__ import annotations

from voiplog.cdr import CallRecord, Disposition, EndReason, RecordKind
from voiplog.flows._errors import FlowParseError
from voiplog.flows._labels import tls_label
from voiplog.flows._state import (
    _MAX_HELLO_APPS,
    _NO_RECORDS,
    _pair,
    _remember,
    _TlsConnection,
    _unindex,
)
from voiplog.flows._tls import looks_like_tls, parse_client_hello, says_sip
from voiplog.packet import flow_key


class TlsRules:
    """The TLS part of `FlowClassifier`."""

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
            self._record(
                conn, RecordKind.ENCRYPTED, "tls", Disposition.TLS_SESSION, (), set(), reason, extra
            )
        )
