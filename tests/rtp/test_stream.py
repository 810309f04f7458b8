"""Per-stream statistics, counted the way Wireshark 4.0's ``rtp,streams`` counts them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.rtp._packets import rtp
from voiplog.rtp import RtpStream, codec_for, looks_like_rtp
from voiplog.rtp._stream import STATE_FIELDS

T0 = 1_700_000_000_000_000  # an epoch time in µs


def new_stream(pt=0, rtpmap=None):
    codec, clock_rate = codec_for(pt, rtpmap)
    return RtpStream(
        "192.0.2.1", 4000, "198.51.100.7", 5000, 0x11223344, pt, codec, clock_rate, rtpmap
    )


def feed(stream, packets):
    """``packets``: (arrival in ms after T0, seq, timestamp[, pt[, marker]])."""
    for arrival_ms, seq, ts, *rest in packets:
        pt = rest[0] if rest else stream.payload_type
        marker = rest[1] if len(rest) > 1 else False
        stream.add(T0 + round(arrival_ms * 1000), rtp(seq, ts, pt, marker=marker))
    return stream


def regular(seqs, start_ms=0, ts0=0):
    """Packets every 20 ms whose timestamp follows the sequence number (G.711 framing)."""
    first = seqs[0]
    return [(start_ms + 20 * i, s, ts0 + 160 * ((s - first) & 0xFFFF)) for i, s in enumerate(seqs)]


class TestLoss:
    def test_no_loss(self):
        stream = feed(new_stream(), regular(list(range(100, 150))))
        assert (stream.packets, stream.lost) == (50, 0)

    def test_sequence_gap(self):
        stream = feed(new_stream(), regular([1, 2, 5, 6, 7, 10]))
        assert (stream.packets, stream.lost) == (6, 4)

    def test_reordered_packet_is_not_lost(self):
        stream = feed(new_stream(), regular([1, 2, 4, 3, 5]))
        assert (stream.packets, stream.lost) == (5, 0)

    def test_late_packet_arriving_last_lowers_expected(self):
        # Wireshark takes the last packet's sequence number as the end of the
        # stream, not the highest one: expected = 3 - 1 + 1 = 3, received 5.
        stream = feed(new_stream(), regular([1, 2, 4, 5, 3]))
        assert (stream.packets, stream.lost) == (5, -2)

    def test_duplicates_make_loss_negative(self):
        stream = feed(new_stream(), regular([1, 2, 2, 3, 3, 4]))
        assert (stream.packets, stream.lost) == (6, -2)

    def test_wrap_without_loss(self):
        stream = feed(new_stream(), regular([65533, 65534, 65535, 0, 1, 2]))
        assert (stream.packets, stream.lost) == (6, 0)

    def test_wrap_with_loss_across_it(self):
        stream = feed(new_stream(), regular([65533, 65534, 1, 2]))
        assert (stream.packets, stream.lost) == (4, 2)

    def test_wrap_when_last_before_wrap_is_lost(self):
        stream = feed(new_stream(), regular([65530, 65531, 0, 1, 2]))
        assert (stream.packets, stream.lost) == (5, 4)

    def test_several_wraps(self):
        seqs = [(40_000 + i) & 0xFFFF for i in range(3 * 65536 + 5)]
        del seqs[70_000:70_010]
        stream = feed(new_stream(), regular(seqs))
        assert (stream.packets, stream.lost) == (len(seqs), 10)

    def test_stream_starting_at_zero_wraps(self):
        stream = feed(new_stream(), regular([*range(65536), 0, 1, 2]))
        assert (stream.packets, stream.lost) == (65539, 0)

    def test_packet_older_than_the_first_is_received_but_not_expected(self):
        # Its timestamp precedes the first packet's, so it cannot start a new
        # sequence cycle; it still ends the stream at seq 9 for the moment.
        stream = feed(new_stream(), [(0, 10, 1600), (5, 9, 1440)])
        assert (stream.packets, stream.lost) == (2, -2)
        feed(stream, [(20, 11, 1760)])
        assert (stream.packets, stream.lost) == (3, -1)

    def test_reordered_packet_with_the_first_timestamp_counts_a_wrap(self):
        # Video frames share a timestamp. A packet sent just before the first
        # one captured, with the same timestamp, looks to Wireshark like the
        # start of a new sequence cycle; this is reproduced as is.
        stream = feed(new_stream(34), [(0, 500, 9000), (1, 499, 9000), (40, 501, 12600)])
        assert stream.lost == 65536 + 501 - 500 + 1 - 3

    def test_empty_and_single_packet_streams(self):
        stream = new_stream()
        assert (stream.packets, stream.lost, stream.jitter_max_ms) == (0, 0, 0.0)
        feed(stream, [(0, 7, 0)])
        assert (stream.packets, stream.lost, stream.jitter_max_ms) == (1, 0, 0.0)
        assert stream.first_us == stream.last_us == T0


class TestJitter:
    def test_regular_stream_has_no_jitter(self):
        stream = feed(new_stream(), regular(list(range(1000, 1500))))
        assert stream.jitter_max_ms == stream.jitter_mean_ms == 0.0

    def test_regular_video_stream_has_no_jitter(self):
        packets = [(40 * i, i, 3600 * i) for i in range(200)]  # 25 fps, 90 kHz clock
        stream = feed(new_stream(34), packets)
        assert stream.jitter_max_ms == stream.jitter_mean_ms == 0.0

    def test_irregular_stream_against_rfc3550_by_hand(self):
        # Arrivals 0, 20, 45, 60, 80 ms; timestamps every 20 ms.
        # D: -, 0, 5, 5, 0 ms.  J = J + (|D| - J) / 16:
        #   0, 5/16 = 0.3125, (15 * 0.3125 + 5) / 16 = 0.60546875,
        #   15 * 0.60546875 / 16 = 0.567626953125.
        # Mean over the four values: 0.371398926.
        stream = feed(
            new_stream(), [(0, 1, 0), (20, 2, 160), (45, 3, 320), (60, 4, 480), (80, 5, 640)]
        )
        assert stream.jitter_max_ms == 0.605
        assert stream.jitter_mean_ms == 0.371

    def test_jitter_sees_timestamp_wrap(self):
        ts0 = 0xFFFFFFFF - 3 * 160
        stream = feed(new_stream(), regular(list(range(1, 20)), ts0=ts0))
        assert stream.jitter_max_ms == 0.0

    def test_marker_packet_updates_jitter_but_is_not_counted(self):
        # The talkspurt starting at 100 ms gives D = 40 ms, J = 2.5 ms, but only
        # the next packet (D = 0, J = 2.34375 ms) counts towards the maximum.
        packets = [(0, 1, 0), (20, 2, 160), (40, 3, 320), (100, 4, 480, 0, True), (120, 5, 640)]
        stream = feed(new_stream(), packets)
        assert stream.jitter_max_ms == 2.344

    def test_comfort_noise_and_the_packet_after_it_are_not_counted(self):
        # CN at 70 ms: D = 20, J = 1.25; audio at 200 ms: D = 20,
        # J = 2.421875 (follows CN); audio at 220 ms: D = 0, J = 2.2705078125.
        packets = [
            (0, 1, 0),
            (20, 2, 160),
            (40, 3, 320),
            (70, 4, 400, 13),
            (200, 5, 1600, 0),
            (220, 6, 1760, 0),
        ]
        stream = feed(new_stream(), packets)
        assert stream.jitter_max_ms == 2.271
        assert stream.payload_types == [0, 13]

    def test_telephone_events_skip_jitter_but_move_the_arrival_reference(self):
        # Events at 60-100 ms keep the timestamp of the event start, so they
        # are left out; the audio at 120 ms is then compared with the event
        # at 100 ms for arrival but with the audio at 40 ms for timestamp:
        # D = |20 - 80| = 60 ms, J = 3.75 ms (Wireshark's behaviour).
        rtpmap = {101: ("telephone-event", 8000, None)}
        packets = [
            (0, 1, 0),
            (20, 2, 160),
            (40, 3, 320),
            (60, 4, 480, 101, True),
            (80, 5, 480, 101),
            (100, 6, 480, 101),
            (120, 7, 960, 8),
        ]
        stream = feed(new_stream(8, rtpmap), packets)
        assert stream.jitter_max_ms == 3.75
        assert stream.payload_types == [8, 101]
        assert (stream.payload_type, stream.codec, stream.lost) == (8, "g711A", 0)

    def test_unknown_clock_rate_gives_zero_jitter(self):
        packets = [(0, 1, 0), (25, 2, 960), (37, 3, 1920)]
        stream = feed(new_stream(111), packets)
        assert (stream.codec, stream.clock_rate) == (None, None)
        assert stream.jitter_max_ms == stream.jitter_mean_ms == 0.0

    def test_dynamic_type_uses_the_sdp_clock_rate(self):
        rtpmap = {111: ("opus", 48000, "2")}
        packets = [(20 * i, i, 960 * i) for i in range(50)]
        stream = feed(new_stream(111, rtpmap), packets)
        assert (stream.codec, stream.clock_rate) == ("opus", 48000)
        assert stream.jitter_max_ms == 0.0
        late = feed(new_stream(111, rtpmap), [(0, 1, 0), (25, 2, 960)])
        assert late.jitter_max_ms == round(5 / 16, 3)

    def test_packets_before_the_first_timestamp_are_ignored(self):
        # The straggler would give a huge D; Wireshark leaves it out entirely.
        packets = [(0, 10, 1600), (20, 11, 1760), (25, 9, 1440), (40, 12, 1920)]
        stream = feed(new_stream(), packets)
        assert stream.jitter_max_ms == 0.0


class TestSummary:
    def test_media_object(self):
        stream = feed(new_stream(), [(0, 1, 0), (20, 2, 160), (60, 4, 480)])
        assert stream.summary() == {
            "src_ip": "192.0.2.1",
            "src_port": 4000,
            "dst_ip": "198.51.100.7",
            "dst_port": 5000,
            "ssrc": 0x11223344,
            "payload_type": 0,
            "payload_types": [0],
            "codec": "g711U",
            "clock_rate": 8000,
            "packets": 3,
            "lost": 1,
            "jitter_max_ms": 0.0,
            "jitter_mean_ms": 0.0,
            "first_us": T0,
            "last_us": T0 + 60_000,
        }

    def test_first_packet_decides_the_payload_type(self):
        stream = RtpStream("192.0.2.1", 4000, "198.51.100.7", 5000, 1, 0, "g711U", 8000)
        feed(stream, [(0, 1, 0, 8), (20, 2, 160, 8)])
        assert (stream.payload_type, stream.codec, stream.clock_rate) == (8, "g711A", 8000)
        assert stream.payload_types == [8]

    def test_keeps_no_payload(self):
        stream = feed(new_stream(), regular([1, 2, 3]))
        assert not any(
            isinstance(getattr(stream, name), bytes | bytearray | memoryview)
            for name in STATE_FIELDS
        )
        assert not hasattr(stream, "__dict__")


rtp_payloads = (
    st.binary(min_size=12, max_size=80)
    .map(lambda data: bytes([0x80 | (data[0] & 0x3F)]) + data[1:])
    .filter(looks_like_rtp)
)


@given(
    st.lists(st.tuples(st.integers(0, 2**62), rtp_payloads), min_size=1, max_size=30),
    st.sampled_from([None, 0, 1, 8000, 90000, 11025]),
    st.sampled_from([None, "g711U", "telephone-event"]),
    st.dictionaries(
        st.integers(0, 127),
        st.tuples(st.text(max_size=20), st.integers(-5, 10**6), st.none()),
        max_size=4,
    ),
)
def test_add_never_raises_on_rtp(packets, clock_rate, codec, rtpmap):
    stream = RtpStream(
        "192.0.2.1", 1, "192.0.2.2", 2, 3, packets[0][1][1] & 0x7F, codec, clock_rate, rtpmap
    )
    for ts_us, payload in packets:
        stream.add(ts_us, payload)
    summary = stream.summary()
    assert summary["packets"] == len(packets)
    assert isinstance(summary["lost"], int)
    assert summary["jitter_max_ms"] >= 0.0
    assert summary["jitter_mean_ms"] >= 0.0


@given(
    st.integers(0, 65535),
    st.integers(2, 400),
    st.data(),
)
def test_loss_counts_dropped_packets_in_ordered_streams(first_seq, length, data):
    dropped = (
        data.draw(st.sets(st.integers(1, length - 2), max_size=length - 2)) if length > 2 else set()
    )
    seqs = [(first_seq + i) & 0xFFFF for i in range(length) if i not in dropped]
    stream = feed(new_stream(), [(20 * i, s, 160 * i) for i, s in enumerate(seqs)])
    assert stream.lost == len(dropped)


@pytest.mark.parametrize("clock_rate", [8000, 16000, 11025, 44100, 48000, 90000])
def test_regular_stream_has_no_jitter_at_any_clock_rate(clock_rate):
    # Wireshark would report a little jitter at 11025 and 44100 Hz, as it
    # divides by a whole number of ticks per ms. 20 ms is not a whole number
    # of samples at 11025 Hz; that stream sends 40 ms packets.
    spacing_ms = 40 if clock_rate == 11025 else 20
    step = clock_rate * spacing_ms // 1000
    stream = RtpStream("192.0.2.1", 1, "192.0.2.2", 2, 3, 96, "x", clock_rate)
    feed(stream, [(spacing_ms * i, i, step * i, 96) for i in range(100)])
    assert stream.jitter_max_ms == 0.0
