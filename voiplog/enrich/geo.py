"""The far end of a call: country, autonomous system and organisation of an address.

Answers come from operator-supplied MaxMind-format databases (GeoLite2/GeoIP2
Country or City, and ASN), read through `maxminddb` readers that the caller
opens and passes in. With no database, or an address a database does not
know, the fields are null: a far end that cannot be placed is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Reader(Protocol):
    def get(self, ip: str) -> Any: ...


def _country(record: dict) -> str | None:
    for key in ("country", "registered_country"):
        place = record.get(key)
        if isinstance(place, dict) and isinstance(place.get("iso_code"), str):
            return place["iso_code"]
    return None


class RemoteLookup:
    """Country, ASN and organisation of an address from one or more databases.

    Each field comes from the first database that knows it, so a Country and
    an ASN database can be given together.
    """

    def __init__(self, readers: Sequence[Reader] = (), cache_size: int = 65_536) -> None:
        self._readers = list(readers)
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_size = cache_size

    def __bool__(self) -> bool:
        return bool(self._readers)

    def lookup(self, ip: str) -> dict[str, Any]:
        """{"country", "asn", "org"}, each None when unknown."""
        found = self._cache.get(ip)
        if found is not None:
            return dict(found)
        remote: dict[str, Any] = {"country": None, "asn": None, "org": None}
        for reader in self._readers:
            try:
                record = reader.get(ip)
            except ValueError:  # not an address, or an IPv6 address in an IPv4-only database
                record = None
            if not isinstance(record, dict):
                continue
            if remote["country"] is None:
                remote["country"] = _country(record)
            if remote["asn"] is None and isinstance(record.get("autonomous_system_number"), int):
                remote["asn"] = record["autonomous_system_number"]
            if remote["org"] is None and isinstance(
                record.get("autonomous_system_organization"), str
            ):
                remote["org"] = record["autonomous_system_organization"]
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[ip] = remote
        return dict(remote)
