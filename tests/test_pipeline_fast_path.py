"""The pipeline's RTP fast path takes exactly the frames that `read_udp` and
`is_rtp_of_flow` accept: its inlined copy of the frame test is held to the packet layer's,
in both implementations of the fast path (the compiled one, when it was built, and the
pure-Python reference)."""

from __future__ import annotations

import mmap
import os
import random
import struct
import subprocess
from fractions import Fraction

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.capture.test_ring_blocks import _frame_header
from tests.pcapwriter import pcap_bytes, write_pcap, write_pcapng
from voiplog import pipeline as pipeline_module
from voiplog._fastpath import fast_path, udp_fields
from voiplog.calls import MediaFlow
from voiplog.capture import files as files_module
from voiplog.capture import live
from voiplog.capture.files import open_capture
from voiplog.packet import flow_key, read_udp
from voiplog.pipeline import Pipeline
from voiplog.rtp import RTP_OF_FLOW
from voiplog.settings import ReassemblySettings

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


# -- records read in place ------------------------------------------------------------
#
# Over the compiled pcap record loop, the compiled fast path reads each record where
# it lies in the mapping (`PcapRecords.next_raw`) and makes objects only of what it
# hands on. It must hand on and take what it takes from the loop's tuples.

CPCAP = files_module._cpcap
IN_PLACE = pytest.mark.skipif(
    COMPILED is None or CPCAP is None, reason="compiled extensions not built"
)
OTHER_SRC = bytes([10, 0, 0, 9])


class _Noting(Pipeline):
    """A pipeline whose general path notes what it is handed, and its number."""

    def __init__(self, dedup_us: int) -> None:
        super().__init__(
            lambda record: None, reassembly=ReassemblySettings(mirror_window_us=dedup_us)
        )
        self.general: list[tuple] = []

    def _packet(self, ts: int, linktype: int, frame: bytes, udp: int) -> None:
        self.general.append((ts, linktype, frame, udp, self._number))


def _frame(src: bytes, sport: int, payload: bytes, *, proto: int = 17, tagged: bool = False):
    body = struct.pack(">HHHH", sport, DPORT, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 1, 0, 64, proto, 0, src, DST)
    tag = b"\x81\x00\x00\x2a" if tagged else b""
    return b"\x02\0\0\0\0\x0b\x02\0\0\0\0\x0a" + tag + b"\x08\x00" + ip + body


_PACKET = st.one_of(
    # RTP of the flow: two SSRCs, sequence numbers that repeat (mirror copies).
    st.tuples(st.just("rtp"), st.integers(0, 1), st.integers(0, 40), st.booleans(), st.booleans()),
    st.tuples(st.just("other flow"), st.integers(0, 1), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("rtcp"), st.booleans()),
    st.tuples(st.just("tcp"), st.booleans()),
    st.tuples(st.just("short"), st.integers(0, 43)),
)


def _capture(packets, start_us: int) -> list[tuple]:
    frames, ts = [], start_us
    for packet in packets:
        kind = packet[0]
        if kind == "rtp":
            _, ssrc, seq, tagged, gap = packet
            rtp = struct.pack(">BBHII", 0x80, 0, seq, seq * 160, 0x1000 + ssrc) + bytes(20)
            frame = _frame(SRC, SPORT, rtp, tagged=tagged)
            ts += 700_000 if gap else 20_000  # gaps cross seconds: expiry, progress
        elif kind == "other flow":
            _, ssrc, seq, tagged = packet
            rtp = struct.pack(">BBHII", 0x80, 0, seq, seq * 160, 0x1000 + ssrc) + bytes(20)
            frame = _frame(OTHER_SRC, SPORT, rtp, tagged=tagged)
        elif kind == "rtcp":
            frame = _frame(SRC, SPORT, b"\x80\xc8\x00\x06" + bytes(24), tagged=packet[1])
        elif kind == "tcp":
            frame = _frame(SRC, SPORT, bytes(30), proto=6, tagged=packet[1])
        else:
            frame = _frame(SRC, SPORT, bytes(30))[: packet[1]]
        frames.append((Fraction(ts, 1_000_000), frame))
        ts += 1
    return frames


def _fed(path, in_place: bool, dedup_us: int, progress: list) -> _Noting:
    pipeline = _Noting(dedup_us)
    flow = MediaFlow(None, SRC, SPORT, DST, DPORT, {})
    pipeline.tracker.flows[flow.key] = flow
    with open_capture(str(path)) as reader:
        records = iter(reader)
        assert isinstance(records, CPCAP.InPlaceRecords)
        frames = records if in_place else list(records)
        pipeline.feed(frames, on_progress=lambda: progress.append(pipeline._now_us))
    return pipeline


def _outcome(pipeline: _Noting) -> tuple:
    flow = next(iter(pipeline.tracker.flows.values()))
    streams = {ssrc: stream.summary() for ssrc, stream in flow.streams.items()}
    return pipeline.general, pipeline.stats, pipeline._now_us, pipeline._next_expire_us, streams


@IN_PLACE
@pytest.mark.parametrize("form", ["pcap", "pcap SLL", "pcapng", "pcapng OPB"])
@pytest.mark.parametrize("dedup_us", [0, 50_000])
@settings(max_examples=150, deadline=None)
@given(packets=st.lists(_PACKET, max_size=60), interfaces=st.lists(st.integers(0, 1)))
def test_records_read_in_place_are_taken_and_handed_on_as_their_tuples(
    tmp_path_factory, form, dedup_us, packets, interfaces
):
    path = tmp_path_factory.mktemp("in-place") / "capture"
    frames = _capture(packets, 1_700_000_000_000_000)
    if form.startswith("pcapng"):
        # Ethernet and SLL interfaces; the obsolete packet blocks are read in Python.
        on = interfaces + [0] * len(frames)
        write_pcapng(
            path,
            [(1, None), (113, 9)],
            [(on[i], ts, frame) for i, (ts, frame) in enumerate(frames)],
            block="opb" if form.endswith("OPB") else "epb",
        )
    else:
        write_pcap(path, frames, linktype=113 if form.endswith("SLL") else 1)
    progress_in_place, progress_tuples = [], []
    in_place = _fed(path, True, dedup_us, progress_in_place)
    from_tuples = _fed(path, False, dedup_us, progress_tuples)
    assert _outcome(in_place) == _outcome(from_tuples)
    assert progress_in_place == progress_tuples


@IN_PLACE
def test_a_stop_ends_records_read_in_place_between_two_of_them(tmp_path):
    path = tmp_path / "capture.pcap"
    packets = [("rtp", 0, seq % 40, False, seq % 50 == 0) for seq in range(1000)]
    write_pcap(path, _capture(packets, 1_700_000_000_000_000))
    pipeline = _Noting(0)
    flow = MediaFlow(None, SRC, SPORT, DST, DPORT, {})
    pipeline.tracker.flows[flow.key] = flow
    with open_capture(str(path)) as reader:
        records = iter(reader)
        calls = []

        def progress() -> None:
            calls.append(reader.bytes_read)
            if len(calls) == 3:
                records.stop()

        pipeline.feed(records, on_progress=progress)
        assert reader.bytes_read == calls[-1] < reader.size  # not read to the end
        assert list(records) == []  # and nothing more comes
    # The packet whose time ran the third expiry was the last one read.
    assert pipeline.stats.packets == 1 + 100  # the 1st, 51st and 101st opened a second
    assert pipeline.stats.rtp_packets == 101


@IN_PLACE
def test_sigterm_stops_a_replay_reading_records_in_place(tmp_path):
    """A signal reaches the compiled loop, which runs no Python code between two
    fast-path packets: it looks at signals every 1,024 records."""
    from voiplog.cli.replay import _Stop

    path = tmp_path / "capture.pcap"
    frame = _frame(SRC, SPORT, struct.pack(">BBHII", 0x80, 0, 1, 160, 0x1000) + bytes(20))
    record = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame
    total = 1_500_000
    path.write_bytes(pcap_bytes([]) + record * total)
    pipeline = _Noting(0)
    flow = MediaFlow(None, SRC, SPORT, DST, DPORT, {})
    pipeline.tracker.flows[flow.key] = flow
    # Signals the test process once told to: from outside, as a real SIGTERM comes.
    killer = subprocess.Popen(
        ["sh", "-c", f"read go; sleep 0.05; kill -TERM {os.getpid()}"], stdin=subprocess.PIPE
    )
    stop = _Stop()
    stop.armed = True
    try:
        with open_capture(str(path)) as reader:
            frames = stop.frames(reader)
            killer.stdin.write(b"go\n")
            killer.stdin.close()
            pipeline.feed(frames)
            assert killer.wait(timeout=30) == 0
    finally:
        if killer.poll() is None:
            killer.kill()
            killer.wait()
        stop.restore()
    assert stop.signal == "SIGTERM"
    assert 0 < pipeline.stats.packets < total
    assert pipeline.stats.rtp_packets == pipeline.stats.packets


@IN_PLACE
@pytest.mark.skipif(live._cring is None, reason="compiled extensions not built")
@settings(max_examples=100, deadline=None)
@given(packets=st.lists(_PACKET, min_size=1, max_size=60), seed=st.integers(0, 2**16))
def test_ring_frames_read_in_place_are_taken_and_handed_on_as_copies(packets, seed):
    """The live ring's frames, read in place (`RingFrames`), against the copies the
    reference block loop makes, some with the 802.1Q tag the NIC took off."""
    rng = random.Random(seed)
    block_bytes, blocks = 1 << 16, 4
    frames = _capture(packets, 1_700_000_000_000_000)

    def ring_with_frames() -> tuple[mmap.mmap, live._Interface]:
        ring = mmap.mmap(-1, block_bytes * blocks)
        block, offset, count = 0, 48, 0
        for ts, frame in frames:
            ts_us = int(ts * 1_000_000)
            tagged = frame[12:14] == b"\x81\x00" and rng.random() < 0.5
            status = 0
            if tagged:  # the NIC took the tag off and says so
                tci = int.from_bytes(frame[14:16], "big")
                frame = frame[:12] + frame[16:]
                status = (1 << 4) | (1 << 6)
            nxt = (64 + len(frame) + 15) & ~15
            if offset + nxt > block_bytes:
                ring[block * block_bytes + 8 : block * block_bytes + 24] = struct.pack(
                    "<IIII", 1, count, 48, offset
                )
                block, offset, count = block + 1, 48, 0
            head = _frame_header(
                nxt, ts_us // 1_000_000, ts_us % 1_000_000 * 1000, len(frame), status, 64, 64,
                tci=tci if tagged else 0, tpid=0x8100,
            )  # fmt: skip
            base = block * block_bytes + offset
            ring[base : base + len(head)] = head
            ring[base + 64 : base + 64 + len(frame)] = frame
            offset += nxt
            count += 1
        ring[block * block_bytes + 8 : block * block_bytes + 24] = struct.pack(
            "<IIII", 1, count, 48, offset
        )
        interface = live._Interface.__new__(live._Interface)
        interface.ring, interface.block_bytes, interface.blocks = ring, block_bytes, blocks
        interface.next_block, interface.linktype = 0, 1
        interface.counters = live.InterfaceCounters("test0", 1)
        return ring, interface

    state = rng.getstate()
    ring, interface = ring_with_frames()
    copies: list = []
    interface.read_blocks(copies, blocks)
    rng.setstate(state)
    ring, interface = ring_with_frames()
    taken: list = []
    interface.take_blocks(taken, blocks)
    outcomes = []
    for source in (copies, live._cring.RingFrames(taken)):
        pipeline = _Noting(0)
        flow = MediaFlow(None, SRC, SPORT, DST, DPORT, {})
        pipeline.tracker.flows[flow.key] = flow
        pipeline.feed(source)
        outcomes.append(_outcome(pipeline))
    assert outcomes[0] == outcomes[1]
    assert [struct.unpack_from("<I", ring, b * block_bytes + 8)[0] for b in range(blocks)] == [
        0
    ] * blocks
