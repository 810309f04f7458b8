"""CGNAT port blocks: port ranges at their edges, time boundaries, CSV and IPFIX NAT logs."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest

from voiplog.enrich import CgnatIndex, IpfixParseError, PortBlock, SourceError, parse_time
from voiplog.enrich.cgnat import load_nat_events, read_cgnat_csv, read_ipfix_nat_events

T = parse_time("2024-05-01T10:00:00Z")
H = 3_600_000_000
PUBLIC = int(ipaddress.ip_address("203.0.113.7"))


def _block(first, last, private, start, end):
    return PortBlock(4, PUBLIC, first, last, 4, int(ipaddress.ip_address(private)), start, end, "t")


def _private(index, port, at, public="203.0.113.7"):
    block = index.lookup(public, port, at)
    return None if block is None else block.private_ip


def test_port_range_edges_are_inclusive():
    index = CgnatIndex()
    index.add(_block(1024, 2047, "100.64.0.1", T, T + H))
    index.add(_block(2048, 3071, "100.64.0.2", T, T + H))
    assert _private(index, 1023, T) is None
    assert _private(index, 1024, T) == "100.64.0.1"
    assert _private(index, 2047, T) == "100.64.0.1"
    assert _private(index, 2048, T) == "100.64.0.2"
    assert _private(index, 3071, T) == "100.64.0.2"
    assert _private(index, 3072, T) is None
    assert _private(index, 1500, T, public="203.0.113.8") is None


def test_time_is_half_open_and_blocks_are_reused():
    index = CgnatIndex()
    index.add(_block(1024, 2047, "100.64.0.1", T, T + H))
    index.add(_block(1024, 2047, "100.64.0.2", T + H, None))
    assert _private(index, 1024, T - 1) is None
    assert _private(index, 1024, T + H - 1) == "100.64.0.1"
    assert _private(index, 1024, T + H) == "100.64.0.2"
    assert _private(index, 1024, T + 100 * H) == "100.64.0.2"


def test_blocks_of_different_widths():
    index = CgnatIndex()
    index.add(_block(1024, 9999, "100.64.0.1", T, T + H))  # a wide block found from far above
    index.add(_block(10000, 10063, "100.64.0.2", T, T + H))
    assert _private(index, 9999, T) == "100.64.0.1"
    assert _private(index, 10063, T) == "100.64.0.2"


def test_bad_blocks_are_refused():
    index = CgnatIndex()
    with pytest.raises(ValueError):
        index.add(_block(2000, 1000, "100.64.0.1", T, T + H))
    with pytest.raises(ValueError):
        index.add(_block(1000, 2000, "100.64.0.1", T, T))


def test_csv():
    lines = [
        "public_ip,port_start,port_end,private_ip,start,end\n",
        "203.0.113.7,1024,2047,100.64.0.1,2024-05-01T12:00:00+02:00,2024-05-01T11:00:00Z\n",
        "203.0.113.7,2048,3071,100.64.0.2,2024-05-01T10:00:00Z,\n",
    ]
    rows = list(read_cgnat_csv(lines, "nat.csv"))
    assert [line for _, line in rows] == [2, 3]
    first = rows[0][0]
    assert (first.start_us, first.end_us, first.private_ip) == (T, T + H, "100.64.0.1")
    assert rows[1][0].end_us is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("203.0.113.7,1024,2047,100.64.0.1,2024-05-01T10:00:00,", "start: '2024-05-01T10:00:00' has no UTC offset"),
        ("203.0.113.7,1024,70000,100.64.0.1,2024-05-01T10:00:00Z,", "port_end: 70000 is outside 0..65535"),
        ("203.0.113.7,2047,1024,100.64.0.1,2024-05-01T10:00:00Z,", "port_end is below port_start"),
        ("203.0.113.x,1024,2047,100.64.0.1,2024-05-01T10:00:00Z,", "public_ip: '203.0.113.x' is not an address"),
        ("203.0.113.7,low,2047,100.64.0.1,2024-05-01T10:00:00Z,", "port_start: 'low' is not a port"),
    ],
)  # fmt: skip
def test_csv_errors_name_file_and_line(row, reason):
    lines = ["public_ip,port_start,port_end,private_ip,start,end\n", row + "\n"]
    with pytest.raises(SourceError) as info:
        list(read_cgnat_csv(lines, "nat.csv"))
    assert str(info.value).startswith(f"nat.csv:2: {reason}")


# -- IPFIX (RFC 7011 framing, RFC 8158 port-block events) -----------------------

# observationTimeMilliseconds, natEvent, sourceIPv4Address, postNATSourceIPv4Address,
# portRangeStart, portRangeEnd, and a variable-length element (an interface name).
TEMPLATE = [(323, 8), (230, 1), (8, 4), (225, 4), (361, 2), (362, 2), (82, 0xFFFF)]
TEMPLATE_ID = 256


def _message(sets: list[bytes], export_s: int = 1_714_557_600, domain: int = 1) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), export_s, 0, domain) + body


def _set(set_id: int, body: bytes) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def _template() -> bytes:
    fields = b"".join(struct.pack("!HH", e, n) for e, n in TEMPLATE)
    # An enterprise element first, which must be skipped with its number.
    enterprise = struct.pack("!HHI", 0x8000 | 1, 4, 9)
    return _set(2, struct.pack("!HH", TEMPLATE_ID, len(TEMPLATE) + 1) + enterprise + fields)


def _event(at_us, event, private, public, first, last) -> bytes:
    return (
        b"\0\0\0\0"  # the enterprise element's value
        + struct.pack("!QB", at_us // 1000, event)
        + ipaddress.ip_address(private).packed
        + ipaddress.ip_address(public).packed
        + struct.pack("!HH", first, last)
        + b"\x04eth0"
    )


def test_ipfix_allocation_and_release():
    log = _message(
        [_template(), _set(TEMPLATE_ID, _event(T, 16, "100.64.0.1", "203.0.113.7", 1024, 2047))]
    )
    log += _message(
        [
            _set(
                TEMPLATE_ID,
                _event(T + H, 17, "100.64.0.1", "203.0.113.7", 1024, 2047)
                + _event(T + H, 16, "100.64.0.2", "203.0.113.7", 1024, 2047),
            )
        ]
    )
    events = list(read_ipfix_nat_events(log, "nat.ipfix"))
    assert [e.allocated for e in events] == [True, False, True]
    index = CgnatIndex()
    assert load_nat_events(index, events) == (2, 0)
    index.finish()
    assert _private(index, 1024, T) == "100.64.0.1"
    assert _private(index, 2047, T + H - 1) == "100.64.0.1"
    assert _private(index, 2047, T + H) == "100.64.0.2"  # still allocated at the end of the log
    assert _private(index, 2048, T + H) is None


def test_ipfix_release_without_allocation_is_counted():
    log = _message(
        [_template(), _set(TEMPLATE_ID, _event(T, 17, "100.64.0.1", "203.0.113.7", 1024, 2047))]
    )
    assert load_nat_events(CgnatIndex(), read_ipfix_nat_events(log, "x")) == (0, 1)


def test_ipfix_records_of_unknown_templates_and_other_events_are_skipped():
    other = _set(300, b"\x01\x02\x03\x04")
    session_event = _event(T, 4, "100.64.0.1", "203.0.113.7", 1024, 2047)  # NAT44 session create
    log = _message([other, _template(), _set(TEMPLATE_ID, session_event)])
    assert list(read_ipfix_nat_events(log, "x")) == []


def test_ipfix_port_range_by_number_of_ports():
    template = _set(2, struct.pack("!HH", 257, 5) + b"".join(
        struct.pack("!HH", e, n) for e, n in [(230, 1), (8, 4), (225, 4), (361, 2), (364, 2)]
    ))  # fmt: skip
    record = b"\x10" + bytes([100, 64, 0, 1, 203, 0, 113, 7]) + struct.pack("!HH", 4096, 512)
    (event,) = read_ipfix_nat_events(_message([template, _set(257, record)]), "x")
    assert (event.block.port_start, event.block.port_end) == (4096, 4607)
    assert event.block.start_us == 1_714_557_600 * 1_000_000  # the export time, lacking another


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x0a\x00", "truncated IPFIX message header"),
        (struct.pack("!HHIII", 9, 16, 0, 0, 0), "IPFIX version 9, not 10"),
        (struct.pack("!HHIII", 10, 400, 0, 0, 0), "IPFIX message length 400 is wrong"),
        (_message([struct.pack("!HH", 2, 100)]), "set length 100 is wrong"),
        (_message([_set(2, struct.pack("!HHHH", 256, 3, 8, 4))]), "truncated template 256"),
    ],
)
def test_ipfix_errors_name_the_file_and_offset(data, reason):
    with pytest.raises(IpfixParseError) as info:
        list(read_ipfix_nat_events(data, "nat.ipfix"))
    assert str(info.value).startswith("nat.ipfix: offset 0: ") and reason in str(info.value)


def test_ipfix_fuzz_anything_reads_or_raises_the_parse_error():
    """Invariant: any damaged log reads or raises IpfixParseError, nothing else."""
    import random

    rng = random.Random(3)
    base = _message(
        [_template(), _set(TEMPLATE_ID, _event(T, 16, "100.64.0.1", "203.0.113.7", 1024, 2047))]
    )
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        with contextlib.suppress(IpfixParseError):
            list(read_ipfix_nat_events(bytes(data), "x"))
