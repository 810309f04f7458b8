"""`voiplog lookup --ip ADDR [--port P] --at TIME`: how an address resolves at a moment."""

from __future__ import annotations

import json

import click

from voiplog.cli._time import moment_us


@click.command()
@click.option("--ip", "ip", required=True, help="Address seen (the public one behind CGNAT).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port seen, for CGNAT port blocks.")
@click.option(
    "--at",
    "at",
    required=True,
    help="Moment, ISO 8601 with a zone (2024-05-01T10:00:00Z, 2024-05-01T12:00:00+02:00), "
    "or a date (00:00 UTC).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="POP config file (TOML): subscriber networks and its [enrichment] sources.",
)
@click.option(
    "--dsn",
    metavar="URL",
    help="Also search the leases and port blocks imported into this Postgres database; "
    "default: the POP config's store (store.database_url), else $VOIPLOG_DATABASE_URL, "
    "else the embedded store when there is one.",
)
def lookup(ip: str, port: int | None, at: str, config_path: str | None, dsn: str | None) -> None:
    """Show which subscriber held IP (and PORT, behind CGNAT) at the moment AT.

    Prints one JSON object: the port block and private address (behind CGNAT),
    the lease found (network, validity, subscriber, account, access line,
    source), the subscriber object a call record would carry, and the far-end
    fields of the address. Validity is half-open: at the very moment a lease
    ends, it no longer holds. Exit code 1 when no lease is found (said on
    standard error), 2 when no lease source is given at all.
    """

    from voiplog.config import ConfigError, load_config
    from voiplog.enrich import CgnatIndex, Enricher, parse_address
    from voiplog.wiring import WiringError, build_enricher, subscriber_networks
    from voiplog.wiring.enrichment import (
        DatabaseUnreachable,
        EnrichmentSourceError,
        load_from_database,
    )

    at_us = moment_us(at, "--at")
    try:
        parse_address(ip)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ip") from None
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    networks = subscriber_networks(cfg)
    if cfg.enrichment is not None:
        try:
            enricher = build_enricher(cfg, networks)
        except WiringError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(2) from None
    else:
        enricher = Enricher(networks=networks)
    from voiplog.errors import UsageError
    from voiplog.store.database import check_dsn, resolve_dsn

    try:
        dsn = check_dsn(dsn, "--dsn") if dsn else resolve_dsn(cfg.store.database_url)
    except UsageError as exc:
        click.echo(f"voiplog: {exc}", err=True)
        raise SystemExit(2) from None
    embedded = dsn is None and _embedded_store_exists()
    if cfg.enrichment is None and not dsn and not embedded:
        # Without a source every address would read as held by nobody.
        click.echo(
            "voiplog: lookup: no lease source: give --config with an [enrichment] section "
            "(lease files, RADIUS) or a store (store.database_url), or --dsn (or "
            "VOIPLOG_DATABASE_URL) for the leases imported with `voiplog leases import`",
            err=True,
        )
        raise SystemExit(2)
    if dsn or embedded:
        if enricher.cgnat is None:
            enricher.cgnat = CgnatIndex()
        try:
            if dsn:
                load_from_database(dsn, enricher.leases, enricher.cgnat)
            else:
                from voiplog.cli._store import open_store

                with open_store(config_path) as store:
                    load_from_database(store.dsn, enricher.leases, enricher.cgnat)
        except DatabaseUnreachable as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(1) from None  # as every command that cannot reach the store
        except EnrichmentSourceError as exc:
            click.echo(f"voiplog: {exc}", err=True)
            raise SystemExit(2) from None
    resolution = enricher.resolve(ip, port, at_us)
    lease = resolution.lease
    address = resolution.private_ip or ip
    subscriber = None
    if lease is not None:
        found = networks.lookup(ip)
        subscriber = {
            "id": lease.subscriber_id,
            "account": lease.account,
            "access_line": lease.access_line,
            "pop": networks.pop,
            "location": (dict(found.location) or None) if found is not None else None,
        }
    out = {
        "ip": ip,
        "port": port,
        "at": at,
        "cgnat_block": resolution.block.to_dict() if resolution.block is not None else None,
        "private_ip": resolution.private_ip,
        "lease": lease.to_dict() if lease is not None else None,
        "subscriber": subscriber,
        "remote": enricher.remote.lookup(address),
    }
    click.echo(json.dumps(out, indent=2))
    if lease is None:
        click.echo(f"voiplog: lookup: no lease holds {ip} at {at} in the sources given", err=True)
        raise SystemExit(1)


def _embedded_store_exists() -> bool:
    """Whether an embedded store was made here before (one is never made for a lookup)."""
    from voiplog.store.embedded import default_data_dir

    return (default_data_dir() / "data" / "PG_VERSION").is_file()
