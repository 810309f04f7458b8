"""SIP over stream transports: framing, resynchronisation, connection following, WebSocket."""

from __future__ import annotations

import pytest

from tests.packet.test_websocket import SWITCHED, UPGRADE, frame
from tests.sip.samples import BYE, INVITE, OK_200
from voiplog.sip import SipStreamReader, SipStreamTable, split_websocket_message

CLIENT = (b"\x0a\0\0\x01", 40000, b"\x0a\0\0\x02", 5060)
SERVER = (CLIENT[2], CLIENT[3], CLIENT[0], CLIENT[1])
ACK, SYN = 0x10, 0x02


class Recorder:
    def __init__(self) -> None:
        self.weird: list[str] = []
        self.errors: list[str] = []

    def on_weird(self, kind: str) -> None:
        self.weird.append(kind)

    def on_error(self, exc) -> None:
        self.errors.append(exc.kind)


def _reader(**kw) -> tuple[SipStreamReader, Recorder]:
    rec = Recorder()
    return SipStreamReader(on_weird=rec.on_weird, on_error=rec.on_error, **kw), rec


def test_several_messages_in_one_chunk_with_keepalives():
    reader, rec = _reader()
    assert reader.feed(b"\r\n\r\n" + INVITE + b"\r\n\r\n" + BYE) == [INVITE, BYE]
    assert reader.buffered == 0 and rec.weird == []


def test_one_message_across_chunks():
    reader, _ = _reader()
    data = INVITE + OK_200
    out = []
    for i in range(0, len(data), 7):
        out += reader.feed(data[i : i + 7])
    assert out == [INVITE, OK_200]


def test_mid_stream_start_resynchronises_on_a_start_line():
    reader, rec = _reader(synced=False)
    tail = INVITE[len(INVITE) // 2 :]  # the end of a message whose start was not captured
    assert reader.feed(tail + BYE) == [BYE]
    assert rec.weird == ["sip.tcp_resync"]


def test_body_line_that_looks_like_a_start_line_is_skipped_when_synced():
    sipfrag = b"SIP/2.0 200 OK\r\n"
    notify = (
        b"NOTIFY sip:a@b SIP/2.0\r\nCall-ID: n1\r\nCSeq: 1 NOTIFY\r\n"
        b"Content-Type: message/sipfrag\r\nContent-Length: %d\r\n\r\n" % len(sipfrag)
    ) + sipfrag
    reader, _ = _reader()
    assert reader.feed(notify + BYE) == [notify, BYE]


def test_lost_bytes_drop_the_partial_message_and_resynchronise():
    reader, rec = _reader()
    assert reader.feed(INVITE[:100]) == []
    assert reader.feed(None) == []
    assert rec.weird == ["sip.tcp_partial_message"]
    assert reader.feed(INVITE[300:] + OK_200) == [OK_200]
    assert rec.weird == ["sip.tcp_partial_message", "sip.tcp_resync"]


def test_start_line_cut_between_chunks_while_resynchronising():
    reader, _ = _reader(synced=False)
    assert reader.feed(b"garbage\r\nINVITE sip:+49301") == []
    assert reader.feed(INVITE[len(b"INVITE sip:+49301") :]) == [INVITE]


def test_bad_content_length_is_a_parse_error_then_reading_goes_on():
    bad = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m\r\nContent-Length: abc\r\n\r\n"
    reader, rec = _reader()
    assert reader.feed(bad + BYE) == [BYE]
    assert rec.errors == ["sip.content_length"]


def test_buffer_is_bounded():
    huge = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m\r\nContent-Length: 99999999\r\n\r\n"
    reader, rec = _reader(max_buffer=4096)
    reader.feed(huge)
    out = []
    for _ in range(10):
        out += reader.feed(b"x" * 1000)
    assert out == []
    assert reader.buffered <= 4096 + 1000
    assert "sip.tcp_buffer_overflow" in rec.weird
    assert reader.feed(b"\r\n" + BYE) == [BYE]


def test_resync_never_holds_more_than_a_line():
    reader, _ = _reader(synced=False)
    for _ in range(100):
        reader.feed(b"y" * 1000)
    assert reader.buffered <= 4096


def test_split_websocket_message():
    assert split_websocket_message(INVITE + BYE) == [INVITE, BYE]
    no_length = b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m\r\n\r\nhello"
    assert split_websocket_message(no_length) == [no_length]


# -- connection following ---------------------------------------------------------------


class Table(SipStreamTable):
    """Leaves the capture times out, for the tests about content (times: see below)."""

    def segment(self, *args):
        return [(message, transport) for _, _, message, transport in super().segment(*args)]

    def expire(self, now_us):
        return [(key, m, t) for key, _, m, t in super().expire(now_us)]

    def flush(self):
        return [(key, m, t) for key, _, m, t in super().flush()]


def _table(ports=(5060,)) -> tuple[SipStreamTable, Recorder]:
    rec = Recorder()
    return Table(ports, on_weird=rec.on_weird, on_error=rec.on_error), rec


def _key(port: int, server_port: int = 5060) -> tuple:
    return (CLIENT[0], port, CLIENT[2], server_port)


def test_sip_over_tcp_on_any_port_is_found_by_its_start_line():
    table, _ = _table()
    key = _key(40001, 15060)
    assert table.segment(key, 100, ACK, INVITE[:200], 1) == []
    assert table.segment(key, 300, ACK, INVITE[200:], 2) == [(INVITE, "tcp")]
    back = (key[2], key[3], key[0], key[1])
    assert table.segment(back, 7000, ACK, OK_200, 3) == [(OK_200, "tcp")]


def test_other_tcp_traffic_is_not_followed():
    table, _ = _table()
    assert table.segment(_key(40002, 80), 1, ACK, b"GET / HTTP/1.1\r\n\r\n", 1) == []
    assert table.tcp.connections == 0


def test_tls_on_a_sip_port_is_left_alone():
    table, _ = _table((5061,))
    key = _key(40003, 5061)
    hello = b"\x16\x03\x01\x02\x00" + b"\x01" * 100
    assert table.segment(key, 1, ACK, hello, 1) == []
    assert table.segment(key, 106, ACK, INVITE, 2) == []  # encrypted in reality


def test_syn_on_a_sip_port_starts_following():
    table, _ = _table()
    key = _key(40004)
    assert table.segment(key, 999, SYN, b"", 1) == []
    assert table.tcp.connections == 1
    assert table.segment(key, 1000, ACK, BYE, 2) == [(BYE, "tcp")]


def test_reordered_segments_come_out_in_order():
    table, _ = _table()
    key = _key(40005)
    data = INVITE + BYE
    table.segment(key, 999, SYN, b"", 0)
    cut = len(INVITE) + 10
    assert table.segment(key, 1000 + cut, ACK, data[cut:], 1) == []
    assert table.segment(key, 1000, ACK, data[:cut], 2) == [(INVITE, "tcp"), (BYE, "tcp")]


def test_gap_given_up_on_expiry_resynchronises():
    table, rec = _table()
    key = _key(40006)
    table.segment(key, 999, SYN, b"", 0)
    table.segment(key, 1000, ACK, INVITE[:50], 1)
    # INVITE[50:] lost for good; the BYE comes after it.
    table.segment(key, 1000 + len(INVITE), ACK, BYE, 2)
    released = table.expire(10_000_000)
    assert released == [(key, BYE, "tcp")]
    assert "tcp.gap" in rec.weird


def test_flush_reads_what_was_held_at_end_of_input():
    table, _ = _table()
    key = _key(40007)
    table.segment(key, 999, SYN, b"", 0)
    table.segment(key, 1000 + len(INVITE), ACK, BYE, 1)
    assert table.flush() == [(key, BYE, "tcp")]


@pytest.mark.parametrize("port", [80, 5062, 8443])
def test_sip_over_websocket(port):
    table, rec = _table()
    key = _key(40008, port)
    back = (key[2], key[3], key[0], key[1])
    assert table.segment(key, 1, ACK, UPGRADE, 1) == []
    assert table.segment(back, 1, ACK, SWITCHED + frame(b"", opcode=9), 2) == []
    two = frame(INVITE[:100], fin=False, mask=b"abcd") + frame(INVITE[100:], 0, mask=b"efgh")
    assert table.segment(key, 1 + len(UPGRADE), ACK, two, 3) == [(INVITE, "ws")]
    both = frame(OK_200 + BYE)
    assert table.segment(back, 1 + len(SWITCHED) + 2, ACK, both, 4) == [
        (OK_200, "ws"),
        (BYE, "ws"),
    ]
    assert rec.errors == [] and rec.weird == []


def test_websocket_upgrade_refused_stops_reading():
    table, rec = _table()
    key = _key(40009, 80)
    back = (key[2], key[3], key[0], key[1])
    table.segment(key, 1, ACK, UPGRADE, 1)
    table.segment(back, 1, ACK, b"HTTP/1.1 400 Bad Request\r\n\r\n", 2)
    assert table.segment(key, 1 + len(UPGRADE), ACK, frame(INVITE, mask=b"abcd"), 3) == []
    assert rec.errors == ["ws.upgrade_refused"]


def test_websocket_framing_error_stops_reading_the_connection():
    table, rec = _table()
    key = _key(40010, 80)
    back = (key[2], key[3], key[0], key[1])
    table.segment(key, 1, ACK, UPGRADE, 1)
    table.segment(back, 1, ACK, SWITCHED, 2)
    assert table.segment(key, 1 + len(UPGRADE), ACK, b"\xc1\x01x", 3) == []
    assert rec.errors == ["ws.extension"]
    assert table.segment(back, 1 + len(SWITCHED), ACK, frame(OK_200), 4) == []


def test_websocket_for_another_subprotocol_is_ignored():
    table, rec = _table()
    key = _key(40011, 80)
    chat = UPGRADE.replace(b"Protocol: sip", b"Protocol: chat")
    assert table.segment(key, 1, ACK, chat, 1) == []
    assert table.segment(key, 1 + len(chat), ACK, frame(INVITE, mask=b"abcd"), 2) == []
    assert rec.errors == [] and rec.weird == []  # not ours: nothing to report
    # Still followed, for its end, but nothing of it is held.
    assert table.segment(key, 99_999, ACK, b"x" * 1000, 3) == []
    assert table.tcp.get(key).held_bytes == 0


def test_message_is_dated_by_the_latest_segment_it_needed():
    table = SipStreamTable((5060,))
    key = _key(40012)
    table.segment(key, 999, SYN, b"", 0)
    cut = 100
    assert table.segment(key, 1000 + cut, ACK, INVITE[cut:] + BYE, 50) == []
    assert table.segment(key, 1000, ACK, INVITE[:cut], 70) == [
        (key, 70, INVITE, "tcp"),
        (key, 70, BYE, "tcp"),
    ]


def test_message_behind_a_given_up_hole_keeps_its_capture_time():
    table = SipStreamTable((5060,))
    key = _key(40013)
    table.segment(key, 999, SYN, b"", 0)
    table.segment(key, 1000 + 40, ACK, BYE, 1_000_000)
    assert table.expire(7_000_000) == [(key, 1_000_000, BYE, "tcp")]


def test_acknowledged_hole_is_given_up_at_once():
    """The server acknowledges bytes the capture never saw: the client's held BYE is
    read right away, in the client's direction, dated by its own capture time."""
    table = SipStreamTable((5060,))
    key = _key(40014)
    back = (key[2], key[3], key[0], key[1])
    table.segment(key, 999, SYN, b"", 0)
    table.segment(key, 1000 + 40, ACK, BYE, 10)  # 40 bytes before it never captured
    acked = 1000 + 40 + len(BYE)
    assert table.segment(back, 5000, ACK, OK_200, 20, acked) == [
        (key, 10, BYE, "tcp"),
        (back, 20, OK_200, "tcp"),
    ]


def test_acknowledgement_short_of_the_hole_changes_nothing():
    table = SipStreamTable((5060,))
    key = _key(40015)
    back = (key[2], key[3], key[0], key[1])
    table.segment(key, 999, SYN, b"", 0)
    table.segment(key, 1000 + 40, ACK, BYE, 10)
    assert table.segment(back, 5000, ACK, b"", 20, 1000) == []
    assert table.segment(back, 5000, ACK, b"", 20, 1010) == []  # the hole partly acked
