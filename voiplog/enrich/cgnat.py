"""Carrier-grade NAT: which private address held a public address and port at a time.

Strategy. A port block is (public address, first port, last port, private
address, validity interval). Ports are inclusive at both ends, as CGNAT logs
and RFC 8158 write them (portRangeStart, portRangeEnd); times are half-open
[start, end), as leases are. Blocks are kept per public address sorted by
first port; a lookup bisects to the blocks starting at or below the port and
walks back no further than the widest block of that address could reach.
Where two blocks match (a conflict in the source), the later start wins.

Sources: CSV files (public_ip, port_start, port_end, private_ip, start, end)
and IPFIX NAT event logs (RFC 7011 messages, RFC 8158 port-block allocation
and de-allocation events), read here from bytes; reading files is the caller's.
"""

from __future__ import annotations

import csv
import struct
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from voiplog.enrich._address import format_network, parse_address
from voiplog.enrich._errors import IpfixParseError, SourceError
from voiplog.enrich._time import FOREVER, format_time, parse_time


class PortBlock(NamedTuple):
    public_version: int
    public_value: int
    port_start: int
    port_end: int  # inclusive
    private_version: int
    private_value: int
    start_us: int
    end_us: int | None  # None: still allocated
    source: str | None = None

    @property
    def public_ip(self) -> str:
        return format_network(
            self.public_version, 32 if self.public_version == 4 else 128, self.public_value
        )

    @property
    def private_ip(self) -> str:
        return format_network(
            self.private_version, 32 if self.private_version == 4 else 128, self.private_value
        )

    def to_dict(self) -> dict:
        return {
            "public_ip": self.public_ip,
            "port_start": self.port_start,
            "port_end": self.port_end,
            "private_ip": self.private_ip,
            "start": format_time(self.start_us),
            "end": format_time(self.end_us),
            "source": self.source,
        }


class CgnatIndex:
    """Port blocks by public address; `lookup(public_ip, port, t)` gives the one in use."""

    def __init__(self) -> None:
        # (version, public value) -> (first ports, blocks) sorted by first port, widest block
        self._blocks: dict[tuple[int, int], tuple[list[int], list[PortBlock], list[int]]] = {}
        # Allocations of an event log not yet released: block identity -> block
        self._open: dict[tuple, PortBlock] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, block: PortBlock) -> None:
        if not 0 <= block.port_start <= block.port_end <= 65535:
            raise ValueError(
                f"port range {block.port_start}-{block.port_end} is not within 0..65535"
            )
        if block.end_us is not None and block.end_us <= block.start_us:
            raise ValueError("a port block must end after it starts")
        firsts, blocks, widest = self._blocks.setdefault(
            (block.public_version, block.public_value), ([], [], [0])
        )
        i = bisect_right(firsts, block.port_start)
        firsts.insert(i, block.port_start)
        blocks.insert(i, block)
        widest[0] = max(widest[0], block.port_end - block.port_start)
        self._size += 1

    def allocate(self, block: PortBlock) -> None:
        """An allocation event: the block is in use from its start until released."""
        identity = block[:6]
        previous = self._open.pop(identity, None)
        if previous is not None:
            self.add(previous._replace(end_us=block.start_us))  # allocated again: the first ended
        self._open[identity] = block._replace(end_us=None)

    def release(self, block: PortBlock, at_us: int) -> bool:
        """A de-allocation event; False when its allocation was never seen."""
        opened = self._open.pop(block[:6], None)
        if opened is None or at_us <= opened.start_us:
            return False
        self.add(opened._replace(end_us=at_us))
        return True

    def finish(self) -> None:
        """Blocks still allocated at the end of the logs stay in use (open-ended)."""
        for block in self._open.values():
            self.add(block)
        self._open.clear()

    def blocks(self) -> Iterator[PortBlock]:
        """Every block held, by public address and first port."""
        for _firsts, blocks, _widest in self._blocks.values():
            yield from blocks

    def lookup(self, public_ip: str, port: int, at_us: int) -> PortBlock | None:
        version, value = parse_address(public_ip)
        entry = self._blocks.get((version, value))
        if entry is None:
            return None
        firsts, blocks, widest = entry
        best = None
        i = bisect_right(firsts, port) - 1
        reach = port - widest[0]
        while i >= 0 and firsts[i] >= reach:
            block = blocks[i]
            end = FOREVER if block.end_us is None else block.end_us
            if (
                port <= block.port_end
                and block.start_us <= at_us < end
                and (best is None or block.start_us > best.start_us)
            ):
                best = block
            i -= 1
        if best is None:
            for block in self._open.values():  # allocations of a log still being read
                if (
                    (block.public_version, block.public_value) == (version, value)
                    and block.port_start <= port <= block.port_end
                    and block.start_us <= at_us
                ):
                    return block
        return best


# -- CSV -----------------------------------------------------------------------

CGNAT_FIELDS = ("public_ip", "port_start", "port_end", "private_ip", "start", "end")


def read_cgnat_csv(lines: Iterable[str], source: str) -> Iterator[tuple[PortBlock, int]]:
    """(port block, line number) of a CSV file with a header line (see CGNAT_FIELDS).

    SourceError names the file and line of a row that cannot be used.
    """
    reader = csv.reader(lines)
    header = None
    for row in reader:
        line = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
            continue
        if header is None:
            header = [h.strip().lower() for h in row]
            missing = set(CGNAT_FIELDS) - {"end"} - set(header)
            if missing:
                raise SourceError(source, line, f"header lacks {', '.join(sorted(missing))}")
            continue
        if len(row) != len(header):
            raise SourceError(source, line, f"{len(row)} fields where the header has {len(header)}")
        fields = dict(zip(header, (v.strip() for v in row), strict=True))
        yield _csv_block(fields, source, line), line
    if header is None:
        raise SourceError(source, 1, "empty file: no header line")


def _csv_block(fields: dict[str, str], source: str, line: int) -> PortBlock:
    addresses = []
    for key in ("public_ip", "private_ip"):
        try:
            addresses.append(parse_address(fields[key]))
        except ValueError:
            raise SourceError(source, line, f"{key}: {fields[key]!r} is not an address") from None
    ports = []
    for key in ("port_start", "port_end"):
        try:
            port = int(fields[key])
        except ValueError:
            raise SourceError(source, line, f"{key}: {fields[key]!r} is not a port") from None
        if not 0 <= port <= 65535:
            raise SourceError(source, line, f"{key}: {port} is outside 0..65535")
        ports.append(port)
    if ports[0] > ports[1]:
        raise SourceError(source, line, "port_end is below port_start")
    times = []
    for key in ("start", "end"):
        text = fields.get(key, "")
        if not text:
            if key == "start":
                raise SourceError(source, line, "start: empty")
            times.append(None)
            continue
        try:
            times.append(parse_time(text))
        except ValueError as exc:
            raise SourceError(source, line, f"{key}: {exc}") from None
    if times[1] is not None and times[1] <= times[0]:
        raise SourceError(source, line, "end is not after start")
    (pub_v, pub), (priv_v, priv) = addresses
    return PortBlock(pub_v, pub, ports[0], ports[1], priv_v, priv, times[0], times[1], source)


# -- IPFIX NAT event logs (RFC 7011, RFC 8158) ---------------------------------

NAT_EVENT_PORT_BLOCK_ALLOCATION = 16
NAT_EVENT_PORT_BLOCK_DEALLOCATION = 17

# Information elements read (IANA IPFIX registry).
_IE_SOURCE_IPV4 = 8
_IE_SOURCE_IPV6 = 27
_IE_POST_NAT_SOURCE_IPV4 = 225
_IE_POST_NAT_SOURCE_IPV6 = 281
_IE_NAT_EVENT = 230
_IE_OBSERVATION_TIME_S = 322
_IE_OBSERVATION_TIME_MS = 323
_IE_PORT_RANGE_START = 361
_IE_PORT_RANGE_END = 362
_IE_PORT_RANGE_STEP = 363
_IE_PORT_RANGE_PORTS = 364

_MESSAGE_HEADER = struct.Struct("!HHIII")
_SET_HEADER = struct.Struct("!HH")
_TEMPLATE_HEADER = struct.Struct("!HH")
_FIELD = struct.Struct("!HH")


@dataclass(frozen=True, slots=True)
class NatEvent:
    """One port-block event of an IPFIX NAT log."""

    allocated: bool  # False: de-allocated
    block: PortBlock  # for a de-allocation, start_us is the event's time
    message_offset: int  # byte offset of its IPFIX message in the log


def read_ipfix_nat_events(data: bytes, source: str) -> Iterator[NatEvent]:
    """Port-block events of a log of IPFIX messages, in order.

    Records of other templates and other NAT events are skipped. Raises
    IpfixParseError naming the source and the message's byte offset.
    """
    templates: dict[tuple[int, int], list[tuple[int, int]]] = {}
    offset = 0
    while offset < len(data):
        if len(data) - offset < _MESSAGE_HEADER.size:
            raise IpfixParseError(f"{source}: offset {offset}: truncated IPFIX message header")
        version, length, export_time, _seq, domain = _MESSAGE_HEADER.unpack_from(data, offset)
        if version != 10:
            raise IpfixParseError(f"{source}: offset {offset}: IPFIX version {version}, not 10")
        if length < _MESSAGE_HEADER.size or offset + length > len(data):
            raise IpfixParseError(
                f"{source}: offset {offset}: IPFIX message length {length} is wrong"
            )
        end = offset + length
        position = offset + _MESSAGE_HEADER.size
        while position + _SET_HEADER.size <= end:
            set_id, set_length = _SET_HEADER.unpack_from(data, position)
            if set_length < _SET_HEADER.size or position + set_length > end:
                raise IpfixParseError(
                    f"{source}: offset {offset}: set length {set_length} is wrong"
                )
            body = data[position + _SET_HEADER.size : position + set_length]
            if set_id == 2:
                _read_templates(body, domain, templates, source, offset, options=False)
            elif set_id == 3:
                _read_templates(body, domain, templates, source, offset, options=True)
            elif set_id >= 256:
                fields = templates.get((domain, set_id))
                if fields is not None:
                    for values in _read_records(body, fields, source, offset):
                        event = _nat_event(values, export_time, source, offset)
                        if event is not None:
                            yield event
            position += set_length
        offset = end


def _read_templates(body, domain, templates, source, offset, options) -> None:
    position = 0
    while position + _TEMPLATE_HEADER.size <= len(body):
        template_id, count = _TEMPLATE_HEADER.unpack_from(body, position)
        position += _TEMPLATE_HEADER.size
        if options:
            if position + 2 > len(body):
                raise IpfixParseError(f"{source}: offset {offset}: truncated options template")
            position += 2  # scope field count
        if count == 0:
            templates.pop((domain, template_id), None)  # withdrawal
            continue
        fields = []
        for _ in range(count):
            if position + _FIELD.size > len(body):
                raise IpfixParseError(
                    f"{source}: offset {offset}: truncated template {template_id}"
                )
            element, size = _FIELD.unpack_from(body, position)
            position += _FIELD.size
            if element & 0x8000:
                position += 4  # enterprise number: not an element we read
                element = -1
            fields.append((element, size))
        if template_id >= 256:
            templates[(domain, template_id)] = fields


def _read_records(body, fields, source, offset) -> Iterator[dict[int, bytes]]:
    fixed = sum(size for _, size in fields if size != 0xFFFF)
    position = 0
    while len(body) - position >= max(fixed, 1):
        values = {}
        for element, size in fields:
            if size == 0xFFFF:
                if position >= len(body):
                    raise IpfixParseError(f"{source}: offset {offset}: truncated record")
                size = body[position]
                position += 1
                if size == 255:
                    if position + 2 > len(body):
                        raise IpfixParseError(f"{source}: offset {offset}: truncated record")
                    size = int.from_bytes(body[position : position + 2])
                    position += 2
            if position + size > len(body):
                raise IpfixParseError(f"{source}: offset {offset}: truncated record")
            values[element] = body[position : position + size]
            position += size
        yield values
        if not fixed and position == len(body):
            break


def _nat_event(values: dict[int, bytes], export_time: int, source: str, offset: int):
    event = values.get(_IE_NAT_EVENT)
    if event is None or int.from_bytes(event) not in (
        NAT_EVENT_PORT_BLOCK_ALLOCATION,
        NAT_EVENT_PORT_BLOCK_DEALLOCATION,
    ):
        return None
    if _IE_OBSERVATION_TIME_MS in values:
        at_us = int.from_bytes(values[_IE_OBSERVATION_TIME_MS]) * 1000
    elif _IE_OBSERVATION_TIME_S in values:
        at_us = int.from_bytes(values[_IE_OBSERVATION_TIME_S]) * 1_000_000
    else:
        at_us = export_time * 1_000_000
    public = _address(values, _IE_POST_NAT_SOURCE_IPV4, _IE_POST_NAT_SOURCE_IPV6)
    private = _address(values, _IE_SOURCE_IPV4, _IE_SOURCE_IPV6)
    if public is None or private is None or _IE_PORT_RANGE_START not in values:
        raise IpfixParseError(
            f"{source}: offset {offset}: port-block event without addresses or port range",
            "ipfix.incomplete_event",
        )
    first = int.from_bytes(values[_IE_PORT_RANGE_START])
    if _IE_PORT_RANGE_END in values:
        last = int.from_bytes(values[_IE_PORT_RANGE_END])
    elif _IE_PORT_RANGE_PORTS in values:
        step = int.from_bytes(values.get(_IE_PORT_RANGE_STEP, b"\x01")) or 1
        last = first + (int.from_bytes(values[_IE_PORT_RANGE_PORTS]) - 1) * step
    else:
        raise IpfixParseError(
            f"{source}: offset {offset}: port-block event without an end of range",
            "ipfix.incomplete_event",
        )
    if not 0 <= first <= last <= 65535:
        raise IpfixParseError(f"{source}: offset {offset}: port range {first}-{last} is wrong")
    block = PortBlock(*public, first, last, *private, at_us, None, source)
    return NatEvent(
        int.from_bytes(values[_IE_NAT_EVENT]) == NAT_EVENT_PORT_BLOCK_ALLOCATION, block, offset
    )


def _address(values, v4, v6) -> tuple[int, int] | None:
    if v4 in values and len(values[v4]) == 4:
        return 4, int.from_bytes(values[v4])
    if v6 in values and len(values[v6]) == 16:
        return 6, int.from_bytes(values[v6])
    return None


def load_nat_events(index: CgnatIndex, events: Iterable[NatEvent]) -> tuple[int, int]:
    """Apply events to `index`; returns (allocations, releases without an allocation)."""
    allocations = unmatched = 0
    for event in events:
        if event.allocated:
            index.allocate(event.block)
            allocations += 1
        elif not index.release(event.block, event.block.start_us):
            unmatched += 1
    return allocations, unmatched
