"""SIP over SCTP: DATA chunks out of crafted packets, several per packet, fragmented
user messages reassembled in any order, retransmissions dropped, limits kept; and
whole calls through the pipeline, also from the public corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.sctp import SCTP, SCTPChunkData, SCTPChunkSACK

from tests.sipcraft import ETHER, T0, make_dialog
from voiplog.capture import open_capture
from voiplog.packet import decode
from voiplog.packet.sctp import SctpError, SctpReassembler, data_chunks
from voiplog.packet.tcp import TcpSettings
from voiplog.pipeline import Pipeline

CORPUS_SCTP = Path("/work/shared/corpus/pcaps/heplify__sip_sctp.pcap")
KEY = (b"\x0a\0\0\1", 5060, b"\x0a\0\0\2", 5060)


def data(tsn: int, payload: bytes, begin: bool = True, end: bool = True, sid: int = 0):
    return SCTPChunkData(tsn=tsn, stream_id=sid, proto_id=0, beginning=begin, ending=end,
                         data=payload)  # fmt: skip


def chunks(*layers) -> bytes:
    """The bytes after the common header, as `decode` hands them on."""
    packet = SCTP(sport=5060, dport=5060, tag=1)
    for layer in layers:
        packet = packet / layer
    return bytes(packet)[12:]


def frame(src: str, dst: str, *layers) -> bytes:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    packet = SCTP(sport=5060, dport=5060, tag=7)
    for layer in layers:
        packet = packet / layer
    return bytes(ETHER / ip / packet)


def test_several_chunks_in_one_packet():
    found, idata = data_chunks(
        chunks(data(1, b"first"), SCTPChunkSACK(cumul_tsn_ack=9), data(2, b"second!", sid=3))
    )
    assert idata == 0
    assert [(tsn, sid, payload) for tsn, sid, _, _, payload in found] == [
        (1, 0, b"first"),
        (2, 3, b"second!"),
    ]
    reassembler = SctpReassembler()
    assert reassembler.packet(KEY, chunks(data(1, b"a"), data(2, b"bb")), T0) == [
        (0, b"a"),
        (0, b"bb"),
    ]


def test_fragments_reassembled_in_any_order_and_retransmissions_dropped():
    weird = []
    reassembler = SctpReassembler(on_weird=weird.append)
    parts = [data(10, b"INV", end=False), data(11, b"ITE ", False, False), data(12, b"x", False)]
    assert reassembler.packet(KEY, chunks(parts[1]), T0) == []
    assert reassembler.packet(KEY, chunks(parts[2]), T0 + 1) == []
    assert reassembler.packet(KEY, chunks(parts[0]), T0 + 2) == [(0, b"INVITE x")]
    assert reassembler.packet(KEY, chunks(parts[0]), T0 + 3) == []
    assert weird == ["sctp.retransmission"]
    # Wrapping TSNs, and the same TSNs in the other direction are another message.
    wrap = [data(0xFFFFFFFF, b"A", end=False), data(0, b"B", begin=False)]
    assert reassembler.packet(KEY, chunks(*wrap), T0 + 4) == [(0, b"AB")]
    back = (KEY[2], KEY[3], KEY[0], KEY[1])
    assert reassembler.packet(back, chunks(parts[0], parts[1], parts[2]), T0) == [(0, b"INVITE x")]


def test_held_fragments_are_bounded_and_expire():
    weird = []
    settings = TcpSettings(max_held_bytes=3000, gap_timeout_us=1_000_000, max_connections=2)
    reassembler = SctpReassembler(settings, weird.append)
    for tsn in range(5):
        reassembler.packet(KEY, chunks(data(tsn, b"x" * 1000, tsn == 0, False)), T0)
    assert weird.count("sctp.reassembly_overflow") == 1
    reassembler.packet(KEY, chunks(data(100, b"y", end=False)), T0)
    reassembler.expire(T0 + 2_000_000)
    assert "sctp.fragments_expired" in weird
    assert reassembler.packet(KEY, chunks(data(101, b"z", begin=False)), T0 + 2_000_001) == []
    for port in range(3):  # a third direction evicts the least recent
        reassembler.packet((b"1", port, b"2", 1), chunks(data(1, b"q", end=False)), T0)
    assert len(reassembler) == 2
    assert "sctp.association_evicted" in weird


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\x00\x03\x00\x30" + bytes(12), "sctp.bad_chunk"),  # runs past the packet
        (b"\x00\x03\x00\x08" + bytes(4), "sctp.bad_chunk"),  # DATA shorter than its header
        (b"\x00\x03\x00\x02", "sctp.bad_chunk"),
        (b"\x03\x00\x00\x04" + b"\x01\x02", "sctp.truncated"),
    ],
)
def test_bad_chunks_raise_named_errors(raw, kind):
    with pytest.raises(SctpError) as caught:
        data_chunks(raw)
    assert caught.value.kind == kind


def sctp_call(caller: str, callee: str) -> list[tuple[int, bytes]]:
    """An answered call whose INVITE is cut in three DATA chunks over two packets,
    with the 100 Trying and 180 Ringing in one packet and a retransmitted BYE."""
    d = make_dialog(9, caller_ip=caller, callee_ip=callee)
    d.basic_answered(T0, talk_s=1.0, rtp=False)
    payloads = [(ts, decode(1, f)[1:]) for ts, f in d.frames]
    (ts0, (_, _, _, _, invite)) = payloads[0]
    third = len(invite) // 3
    out = [
        (ts0, frame(caller, callee, data(1, invite[:third], end=False),
                    data(2, invite[third : 2 * third], False, False))),
        (ts0 + 10, frame(caller, callee, data(3, invite[2 * third :], begin=False))),
    ]  # fmt: skip
    tsns = {True: 4, False: 1}
    pending = []
    for ts, (src, _, _, _, payload) in payloads[1:]:
        from_caller = src == decode(1, d.frames[0][1])[1]
        pending.append((ts, from_caller, data(tsns[from_caller], payload)))
        tsns[from_caller] += 1
    trying, ringing, *rest = pending
    out.append((ringing[0], frame(callee, caller, trying[2], ringing[2])))
    for ts, from_caller, chunk in rest:
        src, dst = (caller, callee) if from_caller else (callee, caller)
        out.append((ts, frame(src, dst, chunk)))
        if chunk.data.startswith(b"BYE"):
            out.append((ts + 5, frame(src, dst, chunk)))  # SCTP retransmission
    return out


@pytest.mark.parametrize(
    ("caller", "callee"), [("10.1.0.9", "192.0.2.9"), ("2001:db8::9", "2001:db8:1::9")]
)
def test_call_over_sctp(caller, callee):
    records = []
    pipeline = Pipeline(records.append)
    pipeline.feed((ts, 1, f) for ts, f in sctp_call(caller, callee))
    pipeline.finish()
    (record,) = [r.to_dict() for r in records]
    assert record["transport"] == "sctp"
    assert record["disposition"] == "answered" and record["ended_by"] == "caller"
    assert (record["caller_ip"], record["callee_ip"]) == (caller, callee)
    assert record["ringing_at"] is not None
    assert "invite_retransmitted" not in record["flags"]
    assert pipeline.stats.sip_messages == 7
    assert pipeline.stats.weird["sctp.retransmission"] == 1


@pytest.mark.skipif(not CORPUS_SCTP.exists(), reason="shared corpus absent")
def test_corpus_sip_over_sctp():
    records = []
    pipeline = Pipeline(records.append)
    with open_capture(CORPUS_SCTP) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    (record,) = [r.to_dict() for r in records]
    assert record["call_id"] == "717B2539AD2002C9152DC497@0870ffffffff"
    assert record["transport"] == "sctp"
    assert (record["disposition"], record["final_status"]) == ("rejected", 403)
    assert pipeline.stats.sip_messages == 4  # the INVITE came in two DATA chunks
    assert not pipeline.stats.parse_errors
