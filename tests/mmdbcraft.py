"""A tiny MaxMind-format database for tests, written with mmdb-writer."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# network -> record, in the shape of GeoLite2 Country and ASN databases merged
NETWORKS = {
    "192.0.2.0/24": {
        "country": {"iso_code": "NL", "names": {"en": "Netherlands"}},
        "autonomous_system_number": 64500,
        "autonomous_system_organization": "Example Carrier B.V.",
    },
    "198.51.100.0/24": {"registered_country": {"iso_code": "DE"}},
    "2001:db8:ffff::/48": {
        "country": {"iso_code": "FR"},
        "autonomous_system_number": 64501,
        "autonomous_system_organization": "Exemple SAS",
    },
}


def write_mmdb(path: Path, networks: dict | None = None) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="voiplog-test")
    for network, record in (networks or NETWORKS).items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path
