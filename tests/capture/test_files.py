"""Capture file readers: every pcap and pcapng variant, exact times, damaged files."""

from __future__ import annotations

import math
import os
import re
import struct
import threading
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.pcapwriter import (
    BLOCK_CUSTOM,
    BLOCK_DSB,
    BLOCK_ISB,
    BLOCK_NRB,
    Interface,
    pcap_bytes,
    pcapng_block,
    pcapng_section,
    write_pcap,
    write_pcapng,
)
from voiplog.capture import CaptureFileError, CaptureReader, files, open_capture

# Every test on both pcap record loops (see conftest.py).
pytestmark = pytest.mark.usefixtures("pcap_loop")

T0 = 1_700_000_000_000_000  # microseconds, 2023-11-14
FRAMES = [bytes(range(256)) * (n // 256) + bytes(n % 256) for n in (60, 1, 200, 0, 1514)]


def read_all(path, warnings=None):
    with open_capture(path, None if warnings is None else warnings.append) as reader:
        records = list(reader)
    return records, reader


# --- pcap ------------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_variants(tmp_path, big_endian, nanosecond):
    path = tmp_path / "capture.pcap"
    packets = [(T0 + i * 20_000 + i, frame) for i, frame in enumerate(FRAMES)]
    write_pcap(path, packets, linktype=113, nanosecond=nanosecond, big_endian=big_endian)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(ts, 113, frame) for ts, frame in packets]
    assert all(type(frame) is bytes for _, _, frame in records)
    assert reader.format == ("pcap-ns" if nanosecond else "pcap")
    assert reader.size == path.stat().st_size == reader.bytes_read
    assert reader.corrupt_records == 0
    assert warnings == []


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_nanoseconds_floor_to_microseconds(tmp_path, big_endian):
    path = tmp_path / "ns.pcap"
    times = [
        Decimal("1700000000.123456789"),
        Decimal("1700000000.999999999"),
        Decimal("1700000001.000000000"),
        Decimal("0.000000999"),
        Decimal("4294967295.999999999"),  # the last second a pcap can hold
    ]
    write_pcap(path, [(t, b"x") for t in times], nanosecond=True, big_endian=big_endian)
    records, _ = read_all(path)
    assert [ts for ts, _, _ in records] == [
        1700000000123456,
        1700000000999999,
        1700000001000000,
        0,
        4294967295999999,
    ]


def test_pcap_linktype_ignores_fcs_bits(tmp_path):
    path = tmp_path / "fcs.pcap"
    # F bit set, FCS length 2 (16-bit words): frames end with a 4-byte FCS.
    write_pcap(path, [(T0, b"abcd")], linktype=(2 << 29) | (1 << 28) | 1)
    records, _ = read_all(path)
    assert records == [(T0, 1, b"abcd")]


def test_pcap_header_only_has_no_records(tmp_path):
    path = tmp_path / "none.pcap"
    write_pcap(path, [])
    records, reader = read_all(path)
    assert records == []
    assert reader.bytes_read == reader.size == 24


def test_pcap_snaplen_truncated_frames_keep_captured_bytes(tmp_path):
    path = tmp_path / "snap.pcap"
    write_pcap(path, [(T0, b"\x01" * 96, 1500)], snaplen=96)
    records, reader = read_all(path)
    assert records == [(T0, 1, b"\x01" * 96)]
    assert reader.corrupt_records == 0


def test_pcap_understated_snaplen_is_tolerated(tmp_path):
    # Some writers record snaplen 0 or a snaplen below the frames they store.
    path = tmp_path / "snap0.pcap"
    write_pcap(path, [(T0, b"\x02" * 1514), (T0 + 1, b"\x03" * 9000)], snaplen=0)
    records, reader = read_all(path)
    assert [len(frame) for _, _, frame in records] == [1514, 9000]
    assert reader.corrupt_records == 0


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_truncated_last_record(tmp_path, big_endian):
    path = tmp_path / "cut.pcap"
    offsets = write_pcap(
        path, [(T0 + i, frame) for i, frame in enumerate(FRAMES)], big_endian=big_endian
    )
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    warnings = []
    records, reader = read_all(path, warnings)
    assert [frame for _, _, frame in records] == FRAMES[:-1]
    assert reader.corrupt_records == 1
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: record at byte {offsets[-1]}: truncated")
    assert "stopped" in warnings[0]
    assert reader.bytes_read == reader.size


def test_pcap_file_cut_inside_record_header(tmp_path):
    path = tmp_path / "cut.pcap"
    offsets = write_pcap(path, [(T0, b"a" * 10), (T0 + 1, b"b" * 10)])
    path.write_bytes(path.read_bytes()[: offsets[1] + 7])
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0, 1, b"a" * 10)]
    assert reader.corrupt_records == 1
    assert warnings == [
        f"{path}: record at byte {offsets[1]}: file ends inside the record header (7 of 16 bytes); stopped"
    ]


def _damage_caplen(path: Path, offset: int, caplen: int, big_endian: bool = False) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(">I" if big_endian else "<I", data, offset + 8, caplen)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("bad_caplen", [99_999_999, 5000])
def test_pcap_corrupt_header_in_the_middle_resynchronises(tmp_path, big_endian, bad_caplen):
    path = tmp_path / "capture.pcap"
    packets = [(T0 + i * 20_000, bytes([i]) * (50 + i)) for i in range(20)]
    offsets = write_pcap(path, packets, big_endian=big_endian)
    _damage_caplen(path, offsets[7], bad_caplen, big_endian)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(ts, 1, frame) for ts, frame in packets[:7] + packets[8:]]
    assert reader.corrupt_records == 1
    assert len(warnings) == 1
    assert warnings[0].startswith(
        f"{path}: record at byte {offsets[7]}: captured length {bad_caplen}"
    )
    assert f"to byte {offsets[8]}" in warnings[0]


def test_pcap_corrupt_message_names_snaplen(tmp_path):
    path = tmp_path / "capture.pcap"
    offsets = write_pcap(path, [(T0, b"a"), (T0 + 1, b"b"), (T0 + 2, b"c")], snaplen=65535)
    _damage_caplen(path, offsets[1], 999_999)
    warnings = []
    read_all(path, warnings)
    assert (
        f"record at byte {offsets[1]}: captured length 999999 exceeds snaplen 262144" in warnings[0]
    )


def test_pcap_corrupt_first_record_resynchronises_without_reference_time(tmp_path):
    path = tmp_path / "capture.pcap"
    packets = [(T0 + i, bytes([i]) * 40) for i in range(5)]
    offsets = write_pcap(path, packets)
    _damage_caplen(path, offsets[0], 0xFFFFFFFF)
    warnings = []
    records, reader = read_all(path, warnings)
    assert [frame for _, _, frame in records] == [frame for _, frame in packets[1:]]
    assert reader.corrupt_records == 1
    assert f"record at byte {offsets[0]}" in warnings[0]


def test_pcap_garbage_inserted_between_records(tmp_path):
    path = tmp_path / "capture.pcap"
    packets = [(T0 + i * 1000, bytes([i]) * 30) for i in range(6)]
    offsets = write_pcap(path, packets)
    data = path.read_bytes()
    garbage = b"\xff" * 37
    path.write_bytes(data[: offsets[3]] + garbage + data[offsets[3] :])
    warnings = []
    records, reader = read_all(path, warnings)
    assert [frame for _, _, frame in records] == [frame for _, frame in packets]
    assert reader.corrupt_records == 1
    assert warnings == [
        f"{path}: record at byte {offsets[3]}: captured length 4294967295 exceeds snaplen "
        f"262144; skipped 37 bytes to byte {offsets[3] + 37}"
    ]


def test_pcap_corrupt_without_valid_continuation_stops(tmp_path):
    path = tmp_path / "capture.pcap"
    offsets = write_pcap(path, [(T0, b"a" * 20), (T0 + 1, b"b" * 20)])
    data = path.read_bytes()
    path.write_bytes(data[: offsets[1]] + b"\xee" * 200)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0, 1, b"a" * 20)]
    assert reader.corrupt_records == 1
    assert len(warnings) == 1
    assert warnings[0].endswith("stopped")


# --- pcapng ----------------------------------------------------------------------------


def _us(seconds: Fraction) -> int:
    return int((seconds * 1_000_000) // 1)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("block", ["epb", "opb"])
def test_pcapng_interfaces_with_their_own_link_types_and_resolutions(tmp_path, big_endian, block):
    path = tmp_path / "capture.pcapng"
    t = Decimal("1700000000.123456789")
    interfaces = [(1, None), (101, 9), (113, 0x80 | 20), Interface(276, 3, tsoffset=-3600)]
    packets = [
        (0, t, b"eth"),
        (1, t, b"raw"),
        (2, t, b"sll"),
        (3, t, b"sll2"),
        (1, T0 + 1, b"raw2"),
        (0, T0 + 2, b""),
    ]
    write_pcapng(path, interfaces, packets, block=block, big_endian=big_endian)
    records, reader = read_all(path)
    ticks_2_20 = int((Fraction(t) * 2**20) // 1)
    assert records == [
        (1700000000123456, 1, b"eth"),
        (1700000000123456, 101, b"raw"),
        (_us(Fraction(ticks_2_20, 2**20)), 113, b"sll"),
        (1700000000123000 - 3600 * 1_000_000, 276, b"sll2"),
        (T0 + 1, 101, b"raw2"),
        (T0 + 2, 1, b""),
    ]
    assert reader.format == "pcapng"
    assert reader.bytes_read == reader.size
    assert reader.corrupt_records == 0


@pytest.mark.parametrize(
    ("tsresol", "raw_ticks", "expected_us"),
    [
        (6, 1_700_000_000_654_321, 1_700_000_000_654_321),
        (9, 1_700_000_000_654_321_987, 1_700_000_000_654_321),
        (3, 1_700_000_000_654, 1_700_000_000_654_000),
        (0, 1_700_000_000, 1_700_000_000_000_000),
        (12, 1_234_567_890_123_456_789, 1_234_567_890_123),
        (0x80 | 10, 3 * 1024 + 1023, 3_999_023),  # 1023/1024 s = 999023.4 us, floored
        (0x80 | 0, 7, 7_000_000),
    ],
)
def test_pcapng_timestamp_resolutions_are_exact(tmp_path, tsresol, raw_ticks, expected_us):
    path = tmp_path / "res.pcapng"
    ticks_per_second = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
    seconds = Fraction(raw_ticks, ticks_per_second)
    write_pcapng(path, [(1, tsresol)], [(0, seconds, b"x")])
    records, _ = read_all(path)
    assert records == [(expected_us, 1, b"x")]


@pytest.mark.parametrize("block", ["epb", "opb"])
def test_pcapng_times_outside_1970_to_9999_are_reported_and_skipped(tmp_path, block):
    """A wrong if_tsresol or if_tsoffset can put a time beyond what a record can
    carry (or a 64-bit integer hold): such a block is counted and named, and the
    reading goes on; an offset that brings a large time back within them is kept."""
    path = tmp_path / "times.pcapng"
    interfaces = [
        Interface(1, tsresol=0),  # seconds
        Interface(1, tsresol=0, tsoffset=-(2**40)),
        Interface(1, tsresol=9, tsoffset=-(2**33)),
    ]
    last = Fraction(253_402_300_799)  # 9999-12-31 23:59:59, in whole seconds
    packets = [
        (0, Fraction(2**62), b"far"),  # beyond 2**63 us
        (0, Fraction(253_402_300_800), b"year 10000"),
        (0, last, b"last"),
        (1, Fraction(2**40 + 1_700_000_000), b"offset back"),  # product beyond 2**63 too
        (1, Fraction(5), b"before 1970"),
        (2, Fraction(2**33 + 1_700_000_000), b"nanoseconds, offset back"),  # 2**63+ ticks
        (0, Fraction(1_700_000_000), b"after"),
    ]
    write_pcapng(path, interfaces, packets, block=block)
    warnings: list[str] = []
    records, reader = read_all(path, warnings)
    assert records == [
        (253_402_300_799_000_000, 1, b"last"),
        (1_700_000_000_000_000, 1, b"offset back"),
        (1_700_000_000_000_000, 1, b"nanoseconds, offset back"),
        (1_700_000_000_000_000, 1, b"after"),
    ]
    assert reader.corrupt_records == 3
    assert len(warnings) == 3
    assert all("is outside 1970-01-01 to 9999-12-31; skipped" in w for w in warnings)
    assert f"packet time {2**62 * 1_000_000} us" in warnings[0]
    assert "packet time -" in warnings[2]


@settings(max_examples=3000, deadline=None)
@given(
    tsresol=st.one_of(st.integers(0, 19), st.integers(0x80, 0x80 | 63)),
    tsoffset=st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-(10**12), 10**12)),
    high=st.integers(0, 2**32 - 1),
    low=st.integers(0, 2**32 - 1),
)
def test_a_time_whose_high_word_is_under_the_interfaces_bound_is_within_bounds(
    tsresol, tsoffset, high, low
):
    """The reader's shortcut: under `_high_ok`'s word, no exact check is needed."""
    ticks = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
    common = math.gcd(ticks, 1_000_000)
    mul, div = 1_000_000 // common, ticks // common
    bound = files._high_ok(mul, div, tsoffset)
    ts = (high << 32 | low) * mul // div + tsoffset * 1_000_000
    if high <= bound:
        assert 0 <= ts < files.TS_LIMIT_US
    if bound >= 0:  # the bound is tight: one word more can be out of bounds
        assert bound == 0xFFFFFFFF or (
            ((bound + 2 << 32) - 1) * mul // div + tsoffset * 1_000_000 >= files.TS_LIMIT_US
        )


def test_pcapng_simple_packet_blocks(tmp_path):
    path = tmp_path / "spb.pcapng"
    frame = bytes(range(100))
    section = pcapng_section([(1, None)], [(0, T0, b"first")])
    simple = pcapng_block(3, struct.pack("<I", len(frame)) + frame)
    path.write_bytes(section + simple)
    records, reader = read_all(path)
    # No timestamp of its own: it takes the time of the packet before it.
    assert records == [(T0, 1, b"first"), (T0, 1, frame)]
    assert reader.corrupt_records == 0


def test_pcapng_written_with_simple_packet_blocks(tmp_path):
    path = tmp_path / "spb.pcapng"
    write_pcapng(path, [(101, None)], [(0, None, b"one"), (0, None, b"two")], block="spb")
    records, _ = read_all(path)
    assert records == [(0, 101, b"one"), (0, 101, b"two")]


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_simple_packet_captured_length(tmp_path, big_endian):
    order = ">" if big_endian else "<"
    frame = bytes(range(100))
    section = pcapng_section([Interface(1, snaplen=64)], [], big_endian=big_endian)
    blocks = [
        # original length larger than the snaplen: cut to the snaplen
        pcapng_block(3, struct.pack(order + "I", 1500) + frame, big_endian),
        # original length smaller than the block data (padding): cut to the original length
        pcapng_block(3, struct.pack(order + "I", 5) + frame[:8], big_endian),
        # block smaller than both: cut to the block space
        pcapng_block(3, struct.pack(order + "I", 60) + frame[:12], big_endian),
    ]
    path = tmp_path / "spb.pcapng"
    path.write_bytes(section + b"".join(blocks))
    records, _ = read_all(path)
    assert [frame for _, _, frame in records] == [frame[:64], frame[:5], frame[:12]]
    assert [ts for ts, _, _ in records] == [0, 0, 0]  # no timestamp seen yet


def test_pcapng_two_sections_with_different_byte_orders(tmp_path):
    path = tmp_path / "sections.pcapng"
    first = pcapng_section([(1, None), (101, 9)], [(0, T0, b"a"), (1, T0 + 5, b"b")])
    second = pcapng_section(
        [(113, 3)], [(0, T0 + 10_000, b"c"), (0, T0 + 20_000, b"d")], big_endian=True
    )
    third = pcapng_section([(276, None)], [(0, T0 + 30_000, b"e")], block="opb")
    path.write_bytes(first + second + third)
    records, reader = read_all(path)
    assert records == [
        (T0, 1, b"a"),
        (T0 + 5, 101, b"b"),
        (T0 + 10_000, 113, b"c"),
        (T0 + 20_000, 113, b"d"),
        (T0 + 30_000, 276, b"e"),
    ]
    assert reader.corrupt_records == 0


def test_pcapng_interface_from_an_earlier_section_is_gone(tmp_path):
    path = tmp_path / "sections.pcapng"
    first = pcapng_section([(1, None), (101, None)], [(1, T0, b"a")])
    second_header = pcapng_section([(113, None)], [])
    # EPB for interface 1 in a section that describes only interface 0.
    two = [(113, None), (113, None)]
    stray = pcapng_section(two, [(1, T0, b"x")])[len(pcapng_section(two, [])) :]
    path.write_bytes(first + second_header + stray)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0, 101, b"a")]
    assert reader.corrupt_records == 1
    assert "interface 1 not described in this section (1 are); skipped" in warnings[0]


def test_pcapng_other_blocks_are_skipped(tmp_path):
    path = tmp_path / "other.pcapng"
    head = pcapng_section([(1, None)], [])
    packet = pcapng_section([(1, None)], [(0, T0, b"frame")])[len(head) :]
    others = (
        pcapng_block(BLOCK_NRB, b"\x01\x00\x08\x00\x0a\x00\x00\x01host\0\0\0\0\0\0\0\0")
        + pcapng_block(BLOCK_ISB, b"\0" * 12)
        + pcapng_block(BLOCK_DSB, b"TLSK" + b"\x04\0\0\0" + b"keys")
        + pcapng_block(BLOCK_CUSTOM, b"\x00\x00\x7f\x00custom")
        + pcapng_block(0x40000BAD, b"\x00\x00\x7f\x00")
    )
    path.write_bytes(head + others + packet + others + packet)
    records, reader = read_all(path)
    assert records == [(T0, 1, b"frame"), (T0, 1, b"frame")]
    assert reader.corrupt_records == 0


def test_pcapng_packet_before_any_interface_is_corrupt(tmp_path):
    path = tmp_path / "noif.pcapng"
    head = pcapng_section([], [])
    packet = pcapng_section([(1, None)], [(0, T0, b"frame")])
    path.write_bytes(head + packet[len(pcapng_section([(1, None)], [])) :] + packet)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0, 1, b"frame")]
    assert reader.corrupt_records == 1
    assert "interface 0 not described" in warnings[0]


def test_pcapng_captured_length_beyond_block_is_corrupt(tmp_path):
    path = tmp_path / "caplen.pcapng"
    offsets = write_pcapng(path, [(1, None)], [(0, T0, b"a" * 8), (0, T0 + 1, b"b" * 8)])
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offsets[0] + 20, 500)
    path.write_bytes(bytes(data))
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0 + 1, 1, b"b" * 8)]
    assert reader.corrupt_records == 1
    assert warnings == [
        f"{path}: block at byte {offsets[0]}: captured length 500 exceeds the 8 bytes of the block; skipped"
    ]


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_corrupt_block_length_resynchronises(tmp_path, big_endian):
    path = tmp_path / "damaged.pcapng"
    packets = [(0, T0 + i, bytes([i]) * (10 + i)) for i in range(10)]
    offsets = write_pcapng(path, [(1, None)], packets, big_endian=big_endian)
    data = bytearray(path.read_bytes())
    struct.pack_into(">I" if big_endian else "<I", data, offsets[4] + 4, 0x7FFFFFF1)
    path.write_bytes(bytes(data))
    warnings = []
    records, reader = read_all(path, warnings)
    assert [frame for _, _, frame in records] == [p[2] for p in packets[:4] + packets[5:]]
    assert reader.corrupt_records == 1
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: block at byte {offsets[4]}: invalid block length")
    assert f"to byte {offsets[5]}" in warnings[0]


def test_pcapng_mismatched_trailing_length_resynchronises(tmp_path):
    path = tmp_path / "damaged.pcapng"
    packets = [(0, T0 + i, bytes([i]) * 16) for i in range(5)]
    offsets = write_pcapng(path, [(1, None)], packets)
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offsets[2] + 4, 44)  # was 48: now ends inside the block
    path.write_bytes(bytes(data))
    warnings = []
    records, reader = read_all(path, warnings)
    assert [frame for _, _, frame in records] == [p[2] for p in packets[:2] + packets[3:]]
    assert reader.corrupt_records == 1
    assert "does not match the trailing length" in warnings[0]


def test_pcapng_truncated_last_block(tmp_path):
    path = tmp_path / "cut.pcapng"
    offsets = write_pcapng(path, [(1, None)], [(0, T0 + i, b"z" * 100) for i in range(3)])
    path.write_bytes(path.read_bytes()[:-30])
    warnings = []
    records, reader = read_all(path, warnings)
    assert len(records) == 2
    assert reader.corrupt_records == 1
    assert warnings == [
        f"{path}: block at byte {offsets[2]}: truncated, file ends 30 bytes before the end "
        f"of the 132-byte block; stopped"
    ]


def test_pcapng_file_cut_inside_block_header(tmp_path):
    path = tmp_path / "cut.pcapng"
    offsets = write_pcapng(path, [(1, None)], [(0, T0, b"a"), (0, T0, b"b")])
    path.write_bytes(path.read_bytes()[: offsets[1] + 6])
    warnings = []
    records, reader = read_all(path, warnings)
    assert records == [(T0, 1, b"a")]
    assert reader.corrupt_records == 1
    assert "file ends inside a block header; stopped" in warnings[0]


def test_pcapng_damaged_section_header_is_reported(tmp_path):
    path = tmp_path / "sections.pcapng"
    first = pcapng_section([(1, None)], [(0, T0, b"a")])
    second = bytearray(pcapng_section([(1, None)], [(0, T0 + 1, b"b")]))
    second[8:12] = b"\0\0\0\0"  # byte-order magic
    third = pcapng_section([(101, None)], [(0, T0 + 2, b"c")], big_endian=True)
    path.write_bytes(first + bytes(second) + third)
    warnings = []
    records, reader = read_all(path, warnings)
    assert records[0] == (T0, 1, b"a")
    assert records[-1] == (T0 + 2, 101, b"c")
    assert reader.corrupt_records >= 1
    assert warnings[0].startswith(
        f"{path}: block at byte {len(first)}: section header has no valid byte-order magic"
    )


def test_pcapng_idb_options_after_the_known_ones_are_ignored(tmp_path):
    body = struct.pack("<HHI", 1, 0, 0)
    body += struct.pack("<HH", 2, 4) + b"eth0"  # if_name
    body += struct.pack("<HH", 9, 1) + b"\x09\0\0\0"  # if_tsresol
    body += struct.pack("<HH", 0, 0)
    section = pcapng_section([], []) + pcapng_block(1, body)
    packet = pcapng_section([(1, 9)], [(0, Decimal("1.000000999"), b"p")])
    path = tmp_path / "opts.pcapng"
    path.write_bytes(section + packet[len(pcapng_section([(1, 9)], [])) :])
    records, _ = read_all(path)
    assert records == [(1_000_000, 1, b"p")]


# --- not a capture -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"\xd4\xc3", "only 2 bytes"),
        (b"GET / HTTP/1.1\r\n\r\n", "not a pcap or pcapng capture (starts with 47 45 54 20)"),
        (b"\x1f\x8b\x08\x00" + b"\0" * 30, "gzip-compressed"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap file header cut short"),
        (b"\x0a\x0d\x0d\x0a\x1c\0\0\0", "not a readable pcapng file"),
        (b"\x0a\x0d\x0d\x0a\x1c\0\0\0" + b"\0" * 24, "no valid byte-order magic"),
    ],
)
def test_not_a_capture(tmp_path, content, reason):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(CaptureFileError) as raised:
        open_capture(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert reason in str(raised.value)


def test_pcapng_unsupported_version(tmp_path):
    path = tmp_path / "v2.pcapng"
    data = bytearray(pcapng_section([(1, None)], []))
    struct.pack_into("<H", data, 12, 2)
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureFileError, match=r"unsupported version 2\.0"):
        open_capture(path)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.pcap"
    with pytest.raises(CaptureFileError, match=re.escape(f"{path}: cannot read")):
        open_capture(path)


def test_directory(tmp_path):
    with pytest.raises(CaptureFileError, match="cannot read"):
        open_capture(tmp_path)


def test_capture_file_error_is_a_usage_error():
    from voiplog.errors import UsageError

    assert issubclass(CaptureFileError, UsageError)


# --- reader object ---------------------------------------------------------------------


def test_reader_attributes_and_progress(tmp_path):
    path = tmp_path / "p.pcap"
    offsets = write_pcap(path, [(T0 + i, b"q" * 10) for i in range(3)])
    reader = open_capture(str(path))
    assert isinstance(reader, CaptureReader)
    assert reader.path == str(path)
    assert reader.size == 24 + 3 * 26
    progress = []
    for _ in reader:
        progress.append(reader.bytes_read)
    assert progress == [offsets[1], offsets[2], reader.size]
    reader.close()
    reader.close()  # closing twice is harmless


def test_iterating_again_starts_over(tmp_path):
    path = tmp_path / "p.pcap"
    write_pcap(path, [(T0, b"1"), (T0 + 1, b"2")])
    with open_capture(path) as reader:
        assert list(reader) == list(reader)


def test_iteration_after_close_yields_nothing(tmp_path):
    path = tmp_path / "p.pcapng"
    write_pcapng(path, [(1, None)], [(0, T0 + i, b"r") for i in range(5)])
    reader = open_capture(path)
    records = iter(reader)
    assert next(records) == (T0, 1, b"r")
    reader.close()
    assert list(records) == []
    assert list(reader) == []


def test_a_pcap_closed_under_its_iteration_yields_nothing_more(tmp_path):
    path = tmp_path / "p.pcap"
    write_pcap(path, [(T0 + i, b"r") for i in range(5)])
    reader = open_capture(path)
    records = iter(reader)
    assert next(records) == (T0, 1, b"r")
    reader.close()  # with the compiled loop running, it gives the mapping back first
    assert list(records) == []
    assert list(reader) == []


def test_reads_from_a_pipe(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    data = pcap_bytes([(T0, b"piped")])

    def feed():
        with open(path, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        records, reader = read_all(path)
    finally:
        writer.join()
    assert records == [(T0, 1, b"piped")]
    assert reader.size == len(data)


# --- fuzzing: anything opens and reads, or is refused with CaptureFileError -------------


def _read_everything(path: Path) -> None:
    warnings: list[str] = []
    try:
        reader = open_capture(path, warnings.append)
    except CaptureFileError:
        return
    with reader:
        for ts, linktype, frame in reader:
            assert type(ts) is int
            assert type(linktype) is int
            assert type(frame) is bytes
        assert reader.bytes_read <= reader.size
        assert reader.corrupt_records >= 0
    assert all(w.startswith(str(path)) for w in warnings)


_VALID_FILES = [
    pcap_bytes([(T0 + i, bytes([i]) * (i * 7 % 90)) for i in range(12)]),
    pcap_bytes([(T0 + i, bytes([i]) * 20) for i in range(6)], nanosecond=True, big_endian=True),
    pcapng_section(
        [(1, None), (101, 9), (113, 0x80 | 20)],
        [(i % 3, T0 + i, bytes([i]) * (i * 5 % 40)) for i in range(10)],
    )
    + pcapng_block(BLOCK_ISB, b"\0" * 12),
    pcapng_section([(1, None)], [(0, None, b"s" * 30)] * 3, block="spb", big_endian=True)
    + pcapng_section([(1, 3)], [(0, T0, b"o" * 9)] * 3, block="opb"),
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from([b"", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"]),
    data=st.binary(max_size=400),
)
def test_fuzz_random_bytes(tmp_path, prefix, data):
    path = tmp_path / "fuzz.bin"
    path.write_bytes(prefix + data)
    _read_everything(path)


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=st.sampled_from(_VALID_FILES),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete", "truncate"]),
            st.integers(min_value=0, max_value=10_000),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_valid_files(tmp_path, base, edits):
    data = bytearray(base)
    for action, position, value in edits:
        at = position % (len(data) + 1)
        if action == "set":
            data[at : at + len(value)] = value
        elif action == "insert":
            data[at:at] = value
        elif action == "delete":
            del data[at : at + len(value)]
        else:
            del data[at:]
    path = tmp_path / "fuzz.cap"
    path.write_bytes(bytes(data))
    _read_everything(path)


# --- real captures ---------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@pytest.mark.corpus
@pytest.mark.skipif(not (CORPUS / "pcaps").is_dir(), reason="../shared/corpus absent")
def test_corpus_captures_read_completely():
    for path in sorted((CORPUS / "pcaps").iterdir()):
        reference = (CORPUS / "reference" / f"{path.name}.capinfos.txt").read_text()
        expected = int(re.search(r"Number of packets:\s+(\d+)", reference).group(1))
        warnings = []
        records, reader = read_all(path, warnings)
        assert len(records) == expected, path.name
        assert reader.corrupt_records == 0 and warnings == [], path.name
