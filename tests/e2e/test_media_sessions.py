"""End to end: VoIP without readable SIP through `voiplog replay` gives exact session records.

Plain RTP that no SDP announced, RTP with RTCP, SRTP with SRTCP, a WebRTC call
(ICE/STUN, DTLS-SRTP, SRTP), TURN ChannelData, SIP over TLS with its media, and
RTP seen before the SDP that announces it.
"""

from __future__ import annotations

import pytest

from tests.e2e.test_calls import MEDIA_KEYS, REQUIRED_KEYS
from tests.flows import _craft as c
from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.cdr import format_ts, make_uid

MS = 1000
SUBSCRIBERS = '[[subscriber_networks]]\ncidr = "10.0.0.0/8"\nsite = "hall 1"\n'


def _rtp_frames(
    src,
    sport,
    dst,
    dport,
    start_us,
    count,
    *,
    ssrc,
    pt=0,
    step=160,
    interval_us=20 * MS,
    size=160,
    payload_byte=0,
):
    payload = bytes([payload_byte]) * size
    return [
        (
            start_us + i * interval_us,
            c.udp_frame(
                src,
                sport,
                dst,
                dport,
                c.rtp(1000 + i, 5000 + i * step, pt, ssrc=ssrc, payload=payload),
            ),
        )
        for i in range(count)
    ]


def _media(src, sport, dst, dport, ssrc, pt, codec, packets, first_us, last_us):
    return {
        "src_ip": src,
        "src_port": sport,
        "dst_ip": dst,
        "dst_port": dport,
        "ssrc": ssrc,
        "payload_type": pt,
        "codec": codec,
        "packets": packets,
        "lost": 0,
        "jitter_max_ms": 0.0,
        "jitter_mean_ms": 0.0,
        "first_at": format_ts(first_us),
        "last_at": format_ts(last_us),
    }


def _common(rec, kind, first_us, last_us):
    assert rec.keys() >= REQUIRED_KEYS
    for m in rec["media"]:
        assert m.keys() >= MEDIA_KEYS
    assert rec["kind"] == kind
    for key in (
        "call_id",
        "caller",
        "callee",
        "caller_uri",
        "callee_uri",
        "request_uri",
        "ringing_at",
        "setup_ms",
        "final_status",
        "user_agent",
        "remote",
    ):
        assert rec[key] is None, key
    assert rec["started_at"] == rec["answered_at"] == format_ts(first_us)
    assert rec["ended_at"] == format_ts(last_us)
    assert rec["duration_s"] == round((last_us - first_us) / 1e6, 6)


def test_plain_rtp_without_sdp_is_one_two_way_media_record(replayer):
    out = _rtp_frames("10.1.0.10", 40000, "192.0.2.50", 50000, T0, 50, ssrc=0xA1)
    back = _rtp_frames("192.0.2.50", 50000, "10.1.0.10", 40000, T0 + 5 * MS, 50, ssrc=0xB2, pt=8)
    (rec,) = replayer.records(sorted(out + back), config=SUBSCRIBERS)
    last = T0 + 5 * MS + 49 * 20 * MS
    _common(rec, "media", T0, last)
    assert rec["uid"] == make_uid("udp-session", T0, "10.1.0.10", 40000, "192.0.2.50", 50000)
    assert (rec["caller_ip"], rec["caller_port"]) == ("10.1.0.10", 40000)
    assert (rec["callee_ip"], rec["callee_port"]) == ("192.0.2.50", 50000)
    assert rec["transport"] == "udp"
    assert rec["subscriber_ip"] == "10.1.0.10" and rec["direction"] == "outbound"
    assert rec["subscriber"]["location"] == {"site": "hall 1"}
    assert rec["disposition"] == "media_session"
    assert rec["ended_by"] is None
    assert rec["flags"] == ["end_of_input"]
    assert rec["media"] == [
        _media(
            "10.1.0.10", 40000, "192.0.2.50", 50000, 0xA1, 0, "g711U", 50, T0, T0 + 49 * 20 * MS
        ),
        _media("192.0.2.50", 50000, "10.1.0.10", 40000, 0xB2, 8, "g711A", 50, T0 + 5 * MS, last),
    ]
    assert (rec["caller_packets"], rec["callee_packets"]) == (50, 50)
    assert (rec["caller_bytes"], rec["callee_bytes"]) == (50 * 172, 50 * 172)
    assert rec["protocols"] == ["rtp"]
    assert rec["encryption"] is None and rec["app"] is None
    assert rec["signalling_uid"] is None
    assert rec["stun_mapped_address"] is None and rec["turn_peer"] is None


def test_rtp_with_rtcp_on_the_next_ports_sender_reports_confirm_short_streams(replayer):
    # Three packets each way, fewer than min_packets: only the sender reports
    # of the same SSRCs make them believable.
    out = _rtp_frames("10.1.0.11", 40010, "192.0.2.51", 50010, T0, 3, ssrc=0x11223344)
    back = _rtp_frames("192.0.2.51", 50010, "10.1.0.11", 40010, T0 + 1 * MS, 3, ssrc=0x55667788)
    rtcp = [
        (
            T0 + 50 * MS,
            c.udp_frame(
                "10.1.0.11",
                40011,
                "192.0.2.51",
                50011,
                c.sender_report(0x11223344) + c.sdes(0x11223344),
            ),
        ),
        (
            T0 + 51 * MS,
            c.udp_frame(
                "192.0.2.51",
                50011,
                "10.1.0.11",
                40011,
                c.sender_report(0x55667788) + c.sdes(0x55667788),
            ),
        ),
    ]
    (rec,) = replayer.records(sorted(out + back + rtcp))
    _common(rec, "media", T0, T0 + 51 * MS)
    assert rec["protocols"] == ["rtcp", "rtp"]
    assert [(m["ssrc"], m["packets"]) for m in rec["media"]] == [(0x11223344, 3), (0x55667788, 3)]
    assert (rec["caller_packets"], rec["callee_packets"]) == (4, 4)
    # Without the reports the same RTP is too short to be believed.
    assert replayer.records(sorted(out + back)) == []


def test_rtcp_multiplexed_on_the_rtp_ports(replayer):
    out = _rtp_frames("10.1.0.12", 40020, "192.0.2.52", 50020, T0, 10, ssrc=0x11223344)
    report = [
        (
            T0 + 95 * MS,
            c.udp_frame(
                "10.1.0.12",
                40020,
                "192.0.2.52",
                50020,
                c.sender_report(0x11223344) + c.sdes(0x11223344),
            ),
        )
    ]
    (rec,) = replayer.records(sorted(out + report))
    assert rec["kind"] == "media" and rec["protocols"] == ["rtcp", "rtp"]
    assert rec["flags"] == ["end_of_input", "one_way_media"]
    assert rec["media"][0]["packets"] == 10 and rec["caller_packets"] == 11


def test_srtp_with_srtcp_is_an_encrypted_record(replayer):
    out = _rtp_frames(
        "10.1.0.13", 40030, "192.0.2.53", 50030, T0, 20, ssrc=0xC3, size=170, payload_byte=0x5A
    )
    back = _rtp_frames(
        "192.0.2.53",
        50030,
        "10.1.0.13",
        40030,
        T0 + 2 * MS,
        20,
        ssrc=0xD4,
        size=170,
        payload_byte=0xA5,
    )
    srtcp = [
        (T0 + 400 * MS, c.udp_frame("10.1.0.13", 40031, "192.0.2.53", 50031, c.srtcp(0xC3, 0))),
        (T0 + 401 * MS, c.udp_frame("192.0.2.53", 50031, "10.1.0.13", 40031, c.srtcp(0xD4, 0))),
    ]
    (rec,) = replayer.records(sorted(out + back + srtcp))
    _common(rec, "encrypted", T0, T0 + 401 * MS)
    assert rec["disposition"] == "media_session"
    assert rec["protocols"] == ["srtcp", "srtp"]
    assert rec["encryption"] == "srtp"
    assert [(m["ssrc"], m["packets"], m["lost"]) for m in rec["media"]] == [
        (0xC3, 20, 0),
        (0xD4, 20, 0),
    ]
    assert (rec["caller_packets"], rec["callee_packets"]) == (21, 21)


def _webrtc_frames(client, cport, server, sport, t0):
    tx = bytes(range(12))
    ice = [(0x0006, b"srv1:cli1"), (0x0024, b"\x6e\x00\x1e\xff"), (0x802A, bytes(8))]
    frames = [
        (t0, c.udp_frame(client, cport, server, sport, c.stun(0x001, 0, ice, tx))),
        (
            t0 + 30 * MS,
            c.udp_frame(
                server,
                sport,
                client,
                cport,
                c.stun(0x001, 2, [(0x0020, c.xor_address(client, cport))], tx),
            ),
        ),
        (t0 + 40 * MS, c.udp_frame(client, cport, server, sport, c.dtls_client_hello())),
        (t0 + 70 * MS, c.udp_frame(server, sport, client, cport, c.dtls_server_hello())),
    ]
    # SRTP: Opus at 48 kHz (PT 111), 20 ms, ciphertext payloads.
    frames += _rtp_frames(
        client,
        cport,
        server,
        sport,
        t0 + 100 * MS,
        25,
        ssrc=0xE5,
        pt=111,
        step=960,
        size=90,
        payload_byte=0x3C,
    )
    frames += _rtp_frames(
        server,
        sport,
        client,
        cport,
        t0 + 105 * MS,
        25,
        ssrc=0xF6,
        pt=111,
        step=960,
        size=90,
        payload_byte=0xC3,
    )
    return frames


def test_webrtc_call_stun_dtls_srtp(replayer):
    frames = _webrtc_frames("10.1.0.20", 50000, "198.51.100.30", 10000, T0)
    (rec,) = replayer.records(sorted(frames), config=SUBSCRIBERS)
    last = T0 + 105 * MS + 24 * 20 * MS
    _common(rec, "encrypted", T0, last)
    assert (rec["caller_ip"], rec["caller_port"]) == ("10.1.0.20", 50000)
    assert (rec["callee_ip"], rec["callee_port"]) == ("198.51.100.30", 10000)
    assert rec["subscriber_ip"] == "10.1.0.20" and rec["direction"] == "outbound"
    assert rec["protocols"] == ["dtls", "srtp", "stun"]
    assert rec["encryption"] == "dtls-srtp"
    assert rec["dtls_srtp_profiles"] == [7]
    assert rec["stun_mapped_address"] == {"ip": "10.1.0.20", "port": 50000}
    assert rec["app"] == {"name": "webrtc", "confidence": 0.7, "basis": "ice_dtls_srtp"}
    # A WebRTC call is an app call: one record for all its flows (here one).
    assert rec["disposition"] == "app_call" and rec["far_end"] == "peer"
    (flow,) = rec["app_flows"]
    assert (flow["src_ip"], flow["dst_ip"], flow["path"]) == ("10.1.0.20", "198.51.100.30", "peer")
    assert rec["media"] == [
        _media(
            "10.1.0.20",
            50000,
            "198.51.100.30",
            10000,
            0xE5,
            111,
            None,
            25,
            T0 + 100 * MS,
            T0 + 100 * MS + 24 * 20 * MS,
        ),
        _media(
            "198.51.100.30", 10000, "10.1.0.20", 50000, 0xF6, 111, None, 25, T0 + 105 * MS, last
        ),
    ]
    assert (rec["caller_packets"], rec["callee_packets"]) == (27, 27)
    # The ICE binding request (20 + 36 bytes), the ClientHello, 25 SRTP packets.
    assert rec["caller_bytes"] == 56 + len(c.dtls_client_hello()) + 25 * 102


def test_stun_alone_makes_no_record(replayer):
    tx = bytes(12)
    frames = [
        (T0, c.udp_frame("10.1.0.21", 50001, "192.0.2.99", 3478, c.stun(0x001, 0, [], tx))),
        (
            T0 + 20 * MS,
            c.udp_frame(
                "192.0.2.99",
                3478,
                "10.1.0.21",
                50001,
                c.stun(0x001, 2, [(0x20, c.xor_address("203.0.113.1", 7))], tx),
            ),
        ),
    ]
    assert replayer.records(frames) == []


def test_turn_channel_data_relays_rtp(replayer):
    client, cport, relay, rport = "10.1.0.30", 50002, "203.0.113.5", 3478
    software = (0x8022, b"Coturn-4.6.2 'Gorst'")
    peer = (0x0012, c.xor_address("192.0.2.77", 61000))
    frames = [
        (T0, c.udp_frame(client, cport, relay, rport, c.stun(0x003, 0, [], b"a" * 12))),
        (
            T0 + 20 * MS,
            c.udp_frame(relay, rport, client, cport, c.stun(0x003, 2, [software], b"a" * 12)),
        ),
        (
            T0 + 40 * MS,
            c.udp_frame(
                client,
                cport,
                relay,
                rport,
                c.stun(0x009, 0, [(0x000C, b"\x40\x01\x00\x00"), peer], b"b" * 12),
            ),
        ),
    ]
    for i in range(30):
        t = T0 + 100 * MS + i * 20 * MS
        out = c.channel_data(0x4001, c.rtp(10 + i, 160 * i, 0, ssrc=0x77))
        back = c.channel_data(0x4001, c.rtp(90 + i, 160 * i, 0, ssrc=0x88), pad=True)
        frames.append((t, c.udp_frame(client, cport, relay, rport, out)))
        frames.append((t + 3 * MS, c.udp_frame(relay, rport, client, cport, back)))
    (rec,) = replayer.records(sorted(frames))
    _common(rec, "encrypted", T0, T0 + 100 * MS + 29 * 20 * MS + 3 * MS)
    assert rec["protocols"] == ["rtp", "stun", "turn"]
    assert rec["encryption"] is None
    assert rec["stun_software"] == "Coturn-4.6.2 'Gorst'"
    assert rec["app"] == {"name": "coturn-relay", "confidence": 0.5, "basis": "stun_software"}
    assert rec["turn_peer"] == {"ip": "192.0.2.77", "port": 61000}
    streams = [(m["src_ip"], m["ssrc"], m["packets"], m["lost"]) for m in rec["media"]]
    assert streams == [(client, 0x77, 30, 0), (relay, 0x88, 30, 0)]


def test_sip_over_tls_is_linked_to_its_media(replayer):
    phone, proxy = "10.1.0.40", "192.0.2.60"
    tls = [
        (T0, c.tcp_frame(phone, 51000, proxy, 5061, c.tls_client_hello("sip.provider.example"))),
        (T0 + 20 * MS, c.tcp_frame(proxy, 5061, phone, 51000, b"\x16\x03\x03\x00\x04" + bytes(4))),
        (T0 + 40 * MS, c.tcp_frame(phone, 51000, proxy, 5061, b"\x17\x03\x03\x00\x08" + bytes(8))),
        (
            T0 + 4_000 * MS,
            c.tcp_frame(proxy, 5061, phone, 51000, b"\x17\x03\x03\x00\x08" + bytes(8)),
        ),
    ]
    media = _rtp_frames(phone, 40040, proxy, 30000, T0 + 1_000 * MS, 40, ssrc=0x99, pt=8)
    media += _rtp_frames(proxy, 30000, phone, 40040, T0 + 1_010 * MS, 40, ssrc=0xAA, pt=8)
    media.append((T0 + 1_900 * MS, c.udp_frame(phone, 40041, proxy, 30001, c.srtcp(0x99, 0))))
    by_kind = {r["transport"]: r for r in replayer.records(sorted(tls + media))}
    signalling, session = by_kind["tls"], by_kind["udp"]
    _common(signalling, "encrypted", T0, T0 + 4_000 * MS)
    assert signalling["uid"] == make_uid("tls-session", T0, phone, 51000, proxy, 5061)
    assert (signalling["caller_ip"], signalling["caller_port"]) == (phone, 51000)
    assert (signalling["callee_ip"], signalling["callee_port"]) == (proxy, 5061)
    assert signalling["disposition"] == "tls_session"
    assert signalling["media"] == []
    assert signalling["server_name"] == "sip.provider.example"
    assert signalling["alpn"] == []
    assert signalling["app"] == {"name": "sip-tls", "confidence": 0.8, "basis": "sni"}
    assert (signalling["caller_packets"], signalling["callee_packets"]) == (2, 2)
    assert signalling["media_uids"] == [session["uid"]]
    _common(session, "encrypted", T0 + 1_000 * MS, T0 + 1_900 * MS)
    assert session["signalling_uid"] == signalling["uid"]
    assert session["encryption"] == "srtp"
    assert [m["packets"] for m in session["media"]] == [40, 40]


def test_tls_on_other_ports_counts_only_when_its_hello_names_sip(replayer):
    frames = [
        (
            T0,
            c.tcp_frame(
                "10.1.0.41",
                51001,
                "192.0.2.61",
                443,
                c.tls_client_hello("www.example.com", ("h2",)),
            ),
        ),
        (
            T0 + 1,
            c.tcp_frame(
                "10.1.0.42",
                51002,
                "192.0.2.62",
                443,
                c.tls_client_hello("edge.example.com", ("sip/2",)),
            ),
        ),
        (T0 + 2, c.tcp_frame("192.0.2.62", 443, "10.1.0.42", 51002, b"\x17\x03\x03\x00\x00")),
    ]
    (rec,) = replayer.records(frames)
    assert rec["transport"] == "tls" and rec["callee_port"] == 443
    assert rec["app"] == {"name": "sip-tls", "confidence": 0.9, "basis": "alpn"}
    assert (rec["caller_packets"], rec["callee_packets"]) == (1, 1)


def test_rtp_seen_before_its_sdp_gives_no_duplicate_record(replayer):
    d = make_dialog(7)
    d.basic_answered(T0, talk_s=1.0)
    # The caller's RTP starts a second before the INVITE (a phone that sends
    # media early, or signalling delayed on the way): the media session found
    # meanwhile is handed to the call once its SDP arrives, not written twice.
    early = _rtp_frames(
        d.caller.ip,
        d.caller.media_port,
        d.callee.ip,
        d.callee.media_port,
        T0 - 1_000_000,
        20,
        ssrc=0x4242,
    )
    records = replayer.records(sorted(early + sorted_frames(d)))
    assert [r["kind"] for r in records] == ["sip"]
    assert len(records[0]["media"]) >= 2


def test_stream_running_before_its_sdp_goes_to_the_call_once_announced(replayer):
    d = make_dialog(8)
    d.basic_answered(T0, talk_s=2.0, rtp=False)
    # One continuous stream from the caller, same SSRC, from a second before the
    # INVITE to the end of the call: believed as a media session at first, it
    # is the call's from the INVITE (whose SDP announces its source) on.
    caller, callee = d.caller, d.callee
    stream = _rtp_frames(
        caller.ip, caller.media_port, callee.ip, callee.media_port, T0 - 990_000, 200, ssrc=0x5151
    )
    back = _rtp_frames(
        callee.ip, callee.media_port, caller.ip, caller.media_port, T0 + 1_100_000, 90, ssrc=0x6161
    )
    records = replayer.records(sorted(stream + back + d.frames))
    assert [r["kind"] for r in records] == ["sip"]
    media = {m["ssrc"]: m for m in records[0]["media"]}
    assert media[0x5151]["packets"] == 150  # those from the INVITE on
    assert media[0x5151]["first_at"] == format_ts(T0 + 10 * MS)
    assert media[0x6161]["packets"] == 90


@pytest.mark.parametrize("enabled", ["false"])
def test_disabled_writes_no_session_records(replayer, enabled):
    out = _rtp_frames("10.1.0.10", 40000, "192.0.2.50", 50000, T0, 50, ssrc=0xA1)
    assert replayer.records(out, config=f"[media_sessions]\nenabled = {enabled}\n") == []


def test_ipv6_media_session(replayer):
    from tests.sipcraft import udp_frame as scapy_udp_frame

    a, b = "2001:db8:1::10", "2001:db8:2::50"
    frames = [
        (T0 + i * 20 * MS, scapy_udp_frame(a, 40000, b, 50000, c.rtp(i, 160 * i, 0, ssrc=0x66)))
        for i in range(20)
    ]
    (rec,) = replayer.records(frames, config='[[subscriber_networks]]\ncidr = "2001:db8:1::/48"\n')
    assert (rec["kind"], rec["caller_ip"], rec["callee_ip"]) == ("media", a, b)
    assert rec["subscriber_ip"] == a and rec["direction"] == "outbound"
    assert [(m["src_ip"], m["packets"]) for m in rec["media"]] == [(a, 20)]


def test_full_session_table_writes_the_evicted_session_flagged(replayer):
    first = _rtp_frames("10.1.0.50", 40000, "192.0.2.70", 50000, T0, 20, ssrc=1)
    second = _rtp_frames("10.1.0.51", 40000, "192.0.2.71", 50000, T0 + 500 * MS, 20, ssrc=2)
    records = replayer.records(first + second, config="[media_sessions]\nmax_sessions = 1\n")
    assert [(r["caller_ip"], r["flags"]) for r in records] == [
        ("10.1.0.50", ["evicted", "one_way_media"]),
        ("10.1.0.51", ["end_of_input", "one_way_media"]),
    ]
    assert records[0]["ended_at"] == format_ts(T0 + 19 * 20 * MS)
