"""TCP stream reassembly: ordering, retransmissions, holes, bounds and cleanup."""

from __future__ import annotations

from voiplog.packet.tcp import TCP_FIN, TCP_RST, TCP_SYN, TcpReassembler, TcpSettings

A = (b"\x0a\0\0\x01", 40000, b"\x0a\0\0\x02", 5060)
B = (A[2], A[3], A[0], A[1])
ACK = 0x10


class Weirds(list):
    def __call__(self, kind: str) -> None:
        self.append(kind)


class Table(TcpReassembler):
    """Returns only the chunks' bytes, for the tests about order (times: see below)."""

    def segment(self, *args):
        return [data for _, data in super().segment(*args)]

    def expire(self, now_us):
        return [(d, [data for _, data in chunks]) for d, chunks in super().expire(now_us)]

    def flush(self):
        return [(d, [data for _, data in chunks]) for d, chunks in super().flush()]


def _table(**settings) -> tuple[TcpReassembler, Weirds]:
    weirds = Weirds()
    return Table(TcpSettings(**settings), weirds), weirds


def _stream(table, seq0=1000, syn=True):
    direction = table.follow(A, 0)
    if syn:
        assert table.segment(direction, seq0 - 1, TCP_SYN, b"", 0) == []
    return direction


def test_in_order_segments_come_out_at_once():
    table, weirds = _table()
    d = _stream(table)
    assert table.segment(d, 1000, ACK, b"hello ", 1) == [b"hello "]
    assert table.segment(d, 1006, ACK, b"world", 2) == [b"world"]
    assert weirds == []


def test_out_of_order_segments_wait_for_the_hole():
    table, weirds = _table()
    d = _stream(table)
    assert table.segment(d, 1006, ACK, b"world", 1) == []
    assert table.segment(d, 1011, ACK, b"!", 2) == []
    assert table.segment(d, 1000, ACK, b"hello ", 3) == [b"hello ", b"world", b"!"]
    assert weirds == []


def test_retransmissions_deliver_only_new_bytes():
    table, weirds = _table()
    d = _stream(table)
    table.segment(d, 1000, ACK, b"hello ", 1)
    assert table.segment(d, 1000, ACK, b"hello ", 2) == []
    assert table.segment(d, 1003, ACK, b"lo world", 3) == [b"world"]
    assert weirds == ["tcp.retransmission"]


def test_held_segment_retransmitted_longer_replaces_the_shorter():
    table, _ = _table()
    d = _stream(table)
    table.segment(d, 1006, ACK, b"wo", 1)
    table.segment(d, 1006, ACK, b"world", 2)
    assert table.segment(d, 1000, ACK, b"hello ", 3) == [b"hello ", b"world"]


def test_overlapping_held_segments_are_trimmed():
    table, _ = _table()
    d = _stream(table)
    table.segment(d, 1006, ACK, b"world", 1)
    table.segment(d, 1008, ACK, b"rld and more", 2)
    assert table.segment(d, 1000, ACK, b"hello ", 3) == [b"hello ", b"world", b" and more"]


def test_joining_mid_stream_reports_the_unknown_start():
    table, _ = _table()
    d = table.follow(A, 0)
    assert table.segment(d, 5555, ACK, b"ing rest", 1) == [None, b"ing rest"]
    assert table.segment(d, 5563, ACK, b"more", 2) == [b"more"]


def test_sequence_numbers_wrap_around():
    table, _ = _table()
    d = _stream(table, seq0=2**32 - 3)
    assert table.segment(d, 2, ACK, b"def", 1) == []
    assert table.segment(d, 2**32 - 3, ACK, b"abcde", 2) == [b"abcde", b"def"]


def test_hole_given_up_after_the_gap_timeout():
    table, weirds = _table(gap_timeout_us=5_000_000)
    d = _stream(table)
    table.segment(d, 1010, ACK, b"after the loss", 1_000_000)
    assert table.expire(5_999_999) == []
    ((direction, chunks),) = table.expire(6_000_000)
    assert direction is d
    assert chunks == [None, b"after the loss"]
    assert weirds == ["tcp.gap"]
    assert table.segment(d, 1024, ACK, b"next", 7_000_000) == [b"next"]


def test_hole_given_up_when_too_much_is_held():
    table, weirds = _table(max_held_bytes=10)
    d = _stream(table)
    assert table.segment(d, 1100, ACK, b"12345", 1) == []
    assert table.segment(d, 1105, ACK, b"678901", 2) == [None, b"12345", b"678901"]
    assert weirds == ["tcp.gap"]


def test_hole_given_up_when_too_many_segments_are_held():
    table, weirds = _table(max_held_segments=3)
    d = _stream(table)
    out = []
    for i in range(4):
        out += table.segment(d, 1100 + 2 * i, ACK, b"x", i)  # holes between them too
    assert out[0] is None and out[1] == b"x"
    assert weirds[0] == "tcp.gap"


def test_flush_releases_everything_held():
    table, _ = _table()
    d = _stream(table)
    table.segment(d, 1010, ACK, b"b", 1)
    table.segment(d, 1020, ACK, b"c", 1)
    ((_, chunks),) = table.flush()
    assert chunks == [None, b"b", None, b"c"]
    assert table.flush() == []


def test_rst_drops_the_connection():
    table, _ = _table()
    d = _stream(table)
    table.segment(d, 1000, TCP_RST, b"", 1)
    assert table.get(A) is None and table.get(B) is None
    assert table.connections == 0


def test_fin_both_ways_drops_the_connection():
    table, _ = _table()
    d = _stream(table)
    assert table.segment(d, 1000, TCP_FIN | ACK, b"bye", 1) == [b"bye"]
    assert table.get(A) is d
    back = table.get(B)
    table.segment(back, 7000, TCP_FIN | ACK, b"", 2)
    assert table.get(A) is None and table.connections == 0


def test_connections_are_bounded_least_recent_first():
    table, weirds = _table(max_connections=2)
    keys = [(A[0], 40000 + i, A[2], 5060) for i in range(3)]
    first = table.follow(keys[0], 0)
    table.follow(keys[1], 1)
    table.segment(first, 1, ACK, b"x", 2)  # the first is now the most recent
    table.follow(keys[2], 3)
    assert table.get(keys[1]) is None
    assert table.get(keys[0]) is first and table.get(keys[2]) is not None
    assert weirds == ["tcp.stream_evicted"]


def test_idle_connections_time_out():
    table, weirds = _table(idle_timeout_us=10_000_000)
    d = _stream(table)
    table.segment(d, 1000, ACK, b"x", 1_000_000)
    table.expire(10_999_999)
    assert table.get(A) is d
    table.expire(11_000_000)
    assert table.get(A) is None and table.get(B) is None
    assert weirds == ["tcp.stream_timeout"]


def test_reverse_direction_activity_keeps_the_connection():
    table, _ = _table(idle_timeout_us=10_000_000)
    d = _stream(table)
    table.segment(table.get(B), 1, ACK, b"x", 9_000_000)
    table.expire(11_000_000)
    assert table.get(A) is d


def test_chunks_carry_the_capture_time_of_their_segment():
    table = TcpReassembler()
    d = table.follow(A, 0)
    table.segment(d, 999, TCP_SYN, b"", 0)
    assert table.segment(d, 1003, ACK, b"def", 10) == []
    assert table.segment(d, 1000, ACK, b"abc", 20) == [(20, b"abc"), (10, b"def")]
    table.segment(d, 1100, ACK, b"late", 30)
    ((_, chunks),) = table.flush()
    assert chunks == [(30, None), (30, b"late")]
