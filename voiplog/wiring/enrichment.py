"""The enricher of a POP config: reading lease, port-block and MaxMind files.

The enrichment tables are sans-IO; this is where their sources are read. A
lease or port-block file that is missing or wrong is a configuration error
naming the file (and line); a MaxMind database that is missing only leaves the
far end unknown, with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from voiplog.enrich import (
    CgnatIndex,
    Enricher,
    LeaseIndex,
    RadiusSessions,
    RemoteLookup,
    SourceError,
    SubscriberNetworks,
    read_cgnat_csv,
    read_ipfix_nat_events,
    read_lease_rows,
)
from voiplog.enrich.cgnat import load_nat_events
from voiplog.errors import ParseError, UsageError

log = logging.getLogger("voiplog.enrich")

DATABASE_URL_VARIABLE = "VOIPLOG_DATABASE_URL"


class EnrichmentSourceError(UsageError):
    """A configured enrichment source that cannot be read."""


class DatabaseUnreachable(EnrichmentSourceError):
    """The database holding imported leases cannot be reached: a runtime failure."""


def lease_format(path: str) -> str:
    """csv or jsonl, from a lease file's name."""
    return "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"


def read_lease_file(path: str, fmt: str | None = None) -> Iterator:
    """The LeaseRows of a lease file; EnrichmentSourceError names the file and line."""
    try:
        with open(path, encoding="utf-8", newline="") as lines:
            yield from read_lease_rows(lines, path, fmt or lease_format(path))
    except SourceError as exc:
        raise EnrichmentSourceError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise EnrichmentSourceError(f"{path}: not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise EnrichmentSourceError(f"{path}: cannot read: {exc.strerror}") from None


def cgnat_format(path: str) -> str:
    return "csv" if Path(path).suffix.lower() == ".csv" else "ipfix"


def read_port_blocks(path: str, fmt: str | None = None) -> Iterator:
    """(PortBlock, where) of a CSV file (where: ":LINE") or of an IPFIX NAT event log
    (allocations matched with their releases; where: "")."""
    fmt = fmt or cgnat_format(path)
    try:
        if fmt == "csv":
            with open(path, encoding="utf-8", newline="") as lines:
                for block, line in read_cgnat_csv(lines, path):
                    yield block, f":{line}"
            return
        data = Path(path).read_bytes()
        index = CgnatIndex()
        _, unmatched = load_nat_events(index, read_ipfix_nat_events(data, path))
        if unmatched:
            log.warning("%s: %d port-block releases without their allocation", path, unmatched)
        index.finish()
        for block in index.blocks():
            yield block, ""
    except (SourceError, ParseError) as exc:
        raise EnrichmentSourceError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise EnrichmentSourceError(f"{path}: not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise EnrichmentSourceError(f"{path}: cannot read: {exc.strerror}") from None


def open_maxmind(paths: list[str]) -> list:
    readers = []
    for path in paths:
        if not os.path.exists(path):
            log.warning("%s: no such MaxMind database; far ends stay unknown", path)
            continue
        import maxminddb

        try:
            readers.append(maxminddb.open_database(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise EnrichmentSourceError(f"{path}: not a MaxMind database: {exc}") from None
    return readers


def build_enricher(config, networks: SubscriberNetworks | None = None) -> Enricher:
    """The Enricher of a PopConfig's [enrichment] section (which must be present)."""
    section = config.enrichment
    leases = LeaseIndex()
    for path in section.lease_files:
        leases.load(read_lease_file(path))
    cgnat = None
    if section.cgnat_files:
        cgnat = CgnatIndex()
        for path in section.cgnat_files:
            for block, _ in read_port_blocks(path):
                cgnat.add(block)
    if section.leases_from_database:
        from voiplog.errors import UsageError
        from voiplog.store.database import resolve_dsn

        try:
            dsn = resolve_dsn(config.store.database_url)
        except UsageError as exc:
            raise EnrichmentSourceError(str(exc)) from None
        if not dsn:
            raise EnrichmentSourceError(
                "enrichment.leases_from_database: no database: set store.database_url or "
                f"{DATABASE_URL_VARIABLE} (leases are not read from the embedded store)"
            )
        if cgnat is None:
            cgnat = CgnatIndex()
        load_from_database(dsn, leases, cgnat)
        if not len(cgnat):
            cgnat = None
    enricher = Enricher(
        leases=leases,
        cgnat=cgnat,
        remote=RemoteLookup(open_maxmind(section.maxmind_databases)),
        networks=networks,
    )
    secrets = None
    if section.radius_clients:
        secrets = {
            c.address: (c.secret.get_secret_value().encode() if c.secret is not None else None)
            for c in section.radius_clients
        }
    if section.radius_ports:
        enricher.radius = RadiusSessions(
            leases,
            session_timeout_s=section.radius_session_timeout_s,
            max_sessions=section.radius_max_sessions,
            secrets=secrets,
            on_weird=enricher._count,
        )
    return enricher


def load_from_database(dsn: str, leases: LeaseIndex, cgnat: CgnatIndex | None) -> None:
    import psycopg2

    from voiplog.store.leases import load_leases, load_port_blocks

    try:
        conn = psycopg2.connect(dsn)
    except psycopg2.Error as exc:
        raise DatabaseUnreachable(f"database: cannot connect: {exc}".strip()) from None
    try:
        load_leases(conn, leases)
        if cgnat is not None:
            load_port_blocks(conn, cgnat)
    except psycopg2.Error as exc:
        raise EnrichmentSourceError(f"database: cannot read leases: {exc}".strip()) from None
    finally:
        conn.close()
