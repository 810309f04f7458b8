"""End to end: the same call through every link layer and capture format gives the same record."""

from __future__ import annotations

import struct

import pytest

from tests.pcapwriter import write_pcapng
from tests.sipcraft import T0, make_dialog, sorted_frames


def _call_frames(**kw):
    d = make_dialog(40, **kw)
    d.basic_answered(T0, talk_s=1.0)
    return sorted_frames(d)


def _vlan(frame: bytes, *tags: tuple[int, int]) -> bytes:
    inserted = b"".join(struct.pack(">HH", tpid, vid) for tpid, vid in tags)
    return frame[:12] + inserted + frame[12:]


def _sll(frame: bytes) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, frame[6:12] + b"\0\0", 0x0800) + frame[14:]


def _sll2(frame: bytes) -> bytes:
    return struct.pack(">HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, frame[6:12] + b"\0\0") + frame[14:]


def _summary(record: dict) -> tuple:
    media = tuple((m["src_port"], m["dst_port"], m["packets"], m["lost"]) for m in record["media"])
    return (
        record["call_id"],
        record["disposition"],
        record["duration_s"],
        record["started_at"],
        media,
    )


@pytest.fixture
def reference(replayer):
    (rec,) = replayer.records(_call_frames())
    assert len(rec["media"]) == 2
    return _summary(rec)


@pytest.mark.parametrize(
    ("name", "wrap", "linktype"),
    [
        ("vlan", lambda f: _vlan(f, (0x8100, 100)), 1),
        ("qinq", lambda f: _vlan(f, (0x88A8, 200), (0x8100, 100)), 1),
        ("9100", lambda f: _vlan(f, (0x9100, 300), (0x8100, 100)), 1),
        ("sll", _sll, 113),
        ("sll2", _sll2, 276),
        ("raw", lambda f: f[14:], 101),
        ("null", lambda f: struct.pack("<I", 2) + f[14:], 0),
    ],
)
def test_link_layers_give_the_same_record(replayer, reference, name, wrap, linktype):
    frames = [(ts, wrap(frame)) for ts, frame in _call_frames()]
    (rec,) = replayer.records(frames, linktype=linktype)
    assert _summary(rec) == reference, name


@pytest.mark.parametrize(("nanosecond", "big_endian"), [(True, False), (False, True), (True, True)])
def test_pcap_variants(replayer, reference, nanosecond, big_endian):
    (rec,) = replayer.records(_call_frames(), nanosecond=nanosecond, big_endian=big_endian)
    assert _summary(rec) == reference


def test_pcapng_with_two_link_types(replayer, reference, tmp_path):
    frames = _call_frames()
    # SIP on an Ethernet interface with µs timestamps, RTP on a raw-IP one with ns.
    packets = []
    for ts, frame in frames:
        if frame[14 + 9] == 17 and struct.unpack(">H", frame[36:38])[0] == 5060:
            packets.append((0, ts, frame))
        else:
            packets.append((1, ts, frame[14:]))
    path = tmp_path / "two-links.pcapng"
    write_pcapng(path, interfaces=[(1, None), (101, 9)], packets=packets)
    (rec,) = replayer.run(path)
    assert _summary(rec) == reference


def test_ipv6_call(replayer):
    frames = _call_frames(caller_ip="2001:db8::10", callee_ip="2001:db8:ffff::50")
    (rec,) = replayer.records(frames)
    assert rec["caller_ip"] == "2001:db8::10"
    assert rec["callee_ip"] == "2001:db8:ffff::50"
    assert rec["caller_uri"] == "sip:1040@[2001:db8::10]"
    assert rec["disposition"] == "answered"
    assert [m["packets"] for m in rec["media"]] == [50, 50]
    assert {m["src_ip"] for m in rec["media"]} == {"2001:db8::10", "2001:db8:ffff::50"}


def test_ipv6_call_in_vlan(replayer):
    frames = [
        (ts, _vlan(f, (0x8100, 7)))
        for ts, f in _call_frames(caller_ip="2001:db8::10", callee_ip="2001:db8:ffff::50")
    ]
    (rec,) = replayer.records(frames)
    assert [m["packets"] for m in rec["media"]] == [50, 50]


def test_multiple_capture_files_are_one_stream(replayer, reference):
    frames = _call_frames()
    half = len(frames) // 2
    first = replayer.write(frames[:half])
    second = replayer.write(frames[half:])
    (rec,) = replayer.run(first, second)
    assert _summary(rec) == reference
