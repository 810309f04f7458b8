"""Enriching a finished record: the call's start time decides who held the address."""

from __future__ import annotations

import dataclasses
import ipaddress

import maxminddb
import pytest

from tests.mmdbcraft import write_mmdb
from voiplog.cdr import CallRecord, RegistrationRecord, format_ts
from voiplog.enrich import (
    CgnatIndex,
    Enricher,
    LeaseIndex,
    Owner,
    PortBlock,
    RadiusSessions,
    RemoteLookup,
    SubscriberNetwork,
    SubscriberNetworks,
    parse_time,
)

T = parse_time("2024-05-01T10:00:00Z")
S = 1_000_000
NETWORKS = SubscriberNetworks(
    [SubscriberNetwork(ipaddress.ip_network("100.64.0.0/10"), {"site": "hall 1"})], pop="ams1"
)

# Alice's lease on 100.64.0.1, as a record's subscriber object in NETWORKS.
ALICE = {
    "id": "alice",
    "account": "acct-1",
    "access_line": "olt1/1/1:100",
    "pop": "ams1",
    "location": {"site": "hall 1"},
}


def _record(caller_ip="100.64.0.1", callee_ip="192.0.2.50", started_us=T, **kw) -> CallRecord:
    subscriber_ip, direction, subscriber = NETWORKS.lookup_subscriber(caller_ip, callee_ip)
    fields = dict(
        uid="C1", kind="sip", call_id="c1", caller="1001", callee="2001", caller_uri=None,
        callee_uri=None, request_uri=None, caller_ip=caller_ip, caller_port=5060,
        callee_ip=callee_ip, callee_port=5060, transport="udp", subscriber_ip=subscriber_ip,
        direction=direction, started_at=format_ts(started_us), ringing_at=None, answered_at=None,
        ended_at=format_ts(started_us + 60 * S), duration_s=0.0, setup_ms=None,
        disposition="answered", final_status=200, ended_by="caller", user_agent=None,
        subscriber=subscriber,
    )  # fmt: skip
    fields.update(kw)
    return CallRecord(**fields)


def _registration(source_ip="100.64.0.1", registrar_ip="192.0.2.10", **kw) -> RegistrationRecord:
    subscriber_ip, direction, subscriber = NETWORKS.lookup_subscriber(source_ip, registrar_ip)
    fields = dict(
        uid="R1", kind="registration", call_id="r1", aor="sip:3001@voip.example.net",
        user="3001", contact_uri=None, contact_ip=None, contact_port=None, source_ip=source_ip,
        source_port=5061, registrar_ip=registrar_ip, registrar_port=5060, transport="udp",
        expires_s=3600, auth_user=None, user_agent=None, status=200, result="registered",
        requested_at=format_ts(T), answered_at=format_ts(T + 20_000),
        subscriber_ip=subscriber_ip, direction=direction, subscriber=subscriber,
    )  # fmt: skip
    fields.update(kw)
    return RegistrationRecord(**fields)


@pytest.fixture
def remote(tmp_path):
    with maxminddb.open_database(str(write_mmdb(tmp_path / "t.mmdb"))) as db:
        yield RemoteLookup([db])


def test_subscriber_and_remote_filled(remote):
    leases = LeaseIndex()
    leases.add("100.64.0.1", T - 3600 * S, None, Owner("alice", "acct-1", "olt1/1/1:100"))
    enricher = Enricher(leases=leases, remote=remote, networks=NETWORKS)
    record = enricher.enrich(_record())
    assert record.subscriber == ALICE
    assert record.remote == {"country": "NL", "asn": 64500, "org": "Example Carrier B.V."}
    assert enricher.stats["enrich.subscriber_found"] == 1


def test_inbound_call_resolves_the_callee_and_places_the_caller(remote):
    leases = LeaseIndex()
    leases.add("100.64.0.1", T, T + 3600 * S, Owner("alice"))
    enricher = Enricher(leases=leases, remote=remote, networks=NETWORKS)
    record = enricher.enrich(_record(caller_ip="2001:db8:ffff::9", callee_ip="100.64.0.1"))
    assert record.direction == "inbound" and record.subscriber["id"] == "alice"
    assert record.remote["country"] == "FR"


def test_lease_changing_hands_mid_call_start_time_decides():
    leases = LeaseIndex()
    leases.add("100.64.0.1", T - 3600 * S, T + 30 * S, Owner("alice"))
    leases.add("100.64.0.1", T + 30 * S, None, Owner("bob"))  # in the middle of the call
    enricher = Enricher(leases=leases, networks=NETWORKS)
    assert enricher.enrich(_record(started_us=T)).subscriber["id"] == "alice"
    assert enricher.enrich(_record(started_us=T + 30 * S)).subscriber["id"] == "bob"


def test_missing_mapping_leaves_nulls_and_counts():
    enricher = Enricher(networks=NETWORKS)
    record = enricher.enrich(_record())
    assert record.subscriber["id"] is None and record.subscriber["pop"] == "ams1"
    assert record.remote == {"country": None, "asn": None, "org": None}
    assert enricher.stats["enrich.subscriber_unknown"] == 1
    assert enricher.stats["enrich.remote_unknown"] == 1


def test_transit_calls_are_left_alone():
    enricher = Enricher(networks=NETWORKS)
    record = _record(caller_ip="198.51.100.1", callee_ip="192.0.2.50")
    assert enricher.enrich(record) is record


def test_without_subscriber_networks_the_endpoint_holding_a_lease_is_ours():
    leases = LeaseIndex()
    leases.add("192.0.2.50", T, None, Owner("carol"))
    enricher = Enricher(leases=leases)
    record = _record(caller_ip="198.51.100.1", callee_ip="192.0.2.50")
    record = enricher.enrich(
        dataclasses.replace(record, subscriber_ip=None, direction=None, subscriber=None)
    )
    assert record.subscriber["id"] == "carol" and record.subscriber["location"] is None


def test_cgnat_public_address_and_port_to_private_to_subscriber():
    networks = SubscriberNetworks(
        [SubscriberNetwork(ipaddress.ip_network("203.0.113.0/24"), {"site": "cgnat pool"})],
        pop="ams1",
    )
    cgnat = CgnatIndex()
    public = int(ipaddress.ip_address("203.0.113.7"))
    for first, private in ((1024, "100.64.0.1"), (2048, "100.64.0.2")):
        cgnat.add(PortBlock(4, public, first, first + 1023, 4, int(ipaddress.ip_address(private)), T, None, "nat.csv"))  # fmt: skip
    leases = LeaseIndex()
    leases.add("100.64.0.1", T, None, Owner("alice"))
    leases.add("100.64.0.2", T, None, Owner("bob"))
    enricher = Enricher(leases=leases, cgnat=cgnat, networks=networks)
    for port, who, private in ((2047, "alice", "100.64.0.1"), (2048, "bob", "100.64.0.2")):
        subscriber_ip, direction, subscriber = networks.lookup_subscriber(
            "203.0.113.7", "192.0.2.50"
        )
        record = enricher.enrich(
            _record(caller_ip="203.0.113.7", caller_port=port, subscriber_ip=subscriber_ip,
                    direction=direction, subscriber=subscriber)
        )  # fmt: skip
        assert record.subscriber["id"] == who
        assert record.subscriber["private_ip"] == private
        assert record.subscriber["location"] == {"site": "cgnat pool"}
    resolution = enricher.resolve("203.0.113.7", 4000, T)
    assert resolution.block is None and resolution.lease is None


def test_open_radius_session_answers_before_the_history():
    leases = LeaseIndex()
    sessions = RadiusSessions(leases)
    from tests.radiuscraft import accounting

    sessions.feed(
        accounting("Start", "s1", User_Name="dave", Framed_IP_Address="100.64.0.1"), T, "192.0.2.1"
    )
    enricher = Enricher(leases=leases, radius=sessions, networks=NETWORKS)
    assert enricher.enrich(_record(started_us=T + S)).subscriber["id"] == "dave"
    assert enricher.enrich(_record(started_us=T - S)).subscriber["id"] is None


def test_a_registration_names_the_holder_of_its_source_at_its_first_register(remote):
    leases = LeaseIndex()
    leases.add("100.64.0.1", T - 3600 * S, T + 10_000, Owner("alice", "acct-1", "olt1/1/1:100"))
    leases.add("100.64.0.1", T + 10_000, None, Owner("bob"))  # before the 200 OK came
    enricher = Enricher(leases=leases, remote=remote, networks=NETWORKS)
    record = enricher.enrich(_registration())
    assert record.subscriber == ALICE
    assert enricher.stats["enrich.subscriber_found"] == 1
    assert "enrich.remote_found" not in enricher.stats  # a registrar is not a far end


def test_a_registration_to_a_subscriber_registrar_names_that_subscriber():
    leases = LeaseIndex()
    leases.add("100.64.0.9", T, None, Owner("pbx-customer"))
    enricher = Enricher(leases=leases, networks=NETWORKS)
    record = enricher.enrich(_registration(source_ip="192.0.2.77", registrar_ip="100.64.0.9"))
    assert record.direction == "inbound" and record.subscriber["id"] == "pbx-customer"


def test_a_registration_behind_cgnat_resolves_through_its_source_port():
    cgnat = CgnatIndex()
    public = int(ipaddress.ip_address("100.64.0.1"))
    private = int(ipaddress.ip_address("10.0.0.5"))
    cgnat.add(PortBlock(4, public, 5000, 5999, 4, private, T - S, None, "nat.csv"))
    leases = LeaseIndex()
    leases.add("10.0.0.5", T - S, None, Owner("carol"))
    enricher = Enricher(leases=leases, cgnat=cgnat, networks=NETWORKS)
    found = enricher.enrich(_registration(source_port=5061))
    assert (found.subscriber["id"], found.subscriber["private_ip"]) == ("carol", "10.0.0.5")
    missed = enricher.enrich(_registration(source_port=6001))
    assert missed.subscriber["id"] is None


def test_a_transit_registration_is_left_alone():
    enricher = Enricher(networks=NETWORKS)
    record = _registration(source_ip="198.51.100.1")
    assert enricher.enrich(record) is record
