"""RADIUS accounting seen on the wire: who holds which address, session by session.

Strategy. Accounting-Requests (RFC 2866) are decoded with pyrad and the
dictionary shipped beside this module. A session is keyed by its NAS (NAS-Identifier,
else NAS-IP-Address, else the packet's source) and Acct-Session-Id. Start opens
it, Interim-Update keeps it alive (or opens it, dated back by Acct-Session-Time,
when its Start was missed), Stop closes it; a NAS's Accounting-On/Off closes
all of its sessions (the NAS restarted). A session not heard of for
`session_timeout_us` is closed as of its last word plus that timeout: until
then it was taken as open, so a lookup answers the same before and after.
Times are packet times moved back by Acct-Delay-Time.

Closed sessions become leases in the `LeaseIndex`; open ones are answered from
here. A session holds every address it was given: Framed-IP-Address,
Framed-IPv6-Prefix, Delegated-IPv6-Prefix, Framed-IPv6-Address. When a new
session takes an address another open session holds, the older one lost it
(its Stop went missing) and is closed there.

The subscriber is User-Name, the access line NAS-Port-Id (else
Calling-Station-Id). Accounting carries no billing account: `account` stays null
unless lease files say it.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import ipaddress
import struct
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources

from voiplog.enrich._address import bits, parse_address, parse_network
from voiplog.enrich._errors import RadiusParseError
from voiplog.enrich.leases import Lease, LeaseIndex, Owner

ACCOUNTING_PORT = 1813
_US = 1_000_000
_HEADER = struct.Struct("!BBH16s")

_ACCOUNTING_REQUEST = 4
_dictionary = None


def radius_dictionary():
    """The shipped RADIUS dictionary (a pyrad Dictionary), read once.

    pyrad is imported on first use, so that a replay without RADIUS does not load it.
    """
    global _dictionary
    if _dictionary is None:
        from pyrad.dictionary import Dictionary

        text = resources.files("voiplog.enrich").joinpath("radius.dictionary").read_text()
        _dictionary = Dictionary(io.StringIO(text))
    return _dictionary


class StatusType(Enum):
    START = "Start"
    STOP = "Stop"
    INTERIM_UPDATE = "Interim-Update"
    ACCOUNTING_ON = "Accounting-On"
    ACCOUNTING_OFF = "Accounting-Off"


@dataclass(frozen=True, slots=True)
class AccountingRecord:
    """What one Accounting-Request says, decoded."""

    status: StatusType
    nas: str
    session_id: str | None
    networks: tuple[tuple[int, int, int], ...]
    owner: Owner
    event_us: int  # packet time less Acct-Delay-Time
    session_time_s: int | None
    attributes: dict = field(default_factory=dict)


_STATUS = {s.value: s for s in StatusType}
_NETWORK_ATTRIBUTES = (
    "Framed-IP-Address",
    "Framed-IPv6-Prefix",
    "Delegated-IPv6-Prefix",
    "Framed-IPv6-Address",
)


def decode_accounting(
    payload: bytes, ts_us: int, src_ip: str, secret: bytes | None = None
) -> AccountingRecord | None:
    """Decode an Accounting-Request; None for another RADIUS code (a response).

    With `secret`, the Request Authenticator is checked (RFC 2866 section 3).
    Raises RadiusParseError for anything that cannot be read.
    """
    if len(payload) < 20:
        raise RadiusParseError("RADIUS packet shorter than its 20-byte header", "radius.truncated")
    code, _ident, length, authenticator = _HEADER.unpack_from(payload)
    if code != _ACCOUNTING_REQUEST:
        return None
    if secret is not None:
        if length > len(payload) or length < 20:
            raise RadiusParseError("RADIUS length beyond the packet", "radius.truncated")
        expected = hashlib.md5(
            payload[:4] + bytes(16) + payload[20:length] + secret, usedforsecurity=False
        ).digest()
        if expected != authenticator:
            raise RadiusParseError(
                "Accounting-Request authenticator does not match the shared secret",
                "radius.bad_authenticator",
            )
    from pyrad.packet import AcctPacket, PacketError

    dictionary = radius_dictionary()
    try:
        packet = AcctPacket(dict=dictionary, packet=payload)
        status_values = packet.get("Acct-Status-Type")
        values = {
            name: packet.get(name)
            for name in (
                "User-Name",
                "Calling-Station-Id",
                "NAS-Identifier",
                "NAS-IP-Address",
                "NAS-IPv6-Address",
                "NAS-Port-Id",
                "Acct-Session-Id",
                "Acct-Delay-Time",
                "Acct-Session-Time",
                *_NETWORK_ATTRIBUTES,
            )
        }
    except (PacketError, ValueError, struct.error, KeyError, IndexError, TypeError) as exc:
        raise RadiusParseError(f"undecodable RADIUS accounting packet: {exc}") from None
    if not status_values:
        raise RadiusParseError("Accounting-Request without Acct-Status-Type", "radius.no_status")
    status = _STATUS.get(status_values[0]) if isinstance(status_values[0], str) else None
    if status is None:
        raise RadiusParseError(
            f"Acct-Status-Type {status_values[0]!r} is not one voiplog follows",
            "radius.other_status",
        )

    def first_text(name: str) -> str | None:
        found = values.get(name)
        if not found:
            return None
        value = found[0]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "backslashreplace")
        text = str(value).strip()
        return text or None

    networks = []
    for name in _NETWORK_ATTRIBUTES:
        for value in values.get(name) or ():
            try:
                networks.append(parse_network(str(ipaddress.ip_network(value, strict=False))))
            except ValueError:
                raise RadiusParseError(
                    f"{name} {value!r} is not an address", "radius.bad_address"
                ) from None
    nas = (
        first_text("NAS-Identifier")
        or first_text("NAS-IP-Address")
        or first_text("NAS-IPv6-Address")
        or src_ip
    )
    delay = values.get("Acct-Delay-Time")
    session_time = values.get("Acct-Session-Time")
    access_line = first_text("NAS-Port-Id") or first_text("Calling-Station-Id")
    attributes = {
        key: text
        for key, text in (
            ("nas", nas),
            ("nas_port_id", first_text("NAS-Port-Id")),
            ("calling_station_id", first_text("Calling-Station-Id")),
            ("acct_session_id", first_text("Acct-Session-Id")),
        )
        if text is not None
    }
    return AccountingRecord(
        status=status,
        nas=nas,
        session_id=first_text("Acct-Session-Id"),
        networks=tuple(networks),
        owner=Owner(first_text("User-Name"), None, access_line),
        event_us=ts_us - (int(delay[0]) * _US if delay else 0),
        session_time_s=int(session_time[0]) if session_time else None,
        attributes=attributes,
    )


@dataclass(slots=True)
class _Session:
    key: tuple[str, str]
    networks: tuple[tuple[int, int, int], ...]
    owner: Owner
    start_us: int
    last_us: int
    attributes: dict


class RadiusSessions:
    """Open accounting sessions; closed ones are handed to a `LeaseIndex`."""

    def __init__(
        self,
        leases: LeaseIndex,
        session_timeout_s: float = 7200,
        max_sessions: int = 1_000_000,
        secrets: dict[str, bytes | None] | None = None,
        on_weird=None,
    ) -> None:
        """`secrets`: NAS source address -> shared secret (or None: not checked).
        When given, accounting from any other source is ignored and counted:
        anyone on a watched link could otherwise send accounting naming any
        subscriber. Without it, accounting from every source is believed."""
        self.leases = leases
        self.session_timeout_us = int(session_timeout_s * _US)
        self.max_sessions = max_sessions
        self.secrets = secrets
        self._on_weird = on_weird or (lambda kind: None)
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._by_network: dict[tuple[int, int, int], _Session] = {}
        self._prefixes: dict[int, list[int]] = {4: [], 6: []}  # prefix lengths held, longest first
        self._deadlines: list[tuple[int, tuple[str, str]]] = []
        self.packets = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def feed(self, payload: bytes, ts_us: int, src_ip: str) -> AccountingRecord | None:
        """One UDP payload sent to the accounting port. Raises RadiusParseError."""
        secret = None
        if self.secrets is not None:
            if src_ip not in self.secrets:
                self._on_weird("radius.unknown_client")
                return None
            secret = self.secrets[src_ip]
        record = decode_accounting(payload, ts_us, src_ip, secret)
        if record is None:
            return None
        self.packets += 1
        self.apply(record)
        return record

    def apply(self, record: AccountingRecord) -> None:
        status = record.status
        if status in (StatusType.ACCOUNTING_ON, StatusType.ACCOUNTING_OFF):
            for session in [s for s in self._sessions.values() if s.key[0] == record.nas]:
                self._close(session, record.event_us)
            return
        if record.session_id is None:
            self._on_weird("radius.no_session_id")
            return
        key = (record.nas, record.session_id)
        session = self._sessions.get(key)
        at = record.event_us
        if status is StatusType.STOP:
            if session is not None:
                self._update(session, record)
                self._close(session, at)
            elif record.session_time_s and record.networks:
                # A Stop for a session whose Start we missed still dates the lease.
                start = at - record.session_time_s * _US
                for network in record.networks:
                    self.leases.add(network, start, at, record.owner, "radius")
            else:
                self._on_weird("radius.stop_unknown_session")
            return
        if session is None:
            start = at
            if status is StatusType.INTERIM_UPDATE and record.session_time_s:
                start = at - record.session_time_s * _US
            self._open(key, record, start)
        else:
            self._update(session, record)

    def _open(self, key: tuple[str, str], record: AccountingRecord, start_us: int) -> None:
        if not record.networks:
            self._on_weird("radius.session_without_address")
            return
        if len(self._sessions) >= self.max_sessions:
            self._evict_one(record.event_us)
        session = _Session(key, (), record.owner, start_us, record.event_us, record.attributes)
        self._sessions[key] = session
        # Another open session holding an address loses it now, not at a dated-back start.
        self._set_networks(session, record.networks, record.event_us)
        heapq.heappush(self._deadlines, (session.last_us + self.session_timeout_us, key))

    def _update(self, session: _Session, record: AccountingRecord) -> None:
        at = record.event_us
        if at > session.last_us:
            session.last_us = at  # its deadline entry is moved when it comes up
        new, old = record.owner, session.owner
        if new != old:
            # A later request may leave out what the Start said (NAS-Port-Id on a Stop).
            session.owner = Owner(
                new.subscriber_id or old.subscriber_id,
                new.account or old.account,
                new.access_line or old.access_line,
            )
        if record.networks and set(record.networks) != set(session.networks):
            # Addresses dropped from the session end their lease now.
            for network in set(session.networks) - set(record.networks):
                self._release(session, network, at)
            self._set_networks(session, record.networks, at)

    def _set_networks(self, session: _Session, networks, at_us: int) -> None:
        for network in networks:
            holder = self._by_network.get(network)
            if holder is session:
                continue
            if holder is not None:
                # The address changed hands without a Stop for the old session.
                self._on_weird("radius.address_taken_over")
                self._close(holder, at_us)
            self._by_network[network] = session
            plens = self._prefixes[network[0]]
            if network[1] not in plens:
                plens.append(network[1])
                plens.sort(reverse=True)
        session.networks = tuple(dict.fromkeys((*session.networks, *networks)))

    def _release(self, session: _Session, network, end_us: int) -> None:
        if self._by_network.get(network) is session:
            del self._by_network[network]
        if end_us > session.start_us:
            self.leases.add(network, session.start_us, end_us, session.owner, "radius")
        session.networks = tuple(n for n in session.networks if n != network)

    def _close(self, session: _Session, end_us: int) -> None:
        for network in session.networks:
            self._release(session, network, end_us)
        self._sessions.pop(session.key, None)

    def _evict_one(self, now_us: int) -> None:
        while self._deadlines:
            _, key = heapq.heappop(self._deadlines)
            session = self._sessions.get(key)
            if session is not None:
                self._on_weird("radius.session_evicted")
                self._close(session, max(session.last_us, session.start_us + 1))
                return

    def expire(self, now_us: int) -> int:
        """Close sessions not heard of for the timeout; returns how many."""
        expired = 0
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now_us:
            deadline, key = heapq.heappop(deadlines)
            session = self._sessions.get(key)
            if session is None:
                continue  # closed already
            current = session.last_us + self.session_timeout_us
            if current > deadline:
                # Heard of since: one entry per session, moved to its new deadline.
                heapq.heappush(deadlines, (current, key))
                continue
            self._on_weird("radius.session_expired")
            self._close(session, current)
            expired += 1
        return expired

    def lookup(self, ip: str, at_us: int) -> Lease | None:
        version, value = parse_address(ip)
        return self.lookup_value(version, value, at_us)

    def lookup_value(self, version: int, value: int, at_us: int) -> Lease | None:
        """The open session holding the address at `at_us`, as a lease still held."""
        width = bits(version)
        for plen in self._prefixes[version]:
            shift = width - plen
            network = (version, plen, value >> shift << shift)
            session = self._by_network.get(network)
            if session is not None and session.start_us <= at_us:
                owner = session.owner
                return Lease(
                    version,
                    plen,
                    network[2],
                    session.start_us,
                    None,
                    owner.subscriber_id,
                    owner.account,
                    owner.access_line,
                    "radius",
                    session.attributes,
                )
        return None
