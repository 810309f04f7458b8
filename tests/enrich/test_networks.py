from __future__ import annotations

import ipaddress

from voiplog.enrich import SubscriberNetwork, SubscriberNetworks


def _nets():
    return SubscriberNetworks(
        [
            SubscriberNetwork(ipaddress.ip_network("100.64.0.0/10"), {"site": "wide"}),
            SubscriberNetwork(ipaddress.ip_network("100.64.8.0/24"), {"site": "narrow"}),
            SubscriberNetwork(ipaddress.ip_network("2001:db8:1000::/36"), {"site": "v6"}),
        ],
        pop="ams1",
    )


def test_longest_prefix_wins():
    nets = _nets()
    assert nets.lookup("100.64.8.9").location == {"site": "narrow"}
    assert nets.lookup("100.64.9.9").location == {"site": "wide"}
    assert nets.lookup("2001:db8:1fff::1").location == {"site": "v6"}
    assert nets.lookup("198.51.100.1") is None
    assert nets.lookup("not an address") is None


def test_directions():
    nets = _nets()
    assert nets.lookup_subscriber("100.64.8.9", "198.51.100.1")[:2] == ("100.64.8.9", "outbound")
    assert nets.lookup_subscriber("198.51.100.1", "2001:db8:1000::5")[:2] == (
        "2001:db8:1000::5",
        "inbound",
    )
    assert nets.lookup_subscriber("100.64.8.9", "100.64.9.9")[:2] == ("100.64.8.9", "internal")
    assert nets.lookup_subscriber("198.51.100.1", "203.0.113.1") == (None, "transit", None)


def test_subscriber_object():
    _, _, subscriber = _nets().lookup_subscriber("100.64.8.9", "198.51.100.1")
    assert subscriber == {
        "id": None,
        "account": None,
        "access_line": None,
        "pop": "ams1",
        "location": {"site": "narrow"},
    }


def test_no_networks_means_no_direction():
    assert SubscriberNetworks([]).lookup_subscriber("100.64.8.9", "198.51.100.1") == (
        None,
        None,
        None,
    )
