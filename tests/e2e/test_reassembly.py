"""End to end: a call whose SIP travels in IP fragments, TCP streams and WebSocket.

Each capture carries the same call as a plain UDP reference; the record must be the
reference's, field for field, except what the transport changes (named in each test).
"""

from __future__ import annotations

import random

import pytest

from tests.sipcraft import T0, make_dialog, sorted_frames
from tests.streamcraft import (
    WS_SWITCHED,
    WS_UPGRADE,
    ip_fragments,
    tcp_stream,
    websocket_wrap,
)
from voiplog.pipeline import Pipeline


def _call(n: int = 70, **kw):
    d = make_dialog(n, **kw)
    d.basic_answered(T0, talk_s=1.0)
    return sorted_frames(d)


@pytest.fixture
def reference(replayer):
    (rec,) = replayer.records(_call())
    assert rec["disposition"] == "answered" and len(rec["media"]) == 2
    return rec


def _pipeline(frames):
    records = []
    pipeline = Pipeline(lambda r: records.append(r.to_dict()))
    pipeline.feed((ts, 1, frame) for ts, frame in frames)
    pipeline.finish()
    return records, pipeline.stats


# -- IP fragments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(lambda p: p, id="in_order"),
        pytest.param(lambda p: p[::-1], id="reversed"),
        pytest.param(lambda p: random.Random(3).sample(p, len(p)), id="shuffled"),
        pytest.param(lambda p: [p[0], *p, p[-1]], id="duplicates"),
    ],
)
def test_sip_in_ipv4_fragments(replayer, reference, order):
    assert replayer.records(ip_fragments(_call(), 256, order=order)) == [reference]


def test_sip_in_tiny_fragments(replayer, reference):
    assert replayer.records(ip_fragments(_call(), 64)) == [reference]


def test_sip_in_ipv6_fragments(replayer):
    frames = _call(71, caller_ip="2001:db8:1::10", callee_ip="2001:db8:2::50")
    (expected,) = replayer.records(frames)
    assert replayer.records(ip_fragments(frames, 256, order=lambda p: p[::-1])) == [expected]


def test_overlapping_fragments_are_not_read(replayer):
    """An INVITE whose fragments overlap with other bytes is discarded, not guessed at."""
    frames = _call()

    def evil(pieces):
        forged = pieces[1].copy()
        forged.frag -= 1  # 8 bytes earlier, over the end of the first fragment
        forged.load = b"X" * len(forged.load)
        return [pieces[0], forged, *pieces[1:]]

    invite_only = [frames[0]]
    records, stats = _pipeline(ip_fragments(invite_only, 256, order=evil))
    assert records == []
    assert stats.weird["ip.fragment_overlap"] == 1
    assert stats.reassembled == 0


def test_fragment_reassembly_counts(replayer):
    records, stats = _pipeline(ip_fragments(_call(), 256))
    assert len(records) == 1
    # INVITE, 100, 180, 200, ACK, BYE and its 200, each rebuilt from fragments.
    assert stats.reassembled == stats.sip_messages == 7
    assert not stats.weird


# -- TCP --------------------------------------------------------------------------------


def _as_tcp(reference: dict, **changes) -> dict:
    return {**reference, "transport": "tcp", **changes}


def test_tcp_with_handshake_and_whole_segments(replayer, reference):
    assert replayer.records(tcp_stream(_call())) == [_as_tcp(reference)]


def test_tcp_messages_across_segments_reordered(replayer, reference):
    frames = tcp_stream(
        _call(),
        split={0: [40, 300, 500], 3: [10]},
        order={0: [2, 0, 3, 1], 3: [1, 0]},
    )
    assert replayer.records(frames) == [_as_tcp(reference)]


def test_tcp_retransmissions_and_keepalives(replayer, reference):
    frames = tcp_stream(
        _call(),
        split={0: [100]},
        retransmit={0: 300_000, 2: 200_000},
        keepalive_before=frozenset({1, 4}),
    )
    assert replayer.records(frames) == [_as_tcp(reference)]


def test_tcp_capture_starting_mid_stream(replayer, reference):
    tail = b"Content-Length: 0\r\n\r\n"  # end of a message sent before the capture began
    frames = tcp_stream(_call(), handshake=False, prefix=tail)
    _records, stats = _pipeline(frames)
    assert replayer.records(frames) == [_as_tcp(reference)]
    assert stats.weird["sip.tcp_resync"] == 1


def test_tcp_with_a_lost_segment(replayer, reference):
    """The capture missed the 100 Trying: what follows it waits in the hole until the
    caller's next segment acknowledges it, then is read, dated by its own capture time."""
    frames = tcp_stream(_call(), lose=frozenset({(1, 0)}))
    assert replayer.records(frames) == [_as_tcp(reference)]
    _records, stats = _pipeline(frames)
    assert stats.weird["tcp.gap"] == 1


def test_tcp_lost_piece_of_a_message_drops_only_that_message(replayer, reference):
    """Half of the 180 Ringing is lost: the 180 is not read, everything else is."""
    frames = tcp_stream(_call(), split={2: [60]}, lose=frozenset({(2, 1)}))
    (rec,) = replayer.records(frames)
    assert rec == _as_tcp(reference, ringing_at=None, setup_ms=1000)


def test_sip_over_tcp_on_any_port(replayer, reference):
    frames = tcp_stream(_call(), client_port=41234, server_port=15060)
    expected = _as_tcp(reference, caller_port=41234, callee_port=15060)
    expected.pop("uid")
    expected.pop("session_uid")
    (rec,) = replayer.records(frames)
    assert rec.pop("session_uid") == rec.pop("uid")  # a session of one leg
    assert rec == expected


# -- WebSocket --------------------------------------------------------------------------


def test_sip_over_websocket(replayer, reference):
    frames = tcp_stream(
        _call(),
        client_port=52000,
        server_port=8080,
        wrap=websocket_wrap,
        client_first=WS_UPGRADE,
        server_first=WS_SWITCHED,
        split={0: [7, 200]},  # frames cut across segments too
    )
    expected = {
        **reference,
        "transport": "ws",
        "caller_port": 52000,
        "callee_port": 8080,
    }
    expected.pop("uid")
    expected.pop("session_uid")
    (rec,) = replayer.records(frames)
    assert rec.pop("session_uid") == rec.pop("uid")  # a session of one leg
    assert rec == expected


def test_sip_over_websocket_without_the_sip_subprotocol_is_not_read(replayer):
    chat = WS_UPGRADE.replace(b"Protocol: sip", b"Protocol: chat")
    frames = tcp_stream(
        _call(),
        client_port=52001,
        server_port=8080,
        wrap=websocket_wrap,
        client_first=chat,
        server_first=WS_SWITCHED.replace(b"Protocol: sip", b"Protocol: chat"),
    )
    records, stats = _pipeline(frames)
    assert [r["kind"] for r in records] == ["media"] * len(records)
    assert not stats.parse_errors  # a WebSocket for something else is not an error


def test_sip_over_tcp_on_ipv6_with_reordering(replayer):
    frames = _call(72, caller_ip="2001:db8:1::10", callee_ip="2001:db8:2::50")
    (expected,) = replayer.records(frames)
    tcp = tcp_stream(frames, split={0: [50, 400]}, order={0: [2, 1, 0]})
    assert replayer.records(tcp) == [{**expected, "transport": "tcp"}]
