"""Enrichment: which endpoint of a call is the POP's subscriber, who held it then, and the far end.

Everything here is sans-IO: sources arrive as lines or bytes, and time is an argument.
"""

from voiplog.enrich._address import format_network, parse_address, parse_network
from voiplog.enrich._errors import IpfixParseError, RadiusParseError, SourceError
from voiplog.enrich._time import format_time, parse_time
from voiplog.enrich.cgnat import CgnatIndex, PortBlock, read_cgnat_csv, read_ipfix_nat_events
from voiplog.enrich.enricher import Enricher, Resolution
from voiplog.enrich.geo import RemoteLookup
from voiplog.enrich.lease_files import LeaseRow, read_lease_rows
from voiplog.enrich.leases import Lease, LeaseIndex, Owner
from voiplog.enrich.networks import SubscriberNetwork, SubscriberNetworks
from voiplog.enrich.radius import ACCOUNTING_PORT, RadiusSessions, decode_accounting

__all__ = [
    "ACCOUNTING_PORT",
    "CgnatIndex",
    "Enricher",
    "IpfixParseError",
    "Lease",
    "LeaseIndex",
    "LeaseRow",
    "Owner",
    "PortBlock",
    "RadiusParseError",
    "RadiusSessions",
    "RemoteLookup",
    "Resolution",
    "SourceError",
    "SubscriberNetwork",
    "SubscriberNetworks",
    "decode_accounting",
    "format_network",
    "format_time",
    "parse_address",
    "parse_network",
    "parse_time",
    "read_cgnat_csv",
    "read_ipfix_nat_events",
    "read_lease_rows",
]
