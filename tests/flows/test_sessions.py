"""The flow classifier on its own: sessions, idle gaps, caps, claims, what is kept."""

from __future__ import annotations

import ipaddress

from tests.flows import _craft as c
from voiplog.calls import EndReason
from voiplog.flows import FlowClassifier, FlowSettings

T0 = 1_700_000_000_000_000
MS = 1000
A = ipaddress.ip_address("10.1.0.10").packed
B = ipaddress.ip_address("192.0.2.50").packed
C = ipaddress.ip_address("192.0.2.51").packed


def _feed_rtp(flows, start_us, count, src=A, sport=40000, dst=B, dport=50000, ssrc=0xA1):
    records = []
    for i in range(count):
        packet = c.rtp(100 + i, 160 * i, 0, ssrc=ssrc)
        records += flows.feed_udp(start_us + i * 20 * MS, src, sport, dst, dport, packet)
    return records


def test_idle_gap_splits_a_session_in_two_records():
    flows = FlowClassifier(FlowSettings(idle_gap_s=30))
    assert _feed_rtp(flows, T0, 10) == []
    later = T0 + 10 * 20 * MS + 31_000_000
    (first,) = _feed_rtp(flows, later, 10)
    assert first.ended_at.endswith("20.180000Z") and first.flags == ("one_way_media",)
    (second,) = flows.close_all()
    assert second.uid != first.uid
    assert second.flags == ("end_of_input", "one_way_media")
    assert second.media[0].packets == 10


def test_expire_closes_idle_sessions_on_packet_time_only():
    flows = FlowClassifier(FlowSettings(idle_gap_s=30))
    _feed_rtp(flows, T0, 10)
    last = T0 + 9 * 20 * MS
    assert flows.expire(last + 30_000_000) == []
    (rec,) = flows.expire(last + 30_000_001)
    assert rec.kind == "media" and rec.flags == ("one_way_media",)
    assert flows.open_sessions == 0


def test_full_table_evicts_least_recently_active_with_a_flagged_record():
    weird = []
    flows = FlowClassifier(FlowSettings(max_sessions=2), on_weird=weird.append)
    _feed_rtp(flows, T0, 10, sport=40000)
    _feed_rtp(flows, T0 + 1, 10, sport=40002)
    # A third proven-to-be session evicts the first (least recently active).
    records = _feed_rtp(flows, T0 + 300 * MS, 10, sport=40004)
    assert [(r.caller_port, r.flags) for r in records] == [(40000, ("evicted", "one_way_media"))]
    # An unproven candidate is dropped without a record, and counted.
    flows2 = FlowClassifier(FlowSettings(max_candidates=1), on_weird=weird.append)
    _feed_rtp(flows2, T0, 2, sport=40000)
    assert _feed_rtp(flows2, T0 + 100 * MS, 1, sport=40002) == []
    assert "media.candidate_evicted" in weird


def test_claimed_flow_is_dropped_with_both_directions():
    weird = []
    flows = FlowClassifier(on_weird=weird.append)
    _feed_rtp(flows, T0, 10)
    flows.claim(A, 40000, B, 50000)
    assert weird == ["media.claimed_by_sdp"]
    assert flows.open_sessions == 0
    # The other direction, not matched by the SDP itself, is still the call's.
    assert _feed_rtp(flows, T0 + 1_000 * MS, 20, src=B, sport=50000, dst=A, dport=40000) == []
    assert flows.close_all() == []


def test_candidates_keep_only_the_first_header_bytes():
    flows = FlowClassifier(FlowSettings(min_packets=10))
    _feed_rtp(flows, T0, 4)
    (session,) = flows._candidates.values()
    (candidate,) = session.candidates.values()
    assert [len(header) for _, header in candidate.pending] == [8, 8, 8, 8]


def test_random_ssrcs_on_one_flow_are_bounded():
    weird = []
    flows = FlowClassifier(on_weird=weird.append)
    for i in range(50):
        flows.feed_udp(T0 + i, A, 1000, B, 2000, c.rtp(i, i, 0, ssrc=i))
    (session,) = flows._candidates.values()
    assert len(session.candidates) == 8
    assert weird.count("media.too_many_candidates") == 42


def test_tls_connection_eviction_and_idle_gap():
    flows = FlowClassifier(FlowSettings(max_tls_connections=1, tls_idle_gap_s=60))
    hello = c.tls_client_hello("sip.example.net")
    assert not flows.feed_tcp(T0, A, 51000, B, 5061, hello)
    (evicted,) = flows.feed_tcp(T0 + 1, A, 51001, C, 5061, hello)
    assert evicted.flags == ("evicted",) and evicted.callee_ip == "192.0.2.50"
    (idle,) = flows.expire(T0 + 1 + 60_000_001)
    assert idle.callee_ip == "192.0.2.51" and idle.flags == ()


def test_tls_seen_from_the_server_side_first_names_the_client_by_port():
    flows = FlowClassifier()
    flows.feed_tcp(T0, B, 5061, A, 51000, b"\x17\x03\x03\x00\x04abcd")
    (rec,) = flows.close_all(EndReason.SHUTDOWN)
    assert (rec.caller_ip, rec.caller_port, rec.callee_port) == ("10.1.0.10", 51000, 5061)
    assert rec.ended_by == "shutdown" and rec.flags == ("shutdown",)
    assert rec.extra["app"] == {"name": "sip-tls", "confidence": 0.6, "basis": "port"}
    assert (rec.extra["caller_packets"], rec.extra["callee_packets"]) == (0, 1)


def test_non_tls_tcp_and_non_sip_tls_make_no_connection():
    flows = FlowClassifier()
    flows.feed_tcp(T0, A, 51000, B, 443, c.tls_client_hello("www.example.com"))
    flows.feed_tcp(T0, A, 51000, B, 5061, b"OPTIONS sip:x SIP/2.0\r\n")
    assert flows.open_sessions == 0


def test_stray_datagrams_fill_only_the_candidate_table():
    weird = []
    flows = FlowClassifier(FlowSettings(max_candidates=3, max_sessions=3), on_weird=weird.append)
    _feed_rtp(flows, T0, 10)
    for i in range(20):  # one RTP-looking datagram each on new flows
        flows.feed_udp(T0 + 200 * MS + i, A, 2000 + i, C, 3000, c.rtp(i, i, 0, ssrc=i))
    assert weird.count("media.candidate_evicted") == 17
    (rec,) = flows.close_all()
    assert rec.caller_port == 40000 and rec.flags == ("end_of_input", "one_way_media")


def test_candidates_time_out_sooner_than_sessions():
    flows = FlowClassifier(FlowSettings(candidate_timeout_s=2, idle_gap_s=30))
    _feed_rtp(flows, T0, 10)
    _feed_rtp(flows, T0, 2, sport=41000)
    assert flows.open_sessions == 2
    assert flows.expire(T0 + 5_000_000) == []
    assert flows.open_sessions == 1
    # A candidate's packet after its timeout starts over: three more are not enough.
    assert _feed_rtp(flows, T0 + 6_000_000, 3, sport=41000) == []
    assert [r.caller_port for r in flows.close_all()] == [40000]
