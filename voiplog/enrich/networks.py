"""The POP's subscriber networks: which endpoint of a call is ours, and the call's direction.

Direction is relative to the subscriber networks: a call placed from inside to
outside is outbound, from outside to inside inbound, inside to inside internal,
and one between two outside endpoints (transit through the POP) transit.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SubscriberNetwork:
    network: _Network
    location: dict[str, Any] = field(default_factory=dict)  # site, address, lat, lon, access...


class SubscriberNetworks:
    """Longest-prefix lookup over the configured subscriber networks."""

    def __init__(self, networks: list[SubscriberNetwork], pop: str | None = None) -> None:
        # Most specific first, so the first containing network is the longest match.
        self._networks = sorted(networks, key=lambda n: -n.network.prefixlen)
        self._pop = pop
        self._cache: dict[str, SubscriberNetwork | None] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    @property
    def pop(self) -> str | None:
        return self._pop

    def lookup(self, ip: str) -> SubscriberNetwork | None:
        if ip in self._cache:
            return self._cache[ip]
        found = None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            address = None
        if address is not None:
            for net in self._networks:
                if address.version == net.network.version and address in net.network:
                    found = net
                    break
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[ip] = found
        return found

    def lookup_subscriber(
        self, caller_ip: str, callee_ip: str
    ) -> tuple[str | None, str | None, dict[str, Any] | None]:
        """(subscriber_ip, direction, subscriber) of a call's signalling endpoints."""
        if not self._networks:
            return None, None, None
        caller_net = self.lookup(caller_ip)
        callee_net = self.lookup(callee_ip)
        if caller_net is not None and callee_net is not None:
            subscriber_ip, net, direction = caller_ip, caller_net, "internal"
        elif caller_net is not None:
            subscriber_ip, net, direction = caller_ip, caller_net, "outbound"
        elif callee_net is not None:
            subscriber_ip, net, direction = callee_ip, callee_net, "inbound"
        else:
            return None, "transit", None
        subscriber = {
            "id": None,
            "account": None,
            "access_line": None,
            "pop": self._pop,
            "location": dict(net.location) or None,
        }
        return subscriber_ip, direction, subscriber
