"""The compiled HEP v3 decoding (`_chep.pyx`) against the pure-Python reference.

Invariant: for every input both give the same result, an equal `HepMessage` or a
`HepError` of the same kind and text. Inputs: the packets of `test_hep.py`, the
bench's feed, packets assembled from random chunk lists (every chunk type, right
and wrong sizes, other vendors), and seeded random edits of them (truncation,
length fields, flipped bytes). Skipped when the extension was not built.
"""

from __future__ import annotations

import importlib
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.packet.test_hep import SIP, chunk, hep3, v4_chunks
from voiplog.packet.hep import HepError, HepMessage, _decode_v3, encode_hep3

try:
    _chep = importlib.import_module("voiplog.packet._chep")
except ImportError:
    _chep = None

pytestmark = pytest.mark.skipif(_chep is None, reason="compiled extensions not built")


def outcome(decode, data: bytes) -> tuple:
    try:
        message = decode(data)
    except HepError as err:
        return ("error", type(err), err.kind, str(err))
    return ("message", type(message), message)


def assert_same(data: bytes) -> None:
    expected = outcome(_decode_v3, data)
    assert outcome(_chep.decode_v3, data) == expected, data
    taken = _chep.fast_path(data)
    if taken is not None:
        assert expected == ("message", type(taken), taken), data


def feed() -> list[bytes]:
    """HEP packets as Kamailio and heplify write them, IPv4 and IPv6."""
    out = [hep3(*v4_chunks())]
    for n in range(20):
        v6 = n % 3 == 0
        src = bytes(range(n, n + 16)) if v6 else bytes([10, 0, n, 1])
        dst = bytes(range(16)) if v6 else bytes([192, 0, 2, 50])
        message = HepMessage(
            3, 17 if n % 2 else 6, src, 5060 + n, dst, 5060, 1_700_000_000_000_000 + n * 999_999,
            1 if n % 4 else 5, SIP * (n % 3 + 1), 2001 if n % 5 else None,
            b"key" if n % 2 else None, f"corr-{n}" if n % 7 else None,
        )  # fmt: skip
        out.append(encode_hep3(message))
        out.append(encode_hep3(message, chunks=((3, 99, b"vendor"), (0, 40, b"x"), (0, 13, b""))))
    return out


def test_the_fast_path_takes_ordinary_packets():
    for data in feed():
        assert _chep.fast_path(data) == _decode_v3(data)


@pytest.mark.parametrize("index", range(41))
def test_feed(index):
    assert_same(feed()[index])


def test_seeded_edits():
    rng = random.Random(3)
    seeds = feed()
    for _ in range(5000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            kind = rng.randrange(4)
            if kind == 0:
                del data[rng.randrange(len(data) + 1) :]
            elif kind == 1 and len(data) > 6:  # the total length
                struct.pack_into(">H", data, 4, rng.choice([0, 5, 6, len(data) - 1, 65535]))
            elif kind == 2 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:  # a chunk length or type, where a chunk header may be
                at = rng.randrange(6, max(7, len(data) - 6))
                data[at : at + 2] = struct.pack(">H", rng.choice([0, 5, 6, 7, 10, 16, 100]))
        assert_same(bytes(data))


# Bodies at the edges of the checks: families, 2- and 4-byte values around one
# second of microseconds, addresses of both sizes and neither.
EDGE_BODIES = [
    b"", b"\x02", b"\x0a", b"\x07", b"\xff", b"\0\0", b"\xff\xff", b"\x13\xc4",
    b"\0\x0f\x42\x3f", b"\0\x0f\x42\x40", b"\xff\xff\xff\xff", b"\x7f\0\0\x01",
    b"\x01\x02\x03", bytes(16), bytes(range(1, 17)), bytes(17), b"caf\xc3\xa9\xff", SIP,
]  # fmt: skip
_CHUNK_BODIES = st.one_of(st.binary(max_size=20), st.sampled_from(EDGE_BODIES))


@pytest.mark.parametrize("ctype", range(30))
def test_every_chunk_type_with_edge_bodies(ctype):
    before, payload = v4_chunks()[:-1], v4_chunks()[-1]
    for body in EDGE_BODIES:
        for vendor in (0, 1):
            extra = chunk(ctype, body, vendor)
            assert_same(hep3(*before, extra, payload))
            assert_same(hep3(extra, *before, payload))
            assert_same(hep3(*before, payload, extra))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 0, 0, 0, 1, 0x2AA]), st.integers(0, 40), _CHUNK_BODIES),
        max_size=16,
    ),
    st.booleans(),
)
def test_random_chunk_lists(chunks, with_kamailio_chunks):
    parts = [chunk(ctype, body, vendor) for vendor, ctype, body in chunks]
    if with_kamailio_chunks:
        parts = v4_chunks() + parts
    assert_same(hep3(*parts))
