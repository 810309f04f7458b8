"""The pipeline's RTP fast path takes exactly the frames that `read_udp` and
`is_rtp_of_flow` accept: its inlined copy of the frame test is held to the packet layer's,
in both implementations of the fast path (the compiled one, when it was built, and the
pure-Python reference)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from voiplog import pipeline as pipeline_module
from voiplog._fastpath import fast_path, udp_fields
from voiplog.calls import MediaFlow
from voiplog.packet import flow_key, read_udp
from voiplog.pipeline import Pipeline
from voiplog.rtp import RTP_OF_FLOW

COMPILED = pipeline_module._cpipeline
IN_USE = pipeline_module._FastPath
IMPLEMENTATIONS = [
    pytest.param(fast_path, id="python"),
    pytest.param(
        COMPILED and COMPILED.FastPath,
        id="compiled",
        marks=pytest.mark.skipif(COMPILED is None, reason="compiled extensions not built"),
    ),
]

SRC = bytes([10, 0, 0, 1])
DST = bytes([192, 0, 2, 7])
SPORT, DPORT = 40000, 30000


class _Recording(Pipeline):
    """A pipeline whose general path only notes the frames it is handed."""

    def __init__(self) -> None:
        super().__init__(lambda record: None)
        self.general: list[bytes] = []

    def _packet(self, ts: int, linktype: int, frame: bytes, udp: int) -> None:
        self.general.append(frame)


def _pipeline_with_flow() -> _Recording:
    pipeline = _Recording()
    flow = MediaFlow(None, SRC, SPORT, DST, DPORT, {})
    pipeline.tracker.flows[flow.key] = flow
    return pipeline


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=1500, deadline=None)
@given(
    version_ihl=st.sampled_from([0x45] * 6 + [0x46, 0x55]),
    proto=st.sampled_from([17] * 6 + [6]),
    fragment=st.sampled_from([0, 0x4000, 0x8000] * 2 + [0x2000, 0x0001]),
    # RTP (with marker, extension), RTCP SR, payload type 72, versions 1 and 3.
    rtp_start=st.sampled_from(
        [b"\x80\x00", b"\x80\x88", b"\x90\x60", b"\x80\xc8", b"\x80\x48", b"\x40\x00", b"\xc0\x00"]
    ),
    payload_size=st.sampled_from([2, 11, 12, 20, 172]),
    total_delta=st.one_of(st.just(0), st.integers(min_value=-30, max_value=30)),
    udp_len_delta=st.one_of(st.just(0), st.integers(min_value=-15, max_value=15)),
    padding=st.sampled_from([0, 0, 6, 30]),
    tagged=st.booleans(),
    dport=st.sampled_from([DPORT] * 4 + [4789]),
)
def test_fast_path_takes_what_read_udp_and_the_rtp_test_accept(
    implementation, version_ihl, proto, fragment, rtp_start, payload_size, total_delta, udp_len_delta,
    padding, tagged, dport,
):  # fmt: skip
    payload = (rtp_start + bytes(payload_size))[:payload_size]
    length = max(0, 8 + payload_size + udp_len_delta)
    body = struct.pack(">HHHH", SPORT, dport, length, 0) + payload
    total = max(0, 20 + len(body) + total_delta)
    ip = struct.pack(">BBHHHBBH4s4s", version_ihl, 0, total, 1, fragment, 64, proto, 0, SRC, DST)
    tag = b"\x81\x00\x00\x2a" if tagged else b""
    frame = b"\x02\0\0\0\0\x0b\x02\0\0\0\0\x0a" + tag + b"\x08\x00" + ip + body + bytes(padding)

    pipeline = _pipeline_with_flow()
    pipeline_module._FastPath = implementation
    try:
        pipeline.feed([(1, 1, frame)])
    finally:
        pipeline_module._FastPath = IN_USE
    taken = not pipeline.general
    u, head = read_udp(frame, 12)
    event("taken by the fast path" if taken else "left to the general path")
    assert taken == bool(u and RTP_OF_FLOW[head])
    if taken:
        assert pipeline.stats.rtp_packets == 1


@settings(max_examples=800, deadline=None)
@given(
    payload=st.binary(max_size=300),
    udp_len_delta=st.one_of(st.just(0), st.integers(min_value=-15, max_value=15)),
    padding=st.sampled_from([0, 0, 6, 30]),
    tagged=st.booleans(),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
)
def test_the_fields_of_a_frame_the_fast_path_read(payload, udp_len_delta, padding, tagged, ports):
    """`udp_fields` of the compiled module gives the reference's fields, which are
    the datagram's as the packet layer decodes it."""
    sport, dport = ports
    length = max(0, 8 + len(payload) + udp_len_delta)
    body = struct.pack(">HHHH", sport, dport, length, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, 17, 0, SRC, DST)
    tag = b"\x81\x00\x00\x2a" if tagged else b""
    frame = b"\x02\0\0\0\0\x0b\x02\0\0\0\0\x0a" + tag + b"\x08\x00" + ip + body + bytes(padding)
    udp, _ = read_udp(frame, 12)
    event("read" if udp else "not read")
    if not udp:
        return
    fields = udp_fields(frame, udp)
    assert fields == (
        SRC,
        sport,
        DST,
        dport,
        payload[: length - 8],
        flow_key(SRC, sport, DST, dport),
    )
    if COMPILED is not None:
        assert COMPILED.udp_fields(frame, udp) == fields


@pytest.mark.skipif(COMPILED is None, reason="compiled extensions not built")
@pytest.mark.parametrize("udp", [0, 7, 120])
def test_compiled_fields_refuse_an_offset_outside_the_frame(udp):
    frame = bytes(60)
    with pytest.raises(ValueError, match="offset"):
        COMPILED.udp_fields(frame, udp)
