"""Payload type to codec name and clock rate."""

import pytest

from voiplog.rtp import STATIC_PAYLOAD_TYPES, codec_for


@pytest.mark.parametrize(
    ("pt", "expected"),
    [
        (0, ("g711U", 8000)),
        (3, ("GSM", 8000)),
        (4, ("g723", 8000)),
        (5, ("DVI4 8k", 8000)),
        (6, ("DVI4 16k", 16000)),
        (8, ("g711A", 8000)),
        (9, ("g722", 8000)),  # RFC 3551 4.5.2: 8000 Hz RTP clock for a 16 kHz codec
        (10, ("L16", 44100)),
        (13, ("CN", 8000)),
        (14, ("MPA", 90000)),
        (18, ("g729", 8000)),
        (26, ("JPEG", 90000)),
        (31, ("h261", 90000)),
        (34, ("h263", 90000)),
    ],
)
def test_static_payload_types(pt, expected):
    assert STATIC_PAYLOAD_TYPES[pt] == expected
    assert codec_for(pt, None) == expected


def test_unassigned_and_dynamic_types_are_unknown_without_sdp():
    assert codec_for(20, None) == (None, None)
    assert codec_for(96, None) == (None, None)
    assert codec_for(101, {}) == (None, None)
    assert codec_for(127, {96: ("opus", 48000, "2")}) == (None, None)


def test_rtpmap_describes_dynamic_types():
    rtpmap = {
        96: ("opus", 48000, "2"),
        97: ("speex", 16000, None),
        101: ("telephone-event", 8000, None),
    }
    assert codec_for(96, rtpmap) == ("opus", 48000)
    assert codec_for(97, rtpmap) == ("speex", 16000)
    assert codec_for(101, rtpmap) == ("telephone-event", 8000)


def test_rtpmap_wins_over_the_static_table():
    assert codec_for(0, {0: ("PCMU", 8000, None)}) == ("PCMU", 8000)
    assert codec_for(8, {0: ("PCMU", 8000, None)}) == ("g711A", 8000)


def test_rtpmap_without_a_usable_rate_gives_no_clock():
    assert codec_for(99, {99: ("mystery", 0, None)}) == ("mystery", None)


def test_static_table_covers_every_rfc3551_assignment():
    assigned = {0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 25, 26, 28}
    assigned |= {31, 32, 33, 34}
    assert assigned <= STATIC_PAYLOAD_TYPES.keys()
    assert all(pt < 96 for pt in STATIC_PAYLOAD_TYPES)
    assert all(rate > 0 for _, rate in STATIC_PAYLOAD_TYPES.values())
