"""The composition root: what a POP config asks for, built and wired together.

Strategy: the protocol packages (packet, sip, rtp, calls, flows, cdr, enrich)
are sans-IO and take their collaborators as arguments; the configuration
(`voiplog.config`) only validates values into `voiplog.settings`. The
commands and the daemon take their pipeline from here: `pipeline_parts`
turns a loaded config into what the pipeline needs (settings, subscriber
networks, enricher), `build_pipeline` builds it. What cannot be built from
the configuration as given (a lease file that is not there, a MaxMind
database that does not read) raises `WiringError`, naming the key or the
file, which `voiplog` commands turn into exit status 2 and the daemon into a
log line: nothing here prints or exits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voiplog.errors import UsageError
from voiplog.settings import (
    DEFAULT_SIP_PORTS,
    CallSettings,
    FlowSettings,
    HepSettings,
    ReassemblySettings,
)

if TYPE_CHECKING:
    from voiplog.config import PopConfig
    from voiplog.enrich import Enricher, SubscriberLookup, SubscriberNetworks
    from voiplog.pipeline import Pipeline


class WiringError(UsageError):
    """A configured collaborator that cannot be built; the message names the key or file.

    `status` is the exit status a command ends with: 2 for what the operator must
    change, 1 for what may pass by itself (a database that does not answer).
    """

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PipelineParts:
    """What a POP configuration gives the packet pipeline; the defaults are those
    of no configuration at all."""

    sip_ports: tuple[int, ...] = DEFAULT_SIP_PORTS
    call_settings: CallSettings = field(default_factory=CallSettings)
    lookup_subscriber: SubscriberLookup | None = None
    flow_settings: FlowSettings = field(default_factory=FlowSettings)
    reassembly: ReassemblySettings | None = None
    enricher: Enricher | None = None  # with an [enrichment] section
    radius_ports: tuple[int, ...] = ()
    hep: HepSettings | None = None  # None: the defaults


def subscriber_networks(cfg: PopConfig) -> SubscriberNetworks:
    """The config's subscriber networks with their locations, as the enricher and the
    subscriber lookup read them."""
    from voiplog.enrich import SubscriberNetwork, SubscriberNetworks

    networks = []
    for entry in cfg.subscriber_networks:
        location = {k: v for k, v in entry.model_dump().items() if k != "cidr"}
        networks.append(SubscriberNetwork(ipaddress.ip_network(entry.cidr), location))
    return SubscriberNetworks(networks, pop=cfg.pop)


def build_enricher(cfg: PopConfig, networks: SubscriberNetworks) -> Enricher:
    """The enricher of a loaded config's [enrichment] section; `WiringError` naming a
    source that cannot be read."""
    from voiplog.wiring.enrichment import EnrichmentSourceError
    from voiplog.wiring.enrichment import build_enricher as build

    try:
        return build(cfg, networks)
    except EnrichmentSourceError as exc:
        raise WiringError(str(exc)) from None


def pipeline_parts(cfg: PopConfig) -> PipelineParts:
    """What `cfg` gives the pipeline; `WiringError` when an enrichment source cannot
    be read."""
    networks = subscriber_networks(cfg)
    enricher = build_enricher(cfg, networks) if cfg.enrichment is not None else None
    return PipelineParts(
        sip_ports=tuple(cfg.sip.ports),
        call_settings=cfg.calls.settings(),
        lookup_subscriber=networks.lookup_subscriber if networks else None,
        flow_settings=cfg.media_sessions.settings(),
        reassembly=cfg.reassembly.settings(),
        enricher=enricher,
        radius_ports=tuple(cfg.enrichment.radius_ports) if enricher is not None else (),
        hep=cfg.hep.settings(),
    )


def build_pipeline(
    parts: PipelineParts,
    emit: Callable[[Any], None],
    *,
    apps=None,
    lookup_subscriber: SubscriberLookup | None = None,
    on_parse_error: Callable[[int, Exception], None] | None = None,
) -> Pipeline:
    """A pipeline emitting its records into `emit` (a `RecordSink`'s write), naming
    applications with `apps` (`voiplog.apps.open_app_classifier`'s classifier, or
    None) and subscribers with `lookup_subscriber` (default: the parts' own lookup; the
    daemon hands in one it can swap on reload)."""
    from voiplog.pipeline import Pipeline

    return Pipeline(
        emit,
        sip_ports=parts.sip_ports,
        call_settings=parts.call_settings,
        lookup_subscriber=lookup_subscriber
        if lookup_subscriber is not None
        else parts.lookup_subscriber,
        on_parse_error=on_parse_error,
        flow_settings=parts.flow_settings,
        reassembly=parts.reassembly,
        enricher=parts.enricher,
        radius_ports=parts.radius_ports,
        apps=apps,
        hep=parts.hep,
    )
