"""What several subcommands share: loading the POP settings the pipeline needs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import click

from voiplog.calls import CallSettings
from voiplog.flows import FlowSettings
from voiplog.pipeline import DEFAULT_SIP_PORTS, ReassemblySettings


@dataclass(frozen=True)
class PipelineOptions:
    """The parts of a POP configuration the packet pipeline uses."""

    sip_ports: tuple[int, ...] = DEFAULT_SIP_PORTS
    call_settings: CallSettings = field(default_factory=CallSettings)
    classify: Any = None
    flow_settings: FlowSettings = field(default_factory=FlowSettings)
    reassembly: ReassemblySettings | None = None
    enricher: Any = None  # voiplog.enrich.Enricher, with an [enrichment] section
    radius_ports: tuple[int, ...] = ()
    hep: Any = None  # voiplog.packet.hep.HepSettings; None: the defaults


def load_pipeline_options(config_path: str | None) -> PipelineOptions:
    """Settings from the config file and VOIPLOG_* variables; exit 2 when invalid.

    With neither a file nor a variable there is nothing to validate, and the
    defaults are used without loading the validation machinery (a replay of a
    small capture then starts in a fraction of the time).
    """
    if config_path is None and not any(k.startswith("VOIPLOG_") for k in os.environ):
        return PipelineOptions()
    from voiplog.config import ConfigError, load_config

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    networks = cfg.subscriber_index()
    enricher = None
    if cfg.enrichment is not None:
        enricher = load_enricher(cfg, networks)
    return PipelineOptions(
        sip_ports=tuple(cfg.sip.ports),
        call_settings=cfg.calls.settings(),
        classify=networks.classify if networks else None,
        flow_settings=cfg.media_sessions.settings(),
        reassembly=cfg.reassembly.settings(),
        enricher=enricher,
        radius_ports=tuple(cfg.enrichment.radius_ports) if enricher is not None else (),
        hep=cfg.hep.settings(),
    )


def load_enricher(cfg, networks):
    """The enricher of a loaded config's [enrichment] section; exit 2 naming a bad source."""
    from voiplog.wiring import WiringError, build_enricher

    try:
        return build_enricher(cfg, networks)
    except WiringError as exc:
        click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(2) from None
