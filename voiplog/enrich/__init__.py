"""Enrichment: which endpoint of a call is the POP's subscriber, and where it is."""

from voiplog.enrich.networks import SubscriberNetwork, SubscriberNetworks

__all__ = ["SubscriberNetwork", "SubscriberNetworks"]
