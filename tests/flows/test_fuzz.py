"""Invariant: any bytes given to a flow parser parse or raise that parser's own error.

The STUN/TURN, DTLS and TLS parsers run on UDP and TCP that merely resemble
those protocols; any other exception escaping them would be a bug.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.flows import _craft as c
from voiplog.flows import (
    DtlsParseError,
    FlowClassifier,
    FlowSettings,
    StunParseError,
    TlsParseError,
    looks_like_channel_data,
    looks_like_dtls,
    looks_like_srtcp,
    looks_like_stun,
    looks_like_tls,
    parse_channel_data,
    parse_client_hello,
    parse_dtls,
    parse_stun,
)

SEEDS = {
    "stun": c.stun(
        0x009,
        2,
        [
            (0x0020, c.xor_address("2001:db8::1", 9, bytes(12))),
            (0x0012, c.xor_address("192.0.2.1", 5004)),
            (0x000C, b"\x40\x00\x00\x00"),
            (0x8022, b"pjnath"),
            (0x0024, bytes(4)),
        ],
        bytes(12),
    ),
    "dtls": c.dtls_client_hello() + c.dtls_server_hello(),
    "tls": c.tls_client_hello("sip.example.net", ("sip/2", "h2")),
    "turn": c.channel_data(0x4001, c.rtp(1, 160)),
}


def _mutated(seed: bytes):
    """The seed with bytes flipped, cut or inserted, so that most inputs get deep."""
    return st.lists(
        st.tuples(st.integers(0, len(seed)), st.integers(0, 255), st.sampled_from("fic")),
        max_size=6,
    ).map(lambda edits: _apply(seed, edits))


def _apply(seed: bytes, edits) -> bytes:
    data = bytearray(seed)
    for pos, value, how in edits:
        pos = min(pos, len(data))
        if how == "f" and pos < len(data):
            data[pos] ^= value or 1
        elif how == "i":
            data.insert(pos, value)
        else:
            del data[pos:]
    return bytes(data)


def _inputs(name: str):
    return st.one_of(st.binary(max_size=200), _mutated(SEEDS[name]))


@settings(max_examples=500)
@given(_inputs("stun"))
def test_stun_parses_or_raises_its_own_error(data):
    looks_like_stun(data)
    with contextlib.suppress(StunParseError):
        parse_stun(data)


@settings(max_examples=300)
@given(_inputs("turn"))
def test_channel_data_parses_or_raises_its_own_error(data):
    looks_like_channel_data(data)
    with contextlib.suppress(StunParseError):
        parse_channel_data(data)


@settings(max_examples=500)
@given(_inputs("dtls"))
def test_dtls_parses_or_raises_its_own_error(data):
    looks_like_dtls(data)
    looks_like_srtcp(data)
    with contextlib.suppress(DtlsParseError):
        parse_dtls(data)


@settings(max_examples=500)
@given(_inputs("tls"))
def test_tls_parses_or_raises_its_own_error(data):
    looks_like_tls(data)
    with contextlib.suppress(TlsParseError):
        parse_client_hello(data)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 120_000_000),
            st.sampled_from([(1000, 2000), (1001, 2001), (2000, 1000), (5061, 3000)]),
            st.one_of(st.binary(max_size=120), *(_mutated(seed) for seed in SEEDS.values())),
        ),
        max_size=40,
    )
)
def test_classifier_takes_any_datagram_or_segment(packets):
    """The classifier itself: whatever arrives, feeding and closing return records only."""
    flows = FlowClassifier(FlowSettings(min_packets=2, max_sessions=3, max_tls_connections=2))
    a, b = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 1])
    for ts, (sport, dport), payload in sorted(packets, key=lambda p: p[0]):
        flows.feed_udp(ts, a, sport, b, dport, payload)
        flows.feed_tcp(ts, b, dport, a, sport, payload)
        flows.expire(ts)
    for record in flows.close_all():
        assert record.kind in ("media", "encrypted")
