"""Write pcap and pcapng capture files for tests, with control over every byte.

Timestamps are given in one of two forms:

* an ``int``: microseconds since the Unix epoch;
* a ``Decimal`` or ``Fraction``: seconds since the epoch, exact (use this for
  nanosecond or binary resolutions, e.g. ``Decimal("1700000000.123456789")``).

Each is floored to the file's resolution, as a capture tool would.

pcap::

    write_pcap(path, [(ts, frame), ...], linktype=1, nanosecond=False, big_endian=False)

A packet may also be ``(ts, frame, orig_len)`` to record an original length larger than
the frame (a snaplen-truncated capture). `pcap_bytes` builds the same file in memory.

pcapng::

    write_pcapng(
        path,
        interfaces=[(1, None), (101, 9)],         # (linktype, if_tsresol or None)
        packets=[(0, ts, frame), (1, ts, frame)], # (interface index, ts, frame)
        block="epb",                              # or "spb" / "opb"
    )

An interface may be an `Interface` for an ``if_tsoffset`` or a snaplen; a packet may be
``(if_index, ts, frame, orig_len)``. Simple packet blocks carry no timestamp and always
belong to interface 0. `pcapng_section` builds one section in memory, so a test can
join sections of different byte orders or insert other blocks made by `pcapng_block`.

Both writers return the byte offset of every record (pcap record header or pcapng
packet block) in the file, so that tests can damage a chosen one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

__all__ = [
    "BLOCK_CUSTOM",
    "BLOCK_DSB",
    "BLOCK_EPB",
    "BLOCK_IDB",
    "BLOCK_ISB",
    "BLOCK_NRB",
    "BLOCK_OPB",
    "BLOCK_SHB",
    "BLOCK_SPB",
    "Interface",
    "pcap_bytes",
    "pcapng_block",
    "pcapng_section",
    "write_pcap",
    "write_pcapng",
]

Timestamp = int | Decimal | Fraction

BLOCK_SHB = 0x0A0D0D0A
BLOCK_IDB = 0x00000001
BLOCK_OPB = 0x00000002
BLOCK_SPB = 0x00000003
BLOCK_NRB = 0x00000004
BLOCK_ISB = 0x00000005
BLOCK_EPB = 0x00000006
BLOCK_DSB = 0x0000000A
BLOCK_CUSTOM = 0x00000BAD

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D


@dataclass(frozen=True, slots=True)
class Interface:
    """A pcapng interface description."""

    linktype: int
    tsresol: int | None = None
    """Raw ``if_tsresol`` byte: n for 10**-n s, 0x80 | n for 2**-n s; None: omitted (10**-6)."""
    tsoffset: int | None = None
    """``if_tsoffset`` in seconds, added to every timestamp; None: omitted."""
    snaplen: int = 0
    """0 means no limit."""

    @property
    def ticks_per_second(self) -> int:
        if self.tsresol is None:
            return 1_000_000
        if self.tsresol & 0x80:
            return 1 << (self.tsresol & 0x7F)
        return 10**self.tsresol


def _seconds(ts: Timestamp) -> Fraction:
    if isinstance(ts, int):
        return Fraction(ts, 1_000_000)
    return Fraction(ts)


def _ticks(ts: Timestamp, per_second: int) -> int:
    return int((_seconds(ts) * per_second) // 1)


# --- pcap ---------------------------------------------------------------------------


def pcap_bytes(
    packets: Iterable[tuple],
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A whole pcap file; see the module docstring for ``packets``."""
    return _pcap(packets, linktype, nanosecond, big_endian, snaplen)[0]


def write_pcap(
    path: str | os.PathLike[str],
    packets: Iterable[tuple],
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> list[int]:
    """Write a pcap file; returns the byte offset of each record header."""
    data, offsets = _pcap(packets, linktype, nanosecond, big_endian, snaplen)
    with open(path, "wb") as file:
        file.write(data)
    return offsets


def _pcap(packets, linktype, nanosecond, big_endian, snaplen) -> tuple[bytes, list[int]]:
    order = ">" if big_endian else "<"
    magic = _PCAP_MAGIC_NS if nanosecond else _PCAP_MAGIC_US
    per_second = 1_000_000_000 if nanosecond else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    offsets = []
    pos = 24
    for packet in packets:
        ts, frame = packet[0], bytes(packet[1])
        orig_len = packet[2] if len(packet) > 2 else len(frame)
        sec, frac = divmod(_ticks(ts, per_second), per_second)
        out.append(struct.pack(order + "IIII", sec, frac, len(frame), orig_len))
        out.append(frame)
        offsets.append(pos)
        pos += 16 + len(frame)
    return b"".join(out), offsets


# --- pcapng -------------------------------------------------------------------------


def pcapng_block(block_type: int, body: bytes, big_endian: bool = False) -> bytes:
    """One pcapng block: type, total length, body padded to 4 bytes, total length."""
    order = ">" if big_endian else "<"
    body = body + b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _option(code: int, value: bytes, order: str) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _shb(order: str) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)
    return pcapng_block(BLOCK_SHB, body, order == ">")


def _idb(interface: Interface, order: str) -> bytes:
    body = struct.pack(order + "HHI", interface.linktype, 0, interface.snaplen)
    options = b""
    if interface.tsresol is not None:
        options += _option(9, bytes([interface.tsresol]), order)
    if interface.tsoffset is not None:
        options += _option(14, struct.pack(order + "q", interface.tsoffset), order)
    if options:
        options += _option(0, b"", order)
    return pcapng_block(BLOCK_IDB, body + options, order == ">")


def _interface(spec: Interface | Sequence) -> Interface:
    if isinstance(spec, Interface):
        return spec
    return Interface(*spec)


def pcapng_section(
    interfaces: Sequence[Interface | Sequence],
    packets: Iterable[tuple],
    block: str = "epb",
    big_endian: bool = False,
) -> bytes:
    """One section: header, interface descriptions, then one block per packet."""
    return _section(interfaces, packets, block, big_endian)[0]


def write_pcapng(
    path: str | os.PathLike[str],
    interfaces: Sequence[Interface | Sequence],
    packets: Iterable[tuple],
    block: str = "epb",
    big_endian: bool = False,
) -> list[int]:
    """Write a one-section pcapng file; returns the byte offset of each packet block."""
    data, offsets = _section(interfaces, packets, block, big_endian)
    with open(path, "wb") as file:
        file.write(data)
    return offsets


def _section(interfaces, packets, block, big_endian) -> tuple[bytes, list[int]]:
    if block not in ("epb", "spb", "opb"):
        raise ValueError(f"block must be 'epb', 'spb' or 'opb', not {block!r}")
    order = ">" if big_endian else "<"
    described = [_interface(spec) for spec in interfaces]
    out = [_shb(order)] + [_idb(interface, order) for interface in described]
    pos = sum(len(part) for part in out)
    offsets = []
    for packet in packets:
        if_index, ts, frame = packet[0], packet[1], bytes(packet[2])
        orig_len = packet[3] if len(packet) > 3 else len(frame)
        if block == "spb":
            if if_index != 0:
                raise ValueError("simple packet blocks always belong to interface 0")
            data = pcapng_block(BLOCK_SPB, struct.pack(order + "I", orig_len) + frame, big_endian)
        else:
            ticks = _ticks(ts, described[if_index].ticks_per_second)
            high, low = ticks >> 32, ticks & 0xFFFFFFFF
            if block == "epb":
                head = struct.pack(order + "IIIII", if_index, high, low, len(frame), orig_len)
                data = pcapng_block(BLOCK_EPB, head + frame, big_endian)
            else:
                head = struct.pack(order + "HHIIII", if_index, 0, high, low, len(frame), orig_len)
                data = pcapng_block(BLOCK_OPB, head + frame, big_endian)
        out.append(data)
        offsets.append(pos)
        pos += len(data)
    return b"".join(out), offsets
