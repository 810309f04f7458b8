"""HEP v3 and v2 decoding against packets built byte by byte, and the acceptance gate."""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
import struct

import pytest

from voiplog.errors import ParseError
from voiplog.packet.hep import (
    HepError,
    HepGate,
    HepMessage,
    HepSettings,
    HepStreamSplitter,
    decode_hep,
    encode_hep3,
)

SIP = b"OPTIONS sip:a@example.net SIP/2.0\r\nCall-ID: x1\r\nContent-Length: 0\r\n\r\n"


def chunk(ctype: int, body: bytes, vendor: int = 0) -> bytes:
    return struct.pack(">HHH", vendor, ctype, 6 + len(body)) + body


def hep3(*chunks: bytes, total_delta: int = 0) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + struct.pack(">H", 6 + len(body) + total_delta) + body


def v4_chunks(payload: bytes = SIP) -> list[bytes]:
    # The chunks Kamailio's siptrace writes, in its order.
    return [
        chunk(1, b"\x02"),
        chunk(2, b"\x11"),
        chunk(3, socket.inet_aton("10.1.0.10")),
        chunk(4, socket.inet_aton("192.0.2.50")),
        chunk(7, struct.pack(">H", 5060)),
        chunk(8, struct.pack(">H", 5062)),
        chunk(9, struct.pack(">I", 1_700_000_000)),
        chunk(10, struct.pack(">I", 123_456)),
        chunk(11, b"\x01"),
        chunk(12, struct.pack(">I", 2001)),
        chunk(14, b"myHep"),
        chunk(17, b"corr-1"),
        chunk(15, payload),
    ]


def test_v3_ipv4_sip():
    msg = decode_hep(hep3(*v4_chunks()))
    assert msg == HepMessage(
        version=3,
        proto=17,
        src_ip=socket.inet_aton("10.1.0.10"),
        src_port=5060,
        dst_ip=socket.inet_aton("192.0.2.50"),
        dst_port=5062,
        ts_us=1_700_000_000_123_456,
        payload_type=1,
        payload=SIP,
        node_id=2001,
        auth_key=b"myHep",
        correlation_id="corr-1",
        unknown_chunks=0,
    )


def test_v3_ipv6_tcp_with_unknown_and_vendor_chunks():
    src = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    dst = socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    packet = hep3(
        chunk(1, b"\x0a"),
        chunk(2, b"\x06"),
        chunk(5, src),
        chunk(6, dst),
        chunk(7, struct.pack(">H", 40000)),
        chunk(8, struct.pack(">H", 5060)),
        chunk(9, struct.pack(">I", 1)),
        chunk(10, struct.pack(">I", 2)),
        chunk(99, b"future"),
        chunk(1, b"vendor", vendor=0x0B),
        chunk(18, struct.pack(">H", 42)),  # VLAN: known, not needed
        chunk(15, SIP),
    )
    msg = decode_hep(packet)
    assert (msg.proto, msg.src_ip, msg.dst_ip, msg.src_port, msg.dst_port) == (
        6,
        src,
        dst,
        40000,
        5060,
    )
    assert msg.ts_us == 1_000_002
    assert msg.unknown_chunks == 2
    assert msg.node_id is None and msg.auth_key is None
    assert msg.payload_type == 1  # no type chunk: SIP, as the senders that omit it mean


def test_v3_compressed_payload():
    packet = hep3(*v4_chunks()[:-1], chunk(16, gzip.compress(SIP)))
    assert decode_hep(packet).payload == SIP


def test_v3_old_16_bit_capture_id():
    chunks = v4_chunks()
    chunks[9] = chunk(12, struct.pack(">H", 7))
    assert decode_hep(hep3(*chunks)).node_id == 7


@pytest.mark.parametrize(
    ("packet", "kind"),
    [
        (b"HEP3\x00", "hep.truncated"),
        (hep3(*v4_chunks(), total_delta=1), "hep.bad_length"),
        (hep3(*v4_chunks(), total_delta=-7), "hep.bad_chunk"),
        (hep3(*v4_chunks()[:-1]), "hep.missing_chunk"),
        (hep3(*v4_chunks()[1:3], *v4_chunks()[4:]), "hep.missing_chunk"),
        (hep3(chunk(3, b"\x01\x02\x03"), *v4_chunks()), "hep.bad_chunk"),
        (hep3(chunk(7, b"\x01"), *v4_chunks()), "hep.bad_chunk"),
        (hep3(*v4_chunks(), b"\x00\x00\x00\x0f\x00\x02"), "hep.bad_chunk"),
        (hep3(*v4_chunks(), b"\x00\x00"), "hep.truncated"),
        (hep3(*v4_chunks()[:-1], chunk(16, b"not zlib")), "hep.bad_chunk"),
        (
            hep3(*v4_chunks()[:-1], chunk(16, gzip.compress(b"x" * 70000))),
            "hep.bad_length",
        ),
        (
            hep3(*[c if c[3] != 10 else chunk(10, struct.pack(">I", 10**6)) for c in v4_chunks()]),
            "hep.bad_chunk",
        ),
        (b"GET / HTTP/1.1\r\n", "hep.bad_version"),
        (b"", "hep.bad_version"),
    ],
)
def test_v3_bad_packets_raise_named_errors(packet, kind):
    with pytest.raises(HepError) as caught:
        decode_hep(packet)
    assert caught.value.kind == kind


def v2(src: str, dst: str, payload: bytes = SIP, version: int = 2) -> bytes:
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    width = 16 if family == socket.AF_INET6 else 4
    header = struct.pack(
        ">BBBBHH", version, 8 + 2 * width, 10 if width == 16 else 2, 17, 5060, 5080
    )
    header += socket.inet_pton(family, src) + socket.inet_pton(family, dst)
    if version == 2:
        # struct hep_timehdr in the sender's (x86: little-endian) order, padded to 12.
        header += struct.pack("<IIH", 1_700_000_001, 999_999, 3) + b"\0\0"
    return header + payload


def test_v2_ipv4_and_ipv6():
    msg = decode_hep(v2("10.0.0.1", "10.0.0.2"))
    assert msg.version == 2
    assert msg.src_ip == socket.inet_aton("10.0.0.1")
    assert (msg.src_port, msg.dst_port, msg.proto) == (5060, 5080, 17)
    assert msg.ts_us == 1_700_000_001_999_999
    assert msg.node_id == 3
    assert msg.payload == SIP
    msg6 = decode_hep(v2("2001:db8::1", "2001:db8::2"))
    assert msg6.dst_ip == socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    assert msg6.payload == SIP


def test_v1_has_no_time():
    msg = decode_hep(v2("10.0.0.1", "10.0.0.2", version=1))
    assert (msg.version, msg.ts_us, msg.node_id, msg.payload) == (1, 0, None, SIP)


@pytest.mark.parametrize(
    ("packet", "kind"),
    [
        (b"\x02\x10\x02\x11", "hep.truncated"),
        (b"\x02\x11\x02\x11" + bytes(40), "hep.bad_length"),
        (b"\x02\x10\x07\x11" + bytes(40), "hep.bad_chunk"),
        (v2("10.0.0.1", "10.0.0.2")[:20], "hep.truncated"),
    ],
)
def test_v2_bad_packets_raise_named_errors(packet, kind):
    with pytest.raises(HepError) as caught:
        decode_hep(packet)
    assert caught.value.kind == kind


def test_encoder_round_trips():
    msg = HepMessage(3, 6, b"\x01\x02\x03\x04", 1, b"\x05\x06\x07\x08", 2, 1234567, 1, SIP, 9)
    assert decode_hep(encode_hep3(msg)) == msg


def test_random_bytes_raise_only_parse_errors():
    rng = random.Random(21)
    good = hep3(*v4_chunks())
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randint(0, len(data))])
        for packet in (bytes(data), cut, bytes([2]) + cut[1:]):
            with contextlib.suppress(ParseError):
                decode_hep(packet)


def test_gate_checks_key_node_and_rate():
    msg = decode_hep(hep3(*v4_chunks()))
    assert HepGate(HepSettings()).reject(msg, "a", 0) is None
    assert HepGate(HepSettings(auth_key=b"myHep")).reject(msg, "a", 0) is None
    assert HepGate(HepSettings(auth_key=b"other")).reject(msg, "a", 0) == "hep.bad_auth_key"
    keyless = decode_hep(v2("10.0.0.1", "10.0.0.2"))
    assert HepGate(HepSettings(auth_key=b"myHep")).reject(keyless, "a", 0) == "hep.no_auth_key"
    nodes = HepGate(HepSettings(node_ids=frozenset({2001})))
    assert nodes.reject(msg, "a", 0) is None
    assert nodes.reject(keyless, "a", 0) == "hep.node_not_accepted"
    rate = HepGate(HepSettings(max_rate_per_source=3))
    verdicts = [rate.reject(msg, "a", 5_000_000 + i) for i in range(5)]
    assert verdicts == [None, None, None, "hep.flood", "hep.flood"]
    assert rate.reject(msg, "b", 5_000_010) is None  # another sender has its own budget
    assert rate.reject(msg, "a", 6_000_000) is None  # the next second starts again


def test_stream_splitter_cuts_at_lengths_and_is_bounded():
    one = hep3(*v4_chunks())
    two = hep3(*v4_chunks(b"x"))
    stream = one + two + one
    splitter = HepStreamSplitter()
    out = []
    for i in range(0, len(stream), 7):
        out += splitter.feed(stream[i : i + 7])
    assert out == [one, two, one]
    with pytest.raises(HepError) as caught:
        HepStreamSplitter().feed(b"INVITE sip:x SIP/2.0\r\n")
    assert caught.value.kind == "hep.bad_stream"
    small = HepStreamSplitter(max_buffer=100)
    with pytest.raises(HepError):
        small.feed(one[:150])


def test_stream_splitter_resyncs_after_lost_bytes():
    one = hep3(*v4_chunks())
    splitter = HepStreamSplitter()
    assert splitter.feed(one[:50]) == []
    splitter.resync()  # the rest of that packet was never captured
    assert splitter.feed(one[60:] + b"xxHE") == []
    assert splitter.feed(one[:30]) == []
    assert splitter.feed(one[30:] + one) == [one, one]
