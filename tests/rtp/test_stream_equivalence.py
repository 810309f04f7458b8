"""`RtpStream` against `ReferenceRtpStream`, the same rules without a fast path.

Both implementations of `RtpStream` are checked: the pure-Python one and the
compiled one.

Both get the same packets; after every packet every result must be identical,
the unrounded jitter values included (compared with ``==``). The packets mix
long regular runs, which `RtpStream` takes by its fast path, with everything
that must leave it: sequence jumps, wraps, duplicates and reordering, timestamp
jumps backwards, past 2**31 and across 2**32, payload type switches (comfort
noise 13 and 19, telephone-event, unknown clock rates), markers, other header
flags, and arrival times that repeat or go backwards.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rtp._implementations import IMPLEMENTATIONS
from tests.rtp._reference_stream import ReferenceRtpStream
from voiplog.rtp import codec_for

T0 = 1_700_000_000_000_000  # an epoch time in µs
SSRC = 0x11223344
FRAME_HEADERS = bytes(42)  # Ethernet, IPv4 and UDP headers in front of RTP

RTPMAPS = [
    None,
    {101: ("telephone-event", 8000, None)},
    {96: ("opus", 48000, "2"), 101: ("telephone-event", 48000, None)},
    {97: ("L16", 11025, None), 13: ("CN", 8000, None)},
    {0: ("PCMU", 0, None), 8: ("PCMA", 8000, None)},  # no usable rate for 0
    {96: ("H264", 90000, None), 98: ("mystery", -1, None)},
]
PAYLOAD_TYPES = [0, 8, 9, 13, 18, 19, 34, 96, 97, 98, 101, 111, 127]
FIRST_BYTES = [0x80, 0x80, 0x80, 0x90, 0xA0, 0x81, 0x00]


def snapshot(stream) -> tuple:
    """Every result of a stream, the unrounded jitter values included."""
    return (
        stream.packets,
        stream.lost,
        stream._jitter,
        stream._jitter_max,
        stream._jitter_mean,
        stream.jitter_max_ms,
        stream.jitter_mean_ms,
        stream.first_us,
        stream.last_us,
        stream.payload_type,
        list(stream.payload_types),
        stream.codec,
        stream.clock_rate,
        stream.summary(),
    )


def packet(first: int, marker_pt: int, seq: int, ts: int, with_frame: bool) -> tuple[bytes, int]:
    header = struct.pack(">BBHII", first, marker_pt, seq & 0xFFFF, ts & 0xFFFFFFFF, SSRC)
    payload = header + bytes(160)
    return (FRAME_HEADERS + payload, 42) if with_frame else (payload, 0)


def assert_same(implementation, packets, payload_type, codec, clock_rate, rtpmap) -> None:
    args = ("192.0.2.1", 4000, "198.51.100.7", 5000, SSRC, payload_type, codec, clock_rate)
    stream = implementation(*args, rtpmap)
    reference = ReferenceRtpStream(*args, rtpmap)
    assert snapshot(stream) == snapshot(reference)
    for i, (ts_us, payload, offset) in enumerate(packets):
        stream.add(ts_us, payload, offset)
        reference.add(ts_us, payload, offset)
        assert snapshot(stream) == snapshot(reference), f"after packet {i}"


# One irregular packet: how it moves the sequence number, the RTP timestamp and
# the arrival time, its payload type, marker and first byte. "set" moves go to
# an offset from the first packet's value, to hit the boundaries exactly; the
# first packet itself is regular.
seq_moves = st.one_of(
    st.tuples(st.just("step"), st.sampled_from([1, 1, 1, 2, 3, 0, -1, -2, -3])),
    st.tuples(st.just("step"), st.integers(-70_000, 70_000)),
    st.tuples(st.just("set"), st.sampled_from([0, 1, -1, 2, -2])),
    st.tuples(st.just("abs"), st.sampled_from([0, 1, 0xFFFE, 0xFFFF])),
)
ts_moves = st.one_of(
    st.tuples(st.just("step"), st.sampled_from([160, 160, 0, -160, 320, 1, -1])),
    st.tuples(st.just("step"), st.integers(-(2**33), 2**33)),
    st.tuples(
        st.just("set"),
        st.sampled_from(
            [0, 1, -1, 2**31, 2**31 - 1, 2**31 + 1, 2**31 - 160, 2**31 + 160, 2**32 - 160]
        ),
    ),
)
arrival_steps = st.one_of(
    st.sampled_from([20_000, 20_000, 0, 1, -1]),
    st.integers(-50_000, 200_000),
    st.integers(-(2**40), 2**40),
)
irregular = st.tuples(
    seq_moves,
    ts_moves,
    arrival_steps,
    st.sampled_from([None, None, *PAYLOAD_TYPES]),  # None: keep the payload type
    st.booleans(),  # marker
    st.sampled_from([None, None, None, *FIRST_BYTES]),  # None: keep the first byte
    st.integers(0, 40),  # regular packets after it
    st.integers(0, 1500),  # arrival jitter of those, in µs
)


@st.composite
def scenarios(draw):
    rtpmap = draw(st.sampled_from(RTPMAPS))
    first_pt = draw(st.sampled_from(PAYLOAD_TYPES))
    declared_pt = draw(st.sampled_from([first_pt, first_pt, 0, 101]))
    codec, clock_rate = draw(
        st.sampled_from(
            [codec_for(declared_pt, rtpmap), codec_for(declared_pt, rtpmap), (None, None)]
        )
    )
    seq0 = draw(st.sampled_from([0, 1, 0xFFFF, 0xFFF0, 0x8000]) | st.integers(0, 0xFFFF))
    ts0 = draw(st.sampled_from([0, 2**31, 2**32 - 800, 2**31 - 800]) | st.integers(0, 2**32 - 1))
    with_frame = draw(st.booleans())
    rng = random.Random(draw(st.integers(0, 2**32)))
    steps = draw(st.lists(irregular, min_size=1, max_size=12))

    seq, ts, arrival, pt, first = seq0, ts0, T0, first_pt, 0x80
    packets = [(arrival, *packet(first, pt, seq, ts, with_frame))]
    for seq_move, ts_move, arrival_step, new_pt, marker, new_first, run, spread in steps:
        kind, value = seq_move
        seq = {"step": seq + value, "set": seq0 + value, "abs": value}[kind] & 0xFFFF
        kind, value = ts_move
        ts = (ts + value if kind == "step" else ts0 + value) & 0xFFFFFFFF
        arrival = max(0, arrival + arrival_step)
        pt = pt if new_pt is None else new_pt
        first = first if new_first is None else new_first
        packets.append((arrival, *packet(first, pt | (0x80 if marker else 0), seq, ts, with_frame)))
        for _ in range(run):
            seq = (seq + 1) & 0xFFFF
            ts = (ts + 160) & 0xFFFFFFFF
            arrival += 20_000
            late = arrival + rng.randrange(spread + 1)
            packets.append((late, *packet(first, pt, seq, ts, with_frame)))
    return packets, declared_pt, codec, clock_rate, rtpmap


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_same_results_as_the_reference(implementation, scenario):
    assert_same(implementation, *scenario)


def call_stream(rng: random.Random, length: int) -> list[tuple[int, bytes, int]]:
    """A long G.711 stream as a network delivers it: loss, reordering, DTMF, silence."""
    seq = rng.choice([rng.randrange(0x10000), 0xFFFF - rng.randrange(200), 0])
    ts = rng.choice([rng.randrange(2**32), 2**32 - 160 * rng.randrange(1, 300)])
    arrival = T0 + rng.randrange(10**6)
    rows = []
    pt = 0
    for _ in range(length):
        seq = (seq + 1) & 0xFFFF
        ts = (ts + 160) & 0xFFFFFFFF
        arrival += 20_000
        r = rng.random()
        if r < 0.005:
            continue  # lost
        if r < 0.008:
            pt = 13 if pt == 0 else 0  # silence starts or ends
        elif r < 0.010:
            pt = 101 if pt == 0 else 0  # DTMF starts or ends
        marker = 0x80 if rng.random() < 0.003 else 0
        rows.append([arrival + rng.randrange(-900, 900), seq, ts, pt | marker])
    for i in range(len(rows) - 1):
        if rng.random() < 0.003:  # two packets swap on the way
            rows[i][1:], rows[i + 1][1:] = rows[i + 1][1:], rows[i][1:]
        elif rng.random() < 0.001:  # a duplicate
            rows[i + 1][1:] = rows[i][1:]
    rows.sort(key=lambda row: row[0])
    return [(a, *packet(0x80, mpt, s, t, True)) for a, s, t, mpt in rows]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("seed", range(8))
def test_same_results_as_the_reference_on_long_calls(implementation, seed):
    rng = random.Random(seed)
    rtpmap = {101: ("telephone-event", 8000, None)}
    packets = call_stream(rng, 70_000 if seed == 0 else 4_000)
    assert_same(implementation, packets, 0, *codec_for(0, rtpmap), rtpmap)
