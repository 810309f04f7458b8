"""End to end: crafted call flows through `voiplog replay` give the exact records."""

from __future__ import annotations

import pytest

from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.cdr import format_ts

REQUIRED_KEYS = {
    "uid", "kind", "call_id", "caller", "callee", "caller_uri", "callee_uri", "request_uri",
    "caller_ip", "caller_port", "callee_ip", "callee_port", "transport", "subscriber_ip",
    "direction", "started_at", "ringing_at", "answered_at", "ended_at", "duration_s", "setup_ms",
    "disposition", "final_status", "ended_by", "user_agent", "media", "flags", "subscriber", "remote",
}  # fmt: skip
MEDIA_KEYS = {
    "src_ip", "src_port", "dst_ip", "dst_port", "ssrc", "payload_type", "codec", "packets", "lost",
    "jitter_max_ms", "jitter_mean_ms", "first_at", "last_at",
}  # fmt: skip


def test_answered_call_record_is_exact(replayer):
    d = make_dialog(1)
    d.basic_answered(T0, talk_s=2.0)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec.keys() >= REQUIRED_KEYS
    assert rec["kind"] == "sip"
    assert rec["call_id"] == "call-1@craft.example"
    assert rec["caller"] == "1001" and rec["callee"] == "2001"
    assert rec["caller_uri"] == "sip:1001@10.1.0.10"
    assert rec["callee_uri"] == "sip:2001@192.0.2.50"
    assert rec["request_uri"] == "sip:2001@192.0.2.50:5060"
    assert (rec["caller_ip"], rec["caller_port"]) == ("10.1.0.10", 5060)
    assert (rec["callee_ip"], rec["callee_port"]) == ("192.0.2.50", 5060)
    assert rec["transport"] == "udp"
    assert rec["started_at"] == "2023-11-14T22:13:20.000000Z"
    assert rec["ringing_at"] == "2023-11-14T22:13:20.050000Z"
    assert rec["answered_at"] == "2023-11-14T22:13:21.000000Z"
    assert rec["ended_at"] == "2023-11-14T22:13:23.100000Z"
    assert rec["duration_s"] == 2.1
    assert rec["setup_ms"] == 50
    assert rec["disposition"] == "answered"
    assert rec["final_status"] == 200
    assert rec["ended_by"] == "caller"
    assert rec["user_agent"] == "craft-phone/1.0"
    assert rec["flags"] == []
    assert len(rec["media"]) == 2
    for m in rec["media"]:
        assert m.keys() >= MEDIA_KEYS
        assert m["packets"] == 100 and m["lost"] == 0
        assert m["codec"] == "PCMU" or m["codec"].lower().startswith(("pcmu", "g711u"))
        assert m["payload_type"] == 0
        assert m["jitter_max_ms"] == 0.0
    out = rec["media"][0]
    assert (out["src_ip"], out["src_port"], out["dst_ip"], out["dst_port"]) == (
        "10.1.0.10", 40002, "192.0.2.50", 50002,
    )  # fmt: skip
    assert out["first_at"] == format_ts(T0 + 1_050_000)
    assert out["last_at"] == format_ts(T0 + 1_050_000 + 99 * 20_000)


def test_bye_from_callee_sets_ended_by(replayer):
    d = make_dialog(2)
    d.invite(T0)
    d.response(T0 + 100_000, 180)
    d.answer(T0 + 500_000)
    d.ack(T0 + 510_000)
    d.bye(T0 + 5_500_000, by_caller=False)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["ended_by"] == "callee"
    assert rec["duration_s"] == 5.0


FAILURES = [
    (486, "busy"),
    (600, "busy"),
    (408, "no_answer"),
    (480, "no_answer"),
    (401, "unauthorized"),
    (407, "unauthorized"),
    (302, "redirected"),
    (404, "rejected"),
    (403, "rejected"),
    (603, "rejected"),
    (500, "failed"),
    (503, "failed"),
]


@pytest.mark.parametrize(("status", "disposition"), FAILURES)
def test_refused_call_dispositions(replayer, status, disposition):
    d = make_dialog(3)
    d.invite(T0)
    d.response(T0 + 20_000, 100)
    d.response(T0 + 300_000, status)
    d.ack(T0 + 310_000, in_dialog=True)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == disposition
    assert rec["final_status"] == status
    assert rec["answered_at"] is None
    assert rec["ended_at"] == format_ts(T0 + 300_000)
    assert rec["duration_s"] == 0.0
    assert rec["setup_ms"] == 300
    assert rec["ended_by"] == "callee"


def test_cancelled_with_487(replayer):
    d = make_dialog(4)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.request(T0 + 4_000_000, "CANCEL", in_dialog=False)
    d.response(T0 + 4_010_000, 200, method="CANCEL")
    d.response(T0 + 4_020_000, 487)
    d.ack(T0 + 4_030_000)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == "cancelled"
    assert rec["final_status"] == 487
    assert rec["ended_at"] == format_ts(T0 + 4_000_000)
    assert rec["ended_by"] == "caller"
    assert rec["setup_ms"] == 50


def test_cancel_without_final_answer_is_cancelled(replayer):
    d = make_dialog(5)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.request(T0 + 3_000_000, "CANCEL", in_dialog=False)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == "cancelled"
    assert rec["final_status"] is None
    assert rec["ended_at"] == format_ts(T0 + 3_000_000)


def test_no_final_response(replayer):
    d = make_dialog(6)
    d.invite(T0)
    d.invite(T0 + 500_000)  # retransmission
    d.response(T0 + 600_000, 100)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == "no_final_response"
    assert rec["final_status"] is None
    assert rec["setup_ms"] is None
    assert rec["ended_at"] == format_ts(T0 + 600_000)
    assert "invite_retransmitted" in rec["flags"]


def test_invite_retransmission_is_one_call(replayer):
    d = make_dialog(7)
    d.invite(T0)
    d.invite(T0 + 500_000)
    d.invite(T0 + 1_500_000)
    d.response(T0 + 1_600_000, 180)
    d.answer(T0 + 2_000_000)
    d.answer(T0 + 2_500_000)  # 200 retransmitted
    d.ack(T0 + 2_510_000)
    d.bye(T0 + 4_000_000)
    records = replayer.records(sorted_frames(d))
    assert len(records) == 1
    (rec,) = records
    assert rec["started_at"] == format_ts(T0)
    assert rec["answered_at"] == format_ts(T0 + 2_000_000)
    assert rec["flags"] == ["invite_retransmitted"]


def test_auth_challenge_then_retry_is_one_call(replayer):
    d = make_dialog(8)
    d.invite(T0)
    d.response(T0 + 30_000, 407)
    d.ack(T0 + 40_000)
    d.cseq = 2
    d.invite(T0 + 100_000, extra=['Proxy-Authorization: Digest username="1008", realm="x"'])
    d.response(T0 + 150_000, 100)
    d.response(T0 + 400_000, 180)
    d.answer(T0 + 3_000_000)
    d.ack(T0 + 3_010_000)
    d.cseq = 3
    d.bye(T0 + 9_000_000)
    records = replayer.records(sorted_frames(d))
    assert len(records) == 1
    (rec,) = records
    assert rec["disposition"] == "answered"
    assert rec["started_at"] == format_ts(T0)
    assert rec["ringing_at"] == format_ts(T0 + 400_000)
    assert rec["setup_ms"] == 400
    assert rec["duration_s"] == 6.0
    assert "auth_challenged" in rec["flags"]


def test_auth_challenge_then_retry_refused(replayer):
    d = make_dialog(9)
    d.invite(T0)
    d.response(T0 + 30_000, 401)
    d.ack(T0 + 40_000)
    d.cseq = 2
    d.invite(T0 + 100_000)
    d.response(T0 + 300_000, 486)
    d.ack(T0 + 310_000)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == "busy"
    assert rec["final_status"] == 486


def test_reinvite_flag_and_media_follows_new_port(replayer):
    d = make_dialog(10)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)
    d.rtp(T0 + 1_100_000, 50, from_caller=True, ssrc=0xA1)
    d.rtp(T0 + 1_100_000, 50, from_caller=False, ssrc=0xB1)
    # The caller moves its media to a new port.
    d.cseq = 2
    d.caller.media_port = 41000
    d.request(T0 + 2_200_000, "INVITE", sdp=d._sdp(d.caller))
    d.response(T0 + 2_250_000, 200, sdp=d._sdp(d.callee), cseq=2)
    d.ack(T0 + 2_260_000)
    d.rtp(T0 + 2_300_000, 50, from_caller=True, ssrc=0xA2, seq0=5000)
    d.rtp(T0 + 2_300_000, 50, from_caller=False, ssrc=0xB1, seq0=1050)
    d.cseq = 3
    d.bye(T0 + 3_400_000)
    (rec,) = replayer.records(sorted_frames(d))
    assert "reinvite" in rec["flags"]
    ports = sorted((m["src_port"], m["dst_port"], m["packets"]) for m in rec["media"])
    assert (41000, 50020, 50) in ports  # new caller port, matched through the re-INVITE SDP
    assert (40020, 50020, 50) in ports
    assert sum(m["packets"] for m in rec["media"]) == 200


def test_forked_early_dialogs(replayer):
    d = make_dialog(11)
    d.invite(T0)
    d.response(T0 + 50_000, 180, to_tag="forkA")
    d.response(T0 + 60_000, 180, to_tag="forkB")
    d.response(T0 + 2_000_000, 200, to_tag="forkB", sdp=d._sdp(d.callee))
    d.ack(T0 + 2_010_000)
    d.bye(T0 + 4_000_000)
    (rec,) = replayer.records(sorted_frames(d))
    assert "forked" in rec["flags"]
    assert rec["disposition"] == "answered"


def test_answered_without_bye_closes_at_last_packet(replayer):
    d = make_dialog(12)
    d.invite(T0)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)
    d.rtp(T0 + 1_100_000, 100, from_caller=True, ssrc=0xC1)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["disposition"] == "answered"
    assert "no_bye" in rec["flags"]
    last_rtp = T0 + 1_100_000 + 99 * 20_000
    assert rec["ended_at"] == format_ts(last_rtp)
    assert rec["duration_s"] == round((last_rtp - T0 - 1_000_000) / 1e6, 6)
    assert "one_way_media" in rec["flags"]


def test_idle_timeout_on_packet_time(replayer):
    d = make_dialog(13)
    d.invite(T0)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)
    other = make_dialog(14)
    other.basic_answered(T0 + 200_000_000, rtp=False)
    config = "[calls]\nidle_timeout_s = 60\n"
    records = replayer.records(sorted_frames(d, other), config=config)
    first = next(r for r in records if r["call_id"] == d.call_id)
    assert first["ended_by"] == "timeout"
    assert {"timeout", "no_bye"} <= set(first["flags"])
    assert first["ended_at"] == format_ts(T0 + 1_010_000)
    # The timed-out call is written before the later call (closing order is packet time).
    assert records[0]["call_id"] == d.call_id


def test_eviction_still_writes_a_flagged_record(replayer):
    a, b = make_dialog(15), make_dialog(16)
    a.invite(T0)
    a.response(T0 + 50_000, 180)
    b.basic_answered(T0 + 1_000_000, rtp=False)
    records = replayer.records(sorted_frames(a, b), config="[calls]\nmax_open_calls = 1\n")
    assert len(records) == 2
    evicted = next(r for r in records if r["call_id"] == a.call_id)
    assert "evicted" in evicted["flags"]
    assert evicted["disposition"] == "no_final_response"


def test_sip_on_non_standard_port(replayer):
    d = make_dialog(17, sip_port=15777)
    d.basic_answered(T0)
    (rec,) = replayer.records(sorted_frames(d))
    assert rec["caller_port"] == 15777
    assert rec["disposition"] == "answered"
    assert len(rec["media"]) == 2


def test_rtp_loss_reordering_and_sequence_wrap(replayer):
    d = make_dialog(18)
    d.invite(T0)
    d.answer(T0 + 500_000)
    d.ack(T0 + 510_000)
    # 200 packets crossing the 16-bit wrap, 3 lost, two pairs swapped.
    order = list(range(200))
    order[50], order[51] = order[51], order[50]
    order[120], order[121] = order[121], order[120]
    d.rtp(
        T0 + 600_000,
        200,
        from_caller=True,
        ssrc=0xD1,
        seq0=65500,
        drop=frozenset({10, 40, 150}),
        order=order,
    )
    d.rtp(T0 + 600_000, 200, from_caller=False, ssrc=0xD2, seq0=65535)
    d.bye(T0 + 5_000_000)
    (rec,) = replayer.records(sorted_frames(d))
    by_ssrc = {m["ssrc"]: m for m in rec["media"]}
    assert by_ssrc[0xD1]["packets"] == 197
    assert by_ssrc[0xD1]["lost"] == 3
    assert by_ssrc[0xD2]["packets"] == 200
    assert by_ssrc[0xD2]["lost"] == 0


def test_media_server_port_shared_by_two_calls(replayer):
    """Two calls whose far ends announce the same media-server address:port."""
    a, b = make_dialog(19), make_dialog(20, caller_ip="10.1.0.11")
    b.callee.media_port = a.callee.media_port
    a.basic_answered(T0, talk_s=2.0)
    b.basic_answered(T0 + 300_000, talk_s=2.0)
    records = {r["call_id"]: r for r in replayer.records(sorted_frames(a, b))}
    for d in (a, b):
        rec = records[d.call_id]
        assert len(rec["media"]) == 2
        for m in rec["media"]:
            assert d.caller.ip in (m["src_ip"], m["dst_ip"])
            assert m["packets"] == 100


def test_subscriber_networks_give_direction(replayer):
    out, inbound = make_dialog(21), make_dialog(22, caller_ip="198.51.100.7", callee_ip="10.1.0.99")
    out.basic_answered(T0, rtp=False)
    inbound.basic_answered(T0 + 100_000, rtp=False)
    config = (
        'pop = "ams1"\n[[subscriber_networks]]\ncidr = "10.1.0.0/16"\nsite = "Amsterdam-1"\n'
        "lat = 52.37\nlon = 4.9\n"
    )
    records = {
        r["call_id"]: r for r in replayer.records(sorted_frames(out, inbound), config=config)
    }
    o, i = records[out.call_id], records[inbound.call_id]
    assert (o["direction"], o["subscriber_ip"]) == ("outbound", "10.1.0.10")
    assert (i["direction"], i["subscriber_ip"]) == ("inbound", "10.1.0.99")
    assert o["subscriber"]["pop"] == "ams1"
    assert o["subscriber"]["location"] == {"site": "Amsterdam-1", "lat": 52.37, "lon": 4.9}


def test_replay_is_byte_identical(replayer, tmp_path):
    dialogs = [make_dialog(n) for n in range(30, 36)]
    for n, d in enumerate(dialogs):
        d.basic_answered(T0 + n * 700_000, talk_s=1.0)
    path = replayer.write(sorted_frames(*dialogs))
    replayer.run(path)
    first = (tmp_path / f"out{replayer.n}.jsonl").read_bytes()
    replayer.run(path)
    assert (tmp_path / f"out{replayer.n}.jsonl").read_bytes() == first
    uids = [line for line in first.splitlines()]
    assert len(uids) == 6


def _t38_sdp(party) -> bytes:
    return (
        f"v=0\r\no={party.user} 2 2 IN IP4 {party.ip}\r\ns=fax\r\nc=IN IP4 {party.ip}\r\n"
        f"t=0 0\r\nm=image {party.media_port} udptl t38\r\n"
    ).encode()


@pytest.mark.parametrize("accepted", [True, False])
def test_t38_switch_ends_rtp_only_once_answered(replayer, accepted):
    d = make_dialog(60)
    d.invite(T0)
    d.answer(T0 + 500_000)
    d.ack(T0 + 510_000)
    d.rtp(T0 + 600_000, 50, from_caller=True, ssrc=0xF1)
    d.cseq = 2
    d.request(T0 + 1_700_000, "INVITE", sdp=_t38_sdp(d.caller))
    if accepted:
        d.response(T0 + 1_750_000, 200, cseq=2, sdp=_t38_sdp(d.callee))
    else:
        d.response(T0 + 1_750_000, 488, cseq=2)
    d.ack(T0 + 1_760_000, cseq=2)
    # What follows on the same ports: RTP-looking bytes either way.
    d.rtp(T0 + 1_800_000, 50, from_caller=True, ssrc=0xF1, seq0=1050)
    d.cseq = 3
    d.bye(T0 + 3_000_000)
    (rec,) = replayer.records(sorted_frames(d))
    (stream,) = rec["media"]
    assert stream["packets"] == (50 if accepted else 100)
    assert "reinvite" in rec["flags"]


def _as_tcp(frames, split_index=None):
    """Re-send the SIP of a crafted call over TCP, one message per segment
    (or the message at `split_index` cut across two segments)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    out = []
    next_seq: dict[tuple, int] = {}  # each direction's stream goes on where it stopped
    for n, (ts, frame) in enumerate(frames):
        pkt = Ether(frame)
        udp = pkt[UDP]
        if 5060 not in (udp.sport, udp.dport):
            out.append((ts, frame))
            continue
        payload = bytes(udp.payload)
        pieces = [payload] if n != split_index else [payload[:40], payload[40:]]
        for i, piece in enumerate(pieces):
            way = (pkt[IP].src, udp.sport, pkt[IP].dst, udp.dport)
            seq = next_seq.get(way, 1000)
            next_seq[way] = seq + len(piece)
            seg = (
                Ether(src=pkt.src, dst=pkt.dst)
                / IP(src=pkt[IP].src, dst=pkt[IP].dst)
                / TCP(sport=udp.sport, dport=udp.dport, flags="PA", seq=seq)
                / piece
            )
            out.append((ts + i, bytes(seg)))
    return out


def test_sip_over_tcp_whole_messages(replayer):
    d = make_dialog(61)
    d.basic_answered(T0, talk_s=1.0)
    (rec,) = replayer.records(_as_tcp(sorted_frames(d)))
    assert rec["transport"] == "tcp"
    assert rec["disposition"] == "answered"
    assert [m["packets"] for m in rec["media"]] == [50, 50]


def test_sip_over_tcp_message_across_segments_is_reassembled(replayer):
    d = make_dialog(62)
    d.invite(T0)
    d.response(T0 + 50_000, 180)
    d.answer(T0 + 1_000_000)
    d.ack(T0 + 1_010_000)
    d.bye(T0 + 3_000_000)
    frames = sorted_frames(d)
    answer_index = 2  # the 200 OK, cut in two segments
    records = replayer.records(_as_tcp(frames, split_index=answer_index))
    (rec,) = records
    # The 200 OK, cut in two segments, is read once its second part arrives.
    assert rec["disposition"] == "answered"
    assert rec["answered_at"] == "2023-11-14T22:13:21.000001Z"
    assert "bye_without_answer" not in rec["flags"]
