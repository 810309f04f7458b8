"""Enrichment of a finished record: the subscriber who held the address when the call began.

At record close, the subscriber endpoint (`subscriber_ip` and its port) is
resolved as of the call's start time, not the time of closing: behind CGNAT,
the public address and port to the private address through the port block in
use then, and the address to the lease (an open RADIUS session, else the
lease history) valid then. A lease that changes hands in the middle of a call
therefore names the subscriber who held it when the call was placed. The far
end is placed by the MaxMind-format databases. A registration is resolved the
same way as of its first REGISTER, its source in the caller's place; it has no
far end. What cannot be resolved stays null and is counted (calls and
registrations alike); nothing here can fail a record.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voiplog.cdr import CallRecord, RegistrationRecord
from voiplog.enrich._address import parse_address
from voiplog.enrich._time import parse_time
from voiplog.enrich.cgnat import CgnatIndex, PortBlock
from voiplog.enrich.geo import RemoteLookup
from voiplog.enrich.leases import Lease, LeaseIndex
from voiplog.enrich.networks import SubscriberNetworks
from voiplog.enrich.radius import RadiusSessions

Record = CallRecord | RegistrationRecord


@dataclass(frozen=True, slots=True)
class Resolution:
    """How an address (and port) resolved at a time."""

    ip: str
    port: int | None
    at_us: int
    block: PortBlock | None  # the CGNAT port block in use, if any
    lease: Lease | None

    @property
    def private_ip(self) -> str | None:
        return self.block.private_ip if self.block is not None else None


class Enricher:
    """`enrich(record) -> record` (calls and registrations), and `resolve(ip, port, at)` for
    operators' lookups."""

    def __init__(
        self,
        leases: LeaseIndex | None = None,
        radius: RadiusSessions | None = None,
        cgnat: CgnatIndex | None = None,
        remote: RemoteLookup | None = None,
        networks: SubscriberNetworks | None = None,
        on_stat: Callable[[str], None] | None = None,
    ) -> None:
        self.leases = leases if leases is not None else LeaseIndex()
        self.radius = radius
        self.cgnat = cgnat
        self.remote = remote if remote is not None else RemoteLookup()
        self.networks = networks
        self.stats: Counter = Counter()
        self._on_stat = on_stat

    def _count(self, name: str) -> None:
        self.stats[name] += 1
        if self._on_stat is not None:
            self._on_stat(name)

    def resolve(self, ip: str, port: int | None, at_us: int) -> Resolution:
        """The port block (behind CGNAT) and the lease of `ip` at `at_us`.

        ValueError when `ip` is not an address.
        """
        block = None
        address = ip
        if self.cgnat is not None and port is not None:
            block = self.cgnat.lookup(ip, port, at_us)
            if block is not None:
                address = block.private_ip
        version, value = parse_address(address)
        lease = None
        if self.radius is not None:
            lease = self.radius.lookup_value(version, value, at_us)
        if lease is None:
            lease = self.leases.lookup_value(version, value, at_us)
        return Resolution(ip, port, at_us, block, lease)

    def enrich(self, record: Record) -> Record:
        """The record with `subscriber` filled as of the call's start (a
        registration's first REGISTER), and a call's far end in `remote`."""
        if type(record) is RegistrationRecord:
            start = record.requested_at
            sides = (
                (record.source_ip, record.source_port, record.registrar_ip),
                (record.registrar_ip, record.registrar_port, record.source_ip),
            )
        else:
            if record.caller_ip is None:
                return record
            start = record.started_at
            # An app call relayed end to end names no far party: its subscriber
            # is the caller side, and there is no far end to look up.
            sides = ((record.caller_ip, record.caller_port, record.callee_ip),)
            if record.callee_ip is not None:
                sides += ((record.callee_ip, record.callee_port, record.caller_ip),)
        try:
            at_us = parse_time(start)
        except ValueError:
            self._count("enrich.bad_start_time")
            return record
        ip, port, far = self._endpoint(record.subscriber_ip, record.direction, sides, at_us)
        if ip is None:
            return record
        changes: dict[str, Any] = {}
        subscriber = self._subscriber(record.subscriber, ip, port, at_us)
        if subscriber is not None:
            changes["subscriber"] = subscriber
        if far is not None and type(record) is not RegistrationRecord:
            remote = self.remote.lookup(far)
            self._count("enrich.remote_found" if any(remote.values()) else "enrich.remote_unknown")
            changes["remote"] = remote
        return dataclasses.replace(record, **changes) if changes else record

    def _subscriber(
        self, subscriber: dict[str, Any] | None, ip: str, port: int | None, at_us: int
    ) -> dict[str, Any] | None:
        """The subscriber object with the holder of `ip` (and `port`) at `at_us`."""
        try:
            resolution = self.resolve(ip, port, at_us)
        except ValueError:
            self._count("enrich.bad_address")
            resolution = None
        subscriber = dict(subscriber) if subscriber is not None else None
        if resolution is not None and resolution.lease is not None:
            lease = resolution.lease
            if subscriber is None:
                subscriber = _empty_subscriber(self.networks, ip)
            subscriber["id"] = lease.subscriber_id
            subscriber["account"] = lease.account
            subscriber["access_line"] = lease.access_line
            if resolution.block is not None:
                subscriber["private_ip"] = resolution.private_ip
                self._count("enrich.subscriber_via_cgnat")
            self._count("enrich.subscriber_found")
        else:
            if resolution is not None and resolution.block is None and self.cgnat:
                self._count("enrich.cgnat_block_unknown")
            self._count("enrich.subscriber_unknown")
        return subscriber

    def _endpoint(
        self,
        subscriber_ip: str | None,
        direction: str | None,
        sides: tuple[tuple[str, int | None, str | None], ...],
        at_us: int,
    ) -> tuple[str | None, int | None, str | None]:
        """(subscriber address, its port, far-end address) among a record's two
        `sides`, each (address, port, the other side's address)."""
        if subscriber_ip is not None:
            return sides[0] if subscriber_ip == sides[0][0] else sides[-1]
        if direction is not None:
            return None, None, None  # transit: no subscriber of ours
        # No subscriber networks configured: the endpoint holding a lease is ours.
        for ip, port, far in sides:
            try:
                if self.resolve(ip, port, at_us).lease is not None:
                    return ip, port, far
            except ValueError:
                continue
        return None, None, None


def _empty_subscriber(networks: SubscriberNetworks | None, ip: str) -> dict[str, Any]:
    location = None
    pop = None
    if networks is not None:
        pop = networks.pop
        found = networks.lookup(ip)
        if found is not None:
            location = dict(found.location) or None
    return {"id": None, "account": None, "access_line": None, "pop": pop, "location": location}
