"""Open media sessions, SIP-TLS connections and app calls as plain data, and back.

Strategy: as `voiplog.calls._snapshot` does for calls, everything the flow
classifier needs to go on with what it tracks is turned into JSON-able values
(bytes as hex, tuples and sets as lists, verdicts and app flows field by
field, RTP streams slot by slot), so that a session that outlives a restart is
still one record, with all its packets counted. Left out, because they are
rebuilt from the next packets at little cost: candidate sessions (a few
datagrams not yet proven), flows passed over as no call, and the application
classifier's per-flow state (a restored session still undecided starts its
classification again). No file is read or written here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from voiplog.cdr import MediaStream
from voiplog.flows._appcalls import AppCall, AppFlow
from voiplog.flows._appheaders import UNWRAPPERS
from voiplog.flows._apps import AppVerdict
from voiplog.rtp import stream_from_state, stream_state

if TYPE_CHECKING:
    from voiplog.flows._sessions import FlowClassifier
    from voiplog.flows._state import _TlsConnection, _UdpSession

# Bumped whenever what is saved changes meaning.
FORMAT = 1

# Session slots saved as they are (ints, bools, strings, None, lists of ints).
_PLAIN = (
    "first_us",
    "last_us",
    "packets",
    "octets",
    "rtcp",
    "srtcp",
    "stun",
    "ice",
    "turn",
    "software",
    "dtls",
    "srtp_agreed",
    "anchor",
    "media",
    "rtcp_media",
    "media_first_us",
    "media_last_us",
)


def _gaps(saved: list, gap: tuple[int, int] | None) -> list[tuple[int, int]]:
    return [(start, end) for start, end in saved] + ([gap] if gap is not None else [])


def _hex(value: bytes) -> str:
    return value.hex()


def _verdict_out(verdict: AppVerdict | None) -> dict | None:
    return None if verdict is None else asdict(verdict)


def _verdict_in(data: dict | None) -> AppVerdict | None:
    return None if data is None else AppVerdict(**data)


def _session_out(session: _UdpSession, call_index: dict[int, int]) -> dict:
    data: dict[str, Any] = {name: getattr(session, name) for name in _PLAIN}
    data.update(
        ips=[_hex(ip) for ip in session.ips],
        ports=list(session.ports),
        streams=[
            [direction, ssrc.hex(), stream_state(stream)]
            for (direction, ssrc), stream in session.streams.items()
        ],
        sr_ssrcs=sorted([direction, ssrc.hex()] for direction, ssrc in session.sr_ssrcs),
        peer=list(session.peer) if session.peer else None,
        mapped=list(session.mapped) if session.mapped else None,
        srtp_profiles=list(session.srtp_profiles) if session.srtp_profiles is not None else None,
        verdict=_verdict_out(session.verdict),
        undecided=session.app_state is not None,
        call=call_index.get(id(session.call)) if session.call is not None else None,
        gaps=[list(gap) for gap in session.gaps],
    )
    return data


def _session_in(cls: type, data: dict, gap: tuple[int, int] | None) -> _UdpSession:
    src, dst = (bytes.fromhex(ip) for ip in data["ips"])
    sport, dport = data["ports"]
    session = cls(data["first_us"], src, sport, dst, dport)
    for name in _PLAIN:
        value = data[name]
        setattr(session, name, list(value) if isinstance(value, list) else value)
    streams = {}
    by_ssrc: tuple[dict, dict] = ({}, {})
    for direction, ssrc_hex, stream in data["streams"]:
        ssrc = bytes.fromhex(ssrc_hex)
        streams[(direction, ssrc)] = by_ssrc[direction][ssrc] = stream_from_state(stream)
    if streams:
        session.streams = streams
        session.by_ssrc = by_ssrc
    session.sr_ssrcs = {(direction, bytes.fromhex(ssrc)) for direction, ssrc in data["sr_ssrcs"]}
    session.peer = tuple(data["peer"]) if data["peer"] else None
    session.mapped = tuple(data["mapped"]) if data["mapped"] else None
    profiles = data["srtp_profiles"]
    session.srtp_profiles = tuple(profiles) if profiles is not None else None
    session.verdict = _verdict_in(data["verdict"])
    if session.verdict is not None:
        session.unwrap = UNWRAPPERS.get(session.verdict.app)
    session.believed = True
    session.gaps = _gaps(data["gaps"], gap)
    return session


def _tls_out(conn: _TlsConnection) -> dict:
    return {
        "ips": [_hex(ip) for ip in conn.ips],
        "ports": list(conn.ports),
        "first_us": conn.first_us,
        "last_us": conn.last_us,
        "packets": conn.packets,
        "octets": conn.octets,
        "server_name": conn.server_name,
        "alpn": conn.alpn,
        "sip_basis": conn.sip_basis,
        "gaps": [list(gap) for gap in conn.gaps],
    }


def _tls_in(cls: type, data: dict, gap: tuple[int, int] | None) -> _TlsConnection:
    client_ip, server_ip = (bytes.fromhex(ip) for ip in data["ips"])
    client_port, server_port = data["ports"]
    conn = cls(data["first_us"], (client_ip, client_port), (server_ip, server_port), None, "")
    conn.last_us = data["last_us"]
    conn.packets = list(data["packets"])
    conn.octets = list(data["octets"])
    conn.server_name = data["server_name"]
    conn.alpn = list(data["alpn"])
    conn.sip_basis = data["sip_basis"]
    conn.gaps = _gaps(data["gaps"], gap)
    return conn


_FLOW_FIELDS = tuple(f.name for f in fields(AppFlow))


def _app_flow_out(flow: AppFlow) -> dict:
    data = {name: getattr(flow, name) for name in _FLOW_FIELDS}
    data.update(
        anchor=[flow.anchor[0].hex(), flow.anchor[1]],
        far=[flow.far[0].hex(), flow.far[1]],
        packets=list(flow.packets),
        octets=list(flow.octets),
        streams=[asdict(stream) for stream in flow.streams],
        protocols=sorted(flow.protocols),
    )
    return data


def _app_flow_in(data: dict) -> AppFlow:
    values = dict(data)
    values.update(
        anchor=(bytes.fromhex(data["anchor"][0]), data["anchor"][1]),
        far=(bytes.fromhex(data["far"][0]), data["far"][1]),
        packets=tuple(data["packets"]),
        octets=tuple(data["octets"]),
        streams=tuple(MediaStream(**stream) for stream in data["streams"]),
        protocols=frozenset(data["protocols"]),
    )
    return AppFlow(**values)


def _key_out(key: tuple[str, bytes]) -> list:
    return [key[0], key[1].hex()]


def _key_in(data: list) -> tuple[str, bytes]:
    return (data[0], bytes.fromhex(data[1]))


def _app_call_out(call: AppCall) -> dict:
    return {
        "key": _key_out(call.key),
        "first_us": call.first_us,
        "last_us": call.last_us,
        "flows": [_app_flow_out(flow) for flow in call.flows],
        "verdicts": [_verdict_out(v) for v in call.verdicts],
        "sockets": sorted(call.sockets),
        "fars": sorted(far.hex() for far in call.fars),
        "retired": call.retired,
        "gaps": [list(gap) for gap in call.gaps],
    }


def _app_call_in(data: dict, gap: tuple[int, int] | None) -> AppCall:
    call = AppCall(_key_in(data["key"]), data["first_us"], data["last_us"])
    call.flows = [_app_flow_in(flow) for flow in data["flows"]]
    call.verdicts = [_verdict_in(v) for v in data["verdicts"]]
    call.sockets = set(data["sockets"])
    call.fars = {bytes.fromhex(far) for far in data["fars"]}
    call.retired = data["retired"]
    call.gaps = _gaps(data["gaps"], gap)
    return call


def snapshot(flows: FlowClassifier) -> dict:
    """What `flows` tracks, as plain data (see the module's strategy)."""
    table = flows._app_calls
    calls = [*table._calls.values(), *table._retired]
    call_index = {id(call): n for n, call in enumerate(calls)}
    return {
        "format": FORMAT,
        "sessions": [_session_out(s, call_index) for s in flows._sessions.values()],
        "tls": [_tls_out(conn) for conn in flows._tls.values()],
        "app_calls": [_app_call_out(call) for call in calls],
        "pending": [
            [_key_out(key), [_app_flow_out(flow) for flow in waiting]]
            for key, waiting in table._pending.items()
        ],
        "attempt_ends": [[_key_out(key), end] for key, end in table._attempt_ends.items()],
        "attempts_without_media": table.attempts_without_media,
        "socket_apps": [
            [ip.hex(), port, _verdict_out(verdict), last]
            for (ip, port), (verdict, last) in flows._socket_apps.items()
        ],
        "hello_apps": [
            [a.hex(), b.hex(), app, basis, at]
            for (a, b), (app, basis, at) in flows._hello_apps.items()
        ],
        "recent_media": _recent_out(flows._recent_media),
        "recent_tls": _recent_out(flows._recent_tls),
        "claimed": sorted(key.hex() for key in flows._claimed),
        "app_datagrams": flows.app_datagrams,
    }


def _recent_out(table: OrderedDict) -> list:
    return [[a.hex(), b.hex(), [list(item) for item in items]] for (a, b), items in table.items()]


def _recent_in(data: list) -> OrderedDict:
    return OrderedDict(
        ((bytes.fromhex(a), bytes.fromhex(b)), [tuple(item) for item in items])
        for a, b, items in data
    )


def restore(flows: FlowClassifier, data: dict, gap: tuple[int, int] | None) -> int:
    """Take back what `snapshot` saved into an empty `flows`; return the sessions
    restored. ``gap`` is (saved, resumed) in microseconds: every session, TLS
    connection and app call restored is flagged with it (None: not flagged). Raises ValueError for
    data of another format, or that does not read."""
    from voiplog.flows._state import _pair, _TlsConnection, _UdpSession

    if data.get("format") != FORMAT:
        raise ValueError(f"media sessions saved in format {data.get('format')}, not {FORMAT}")
    if flows._sessions or flows._candidates or flows._tls:
        raise ValueError("media sessions can only be restored before any packet")
    try:
        calls = [_app_call_in(call, gap) for call in data["app_calls"]]
        sessions = []
        for saved in data["sessions"]:
            session = _session_in(_UdpSession, saved, gap)
            if saved["call"] is not None:
                call = calls[saved["call"]]
                session.call = call
                call.open_flows += 1
                call.live.append(session)
            sessions.append((session, saved["undecided"]))
        connections = [_tls_in(_TlsConnection, saved, gap) for saved in data["tls"]]
        pending = [
            (_key_in(key), [_app_flow_in(flow) for flow in waiting])
            for key, waiting in data["pending"]
        ]
        attempt_ends = [(_key_in(key), end) for key, end in data["attempt_ends"]]
        attempts = int(data["attempts_without_media"])
        socket_apps = {
            (bytes.fromhex(ip), port): (_verdict_in(verdict), last)
            for ip, port, verdict, last in data["socket_apps"]
        }
        hello_apps = [
            ((bytes.fromhex(a), bytes.fromhex(b)), (app, basis, at))
            for a, b, app, basis, at in data["hello_apps"]
        ]
        recent_media = _recent_in(data["recent_media"])
        recent_tls = _recent_in(data["recent_tls"])
        claimed = {bytes.fromhex(key) for key in data["claimed"]}
        app_datagrams = int(data["app_datagrams"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"media sessions do not read: {exc!r}") from None
    # Everything read: only now is the classifier changed, so that a state that
    # does not read leaves it untouched.
    table = flows._app_calls
    for call in calls:
        if call.retired:
            table._retired.append(call)
        else:
            table._calls[call.key] = call
        table._by_anchor.setdefault(call.key[1], []).append(call)
    for session, undecided in sessions:
        if undecided and flows._apps is not None:
            session.app_state = flows._apps.new_flow()
        flows._sessions[session.key] = session
        flows._by_key[session.key] = (session, 0)
        flows._by_key[session.reverse_key] = (session, 1)
        flows._sessions_by_pair.setdefault(_pair(*session.ips), set()).add(session)
    for conn in connections:
        flows._tls[conn.key] = conn
        flows._tls_by_key[conn.key] = (conn, 0)
        flows._tls_by_key[conn.reverse_key] = (conn, 1)
        flows._tls_by_pair.setdefault(_pair(*conn.ips), set()).add(conn)
    for key, waiting in pending:
        table._pending[key] = waiting
        table._pending_count += len(waiting)
    table._attempt_ends.update(attempt_ends)
    table.attempts_without_media = attempts
    flows._socket_apps.update(socket_apps)
    flows._hello_apps.update(hello_apps)
    flows._recent_media = recent_media
    flows._recent_tls = recent_tls
    flows._claimed = claimed
    flows.app_datagrams = app_datagrams
    return len(data["sessions"])
