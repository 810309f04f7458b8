"""Lease history and CGNAT port blocks in Postgres: tables, imports, and loading the indexes.

The tables are made by the store's migrations (0002). `lease` holds who held
which address or prefix when (cidr plus tstzrange); its exclusion constraint
refuses two leases of overlapping networks at overlapping times. `cgnat_block` holds port blocks (public inet, int4range of ports,
private inet, tstzrange), refusing overlapping blocks of one public address.
Ranges are half-open in time, `[start, end)`, with no upper bound for a lease
still held; port ranges are stored canonical, `[first, last + 1)`.

Importing merges rather than duplicates: a row that touches or overlaps a
stored lease of the same network and the same owner (a renewal) extends it;
a row that overlaps another owner's lease is a conflict, reported with its
file and line and not imported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg2.extras

from voiplog.enrich import (
    CgnatIndex,
    LeaseIndex,
    LeaseRow,
    Owner,
    PortBlock,
    format_time,
    parse_address,
    parse_network,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _moment(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _us(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class ImportResult:
    """What an import did; `conflicts` are "file:line: reason" lines."""

    inserted: int = 0
    merged: int = 0  # rows that extended a stored lease of the same owner
    conflicts: list[str] = field(default_factory=list)


def import_leases(conn, rows: Iterable[LeaseRow]) -> ImportResult:
    """Import lease rows in one transaction; conflicting rows are reported, the rest kept.

    Importers are serialised by a table lock, so that two of them cannot
    both decide that a lease is free.
    """
    result = ImportResult()
    with conn, conn.cursor() as cur:
        cur.execute("LOCK TABLE lease IN SHARE ROW EXCLUSIVE MODE")
        for row in rows:
            _import_lease(cur, row, result)
    return result


def _import_lease(cur, row: LeaseRow, result: ImportResult) -> None:
    network = row.network_text
    if "/" not in network:
        network += "/32" if row.network[0] == 4 else "/128"
    start, end = _moment(row.start_us), _moment(row.end_us)
    cur.execute(
        """
        SELECT id, network::text, subscriber_id, account, access_line,
               lower(valid), upper(valid), valid && tstzrange(%(start)s, %(end)s, '[)')
        FROM lease
        WHERE network && %(network)s::cidr
          AND (valid && tstzrange(%(start)s, %(end)s, '[)')
               OR valid -|- tstzrange(%(start)s, %(end)s, '[)'))
        FOR UPDATE
        """,
        {"network": network, "start": start, "end": end},
    )
    same, others = [], []
    owner = row.owner
    for lease_id, net, sub, account, line, lo, hi, overlaps in cur.fetchall():
        if net == network and Owner(sub, account, line) == owner:
            same.append((lease_id, lo, hi))
        elif overlaps:
            others.append((net, sub, lo, hi))
    if others:
        net, sub, lo, hi = others[0]
        result.conflicts.append(
            f"{row.source}:{row.line}: {row.network_text} of {owner.subscriber_id} from "
            f"{format_time(row.start_us)} to {format_time(row.end_us) or 'open end'} overlaps "
            f"the lease of {net} held by {sub} from {format_time(_us(lo))} to "
            f"{format_time(_us(hi)) or 'open end'}"
        )
        return
    if same:
        # A renewal: one lease from the earliest start to the latest end (None: open).
        start = min([start, *(lo for _, lo, _ in same)])
        ends = [end, *(hi for _, _, hi in same)]
        end = None if None in ends else max(ends)
        cur.execute("DELETE FROM lease WHERE id = ANY(%s)", ([i for i, _, _ in same],))
        result.merged += 1
    else:
        result.inserted += 1
    cur.execute(
        """
        INSERT INTO lease (network, valid, subscriber_id, account, access_line, source, attributes)
        VALUES (%s::cidr, tstzrange(%s, %s, '[)'), %s, %s, %s, %s, %s)
        """,
        (
            network,
            start,
            end,
            owner.subscriber_id,
            owner.account,
            owner.access_line,
            row.source,
            psycopg2.extras.Json(row.attributes),
        ),
    )


def import_port_blocks(conn, blocks: Iterable[tuple[PortBlock, str]]) -> ImportResult:
    """Import (port block, where) pairs, where ":LINE" or ""; same rules as `import_leases`."""
    result = ImportResult()
    with conn, conn.cursor() as cur:
        cur.execute("LOCK TABLE cgnat_block IN SHARE ROW EXCLUSIVE MODE")
        for block, where in blocks:
            _import_block(cur, block, where, result)
    return result


def _import_block(cur, block: PortBlock, where: str, result: ImportResult) -> None:
    start, end = _moment(block.start_us), _moment(block.end_us)
    params = {
        "public": block.public_ip,
        "lo": block.port_start,
        "hi": block.port_end,
        "start": start,
        "end": end,
    }
    cur.execute(
        """
        SELECT id, host(private_ip), lower(port), upper(port) - 1, lower(valid), upper(valid),
               valid && tstzrange(%(start)s, %(end)s, '[)')
        FROM cgnat_block
        WHERE public_ip = %(public)s::inet AND port && int4range(%(lo)s, %(hi)s, '[]')
          AND (valid && tstzrange(%(start)s, %(end)s, '[)')
               OR valid -|- tstzrange(%(start)s, %(end)s, '[)'))
        FOR UPDATE
        """,
        params,
    )
    same, others = [], []
    for block_id, private, lo, hi, vlo, vhi, overlaps in cur.fetchall():
        if (private, lo, hi) == (block.private_ip, block.port_start, block.port_end):
            same.append((block_id, vlo, vhi))
        elif overlaps:
            others.append((private, lo, hi, vlo, vhi))
    if others:
        private, lo, hi, vlo, vhi = others[0]
        result.conflicts.append(
            f"{block.source}{where}: {block.public_ip} ports {block.port_start}-{block.port_end}"
            f" for {block.private_ip} overlaps ports {lo}-{hi} held by {private} from "
            f"{format_time(_us(vlo))} to {format_time(_us(vhi)) or 'open end'}"
        )
        return
    if same:
        start = min([start, *(lo for _, lo, _ in same)])
        ends = [end, *(hi for _, _, hi in same)]
        end = None if None in ends else max(ends)
        cur.execute("DELETE FROM cgnat_block WHERE id = ANY(%s)", ([i for i, _, _ in same],))
        result.merged += 1
    else:
        result.inserted += 1
    cur.execute(
        """
        INSERT INTO cgnat_block (public_ip, port, private_ip, valid, source)
        VALUES (%s::inet, int4range(%s, %s, '[]'), %s::inet, tstzrange(%s, %s, '[)'), %s)
        """,
        (
            block.public_ip,
            block.port_start,
            block.port_end,
            block.private_ip,
            start,
            end,
            block.source,
        ),
    )


def load_leases(conn, index: LeaseIndex) -> int:
    """Add every stored lease to `index`; returns how many. Streams with a server-side cursor."""

    def rows():
        with conn.cursor(name="voiplog_load_leases") as cur:
            cur.itersize = 50_000
            cur.execute(
                "SELECT network::text, lower(valid), upper(valid), subscriber_id, account,"
                " access_line, source FROM lease"
            )
            for network, lo, hi, sub, account, line, source in cur:
                yield parse_network(network), _us(lo), _us(hi), Owner(sub, account, line), source

    with conn:
        return index.load(rows())


def load_port_blocks(conn, index: CgnatIndex) -> int:
    """Add every stored port block to `index`; returns how many."""
    count = 0
    with conn, conn.cursor(name="voiplog_load_blocks") as cur:
        cur.itersize = 50_000
        cur.execute(
            "SELECT host(public_ip), lower(port), upper(port) - 1, host(private_ip),"
            " lower(valid), upper(valid), source FROM cgnat_block"
        )
        for public, lo, hi, private, vlo, vhi, source in cur:
            index.add(
                PortBlock(
                    *parse_address(public),
                    lo,
                    hi,
                    *parse_address(private),
                    _us(vlo),
                    _us(vhi),
                    source,
                )
            )
            count += 1
    return count
