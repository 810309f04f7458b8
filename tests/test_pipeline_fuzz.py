"""Random and mangled frames through the whole pipeline: nothing escapes but records.

Invariant: whatever the bytes, `Pipeline.feed` and `finish` return normally; bad
input only ever shows up as counted oddities.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.pipeline import Pipeline

_dialog = make_dialog(90)
_dialog.basic_answered(T0, talk_s=0.2)
VALID = sorted_frames(_dialog)

LINKTYPES = st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 12, 14, 9, 50, 147])


def _run(frames):
    records = []
    pipeline = Pipeline(records.append)
    pipeline.feed(frames)
    pipeline.finish()
    return records, pipeline.stats


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 2**40), LINKTYPES, st.binary(max_size=300)), max_size=30))
def test_random_frames_never_raise(frames):
    _run(frames)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mangled_call_never_raises(data):
    frames = []
    for ts, frame in VALID:
        action = data.draw(st.sampled_from(["keep", "keep", "keep", "flip", "cut", "drop"]))
        if action == "flip" and frame:
            i = data.draw(st.integers(0, len(frame) - 1))
            frame = frame[:i] + bytes([frame[i] ^ data.draw(st.integers(1, 255))]) + frame[i + 1 :]
        elif action == "cut":
            frame = frame[: data.draw(st.integers(0, len(frame)))]
        elif action == "drop":
            continue
        frames.append((ts, 1, frame))
    records, _ = _run(frames)
    # One call at most; RTP whose SDP was mangled may make a media session besides.
    assert sum(r.kind == "sip" for r in records) <= 1
    assert all(r.kind in ("sip", "media") for r in records)


def test_valid_call_untouched_gives_one_record():
    records, stats = _run([(ts, 1, f) for ts, f in VALID])
    assert len(records) == 1
    assert not stats.weird and not stats.parse_errors


def _udp_frame(src: int, sport: int, dst: int, dport: int, payload: bytes) -> bytes:
    import struct

    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     src.to_bytes(4, "big"), dst.to_bytes(4, "big"))  # fmt: skip
    return bytes(12) + b"\x08\x00" + ip + udp


# Payload starts that send a datagram down each of the flow classifier's paths.
_PREFIXES = st.sampled_from([
    b"", b"\x80\x00", b"\x81\xc8", b"\x00\x01\x00\x00\x21\x12\xa4\x42",
    b"\x00\x16\x00\x08\x21\x12\xa4\x42", b"\x40\x00\x00\x04", b"\x16\xfe\xfd",
    b"\x05\x00\x01", b"\x0f", b"\xff" * 12, b"\xc0\x00\x00\x00\x01",
])  # fmt: skip


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 120_000_000),
            st.sampled_from([0x0A000001, 0x0A000002, 0x95A7330F, 0x9DF0C336]),
            st.sampled_from([3478, 8801, 596, 40000, 443, 53]),
            _PREFIXES,
            st.binary(max_size=120),
        ),
        max_size=60,
    )
)
def test_random_udp_through_ndpi_never_raises_and_frees_every_flow(datagrams):
    import pytest

    from voiplog.ndpi import NdpiUnavailable, load

    try:
        classifier = load()
    except NdpiUnavailable as exc:
        pytest.skip(f"libndpi: {exc}")
    live = set()
    new_flow, release = classifier.new_flow, classifier.release

    def counted_new_flow():
        flow = new_flow()
        live.add(id(flow))
        return flow

    def counted_release(flow):
        live.discard(id(flow))
        release(flow)

    classifier.new_flow, classifier.release = counted_new_flow, counted_release
    frames = []
    for ts, far, port, prefix, body in sorted(datagrams):
        payload = prefix + body
        if ts % 2:
            frames.append((T0 + ts, 1, _udp_frame(0x6440000A, 40000, far, port, payload)))
        else:
            frames.append((T0 + ts, 1, _udp_frame(far, port, 0x6440000A, 40000, payload)))
    with classifier:
        pipeline = Pipeline(lambda record: None, apps=classifier)
        pipeline.feed(frames)
        pipeline.finish()
    assert live == set()  # every flow's nDPI state was given back
