"""App calls in the flow classifier: which flows are calls, and one record per call.

The application classifier here is a table (verdict by the far address, after a
number of datagrams), so that these tests pin the flow classifier's own rules;
tests/ndpi and tests/e2e run the same paths through libndpi.
"""

from __future__ import annotations

import ipaddress
import random

from tests.flows import _craft as c
from voiplog.flows import FlowClassifier, FlowSettings
from voiplog.flows._apps import AppVerdict

T0 = 1_700_000_000_000_000
MS = 1000
S = 1_000_000


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


SUB = ip("100.64.1.10")  # the subscriber
RELAY = ip("157.240.1.50")  # a server of the app (its published range)
RELAY2 = ip("157.240.2.60")
PEER = ip("198.51.100.7")  # the other party, reached peer to peer
QUIC_SERVER = ip("142.250.1.1")

WHATSAPP = AppVerdict("STUN.WhatsAppCall", "whatsapp", "VoIP", "dpi", call=True, call_app=True)
TELEGRAM_IP = AppVerdict("Telegram", "telegram", "Chat", "ip", call_app=True)
TELEGRAM_DPI = AppVerdict("Telegram", "telegram", "Chat", "dpi", call_app=True)
QUIC = AppVerdict("QUIC.YouTube", None, "Media", "dpi", excluded=True)


class TableClassifier:
    """Verdicts by far address after ``after`` datagrams; counts what it is fed."""

    name = "table"

    def __init__(self, verdicts: dict[bytes, AppVerdict], servers=(), after: int = 2) -> None:
        self.verdicts = verdicts
        self.servers = {s: "app" for s in servers}
        self.after = after
        self.fed = 0
        self.live: set[int] = set()
        self._next = 0

    def new_flow(self):
        self._next += 1
        state = [self._next, 0, None]
        self.live.add(self._next)
        return state

    def feed(self, flow, ts_us, src, sport, dst, dport, payload):
        self.fed += 1
        flow[1] += 1
        flow[2] = self.verdicts.get(dst) or self.verdicts.get(src)
        if flow[1] >= self.after and flow[2] is not None:
            return flow[2]
        return None

    def give_up(self, flow):
        return flow[2]

    def release(self, flow):
        self.live.discard(flow[0])

    def server_app(self, address):
        return self.servers.get(address)

    def host_app(self, name):
        return "discord" if name.endswith(".discord.media") else None


def encrypted(rng: random.Random, size: int = 120) -> bytes:
    """An app's own encrypted media datagram: no RTP header, no STUN, no DTLS."""
    return bytes([rng.randrange(0x04, 0x14)]) + rng.randbytes(size - 1)


def media_flow(flows, start, seconds, far, fport, sport=40000, rate=50, payload=encrypted):
    """Two-way media at ``rate`` datagrams a second each way; the records it closed."""
    rng = random.Random(fport)
    records = []
    step = S // rate
    for i in range(int(seconds * rate)):
        t = start + i * step
        records += flows.feed_udp(t, SUB, sport, far, fport, payload(rng))
        records += flows.feed_udp(t + 3 * MS, far, fport, SUB, sport, payload(rng))
    return records


def stun_checks(flows, start, far, fport, sport=40000, count=4):
    records = []
    for i in range(count):
        tid = bytes([i]) * 12
        request = c.stun(1, 0, [(0x0024, b"\x6e\x7f\x1e\xff")], tid)
        records += flows.feed_udp(start + i * 200 * MS, SUB, sport, far, fport, request)
        response = c.stun(1, 2, [(0x0020, c.xor_address("100.64.1.10", sport, tid))], tid)
        records += flows.feed_udp(start + i * 200 * MS + 30 * MS, far, fport, SUB, sport, response)
    return records


def classifier(verdicts, servers=(), **settings):
    apps = TableClassifier(verdicts, servers)
    return FlowClassifier(FlowSettings(**settings), apps=apps), apps


def test_encrypted_media_of_a_call_app_is_one_call_record():
    flows, apps = classifier({RELAY: TELEGRAM_IP}, servers=[RELAY])
    assert media_flow(flows, T0, 20, RELAY, 1400) == []
    (record,) = flows.close_all()
    assert record.kind == "encrypted" and record.disposition == "app_call"
    assert record.extra["app"] == {
        "name": "telegram",
        "confidence": 0.7,
        "basis": "ndpi:Telegram/ip",
    }
    assert record.caller_ip == "100.64.1.10" and record.caller_port == 40000
    # Relayed all the way: the relay is not the other party.
    assert record.callee_ip is None and record.extra["far_end"] == "relay"
    (flow,) = record.extra["app_flows"]
    assert flow["path"] == "relay" and flow["relay_basis"] == "app_range"
    assert flow["packets_out"] == flow["packets_in"] == 1000
    assert record.started_at == "2023-11-14T22:13:20.000000Z"
    assert record.duration_s == 19.983
    assert apps.live == set()  # every flow's state was given back


def test_ice_checks_relay_and_a_switch_to_peer_to_peer_are_one_call():
    flows, _apps = classifier({RELAY: WHATSAPP, RELAY2: WHATSAPP, PEER: WHATSAPP}, [RELAY, RELAY2])
    records = stun_checks(flows, T0, RELAY2, 3478, sport=40002)  # a candidate never used
    records += stun_checks(flows, T0, RELAY, 3478)
    records += media_flow(flows, T0 + 1 * S, 10, RELAY, 3478)
    records += stun_checks(flows, T0 + 8 * S, PEER, 52000, sport=40001)
    records += media_flow(flows, T0 + 9 * S, 30, PEER, 52000, sport=40001)
    records += flows.close_all()
    (record,) = records
    assert record.extra["app"]["name"] == "whatsapp"
    assert record.extra["app"]["basis"] == "ndpi:STUN.WhatsAppCall/dpi"
    paths = [(f["dst_ip"], f["path"], f["media"]) for f in record.extra["app_flows"]]
    assert sorted(paths) == [
        ("157.240.1.50", "relay", True),
        ("157.240.2.60", "relay", False),
        ("198.51.100.7", "peer", True),
    ]
    # The party reached peer to peer is visible: it is the far end.
    assert record.callee_ip == "198.51.100.7" and record.callee_port == 52000
    assert record.extra["far_end"] == "peer"
    assert "path_changed" in record.flags
    assert record.started_at.endswith(".000000Z")
    assert record.duration_s >= 38.9


def test_a_call_apps_stun_without_media_is_no_call_but_is_counted():
    flows, _apps = classifier({RELAY: WHATSAPP}, [RELAY])
    assert stun_checks(flows, T0, RELAY, 3478, count=10) == []
    assert flows.close_all() == []
    assert flows.app_attempts_without_media == 1


def test_a_keepalive_of_a_call_app_is_no_call():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY])
    rng = random.Random(1)
    records = []
    for i in range(40):  # one each way every 25 s, for over 16 minutes
        t = T0 + i * 25 * S
        records += flows.feed_udp(t, SUB, 40000, RELAY, 1400, encrypted(rng, 40))
        records += flows.feed_udp(t + 50 * MS, RELAY, 1400, SUB, 40000, encrypted(rng, 40))
    records += flows.close_all()
    assert records == []


def test_a_short_burst_is_no_call():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY])
    assert media_flow(flows, T0, 0.5, RELAY, 1400) == []  # 25 each way in half a second
    assert flows.close_all() == []


def test_rtcp_alone_both_ways_is_a_muted_call():
    flows, _apps = classifier({RELAY: WHATSAPP}, [RELAY])
    records = []
    for i in range(6):
        t = T0 + i * 5 * S
        records += flows.feed_udp(t, SUB, 40000, RELAY, 3478, c.sender_report(0x11))
        records += flows.feed_udp(t + MS, RELAY, 3478, SUB, 40000, c.sender_report(0x22))
    records += flows.close_all()
    (record,) = records
    assert record.disposition == "app_call" and "rtcp" in record.extra["protocols"]


def test_quic_is_never_a_call_and_is_passed_over():
    flows, apps = classifier({QUIC_SERVER: QUIC})
    assert media_flow(flows, T0, 10, QUIC_SERVER, 443) == []
    assert flows.close_all() == []
    assert apps.fed == 2  # decided on the second datagram, asked no more


def test_turn_send_and_data_indications_carry_media():
    flows, _apps = classifier({RELAY: WHATSAPP}, [RELAY])
    rng = random.Random(3)
    peer = c.xor_address("198.51.100.7", 52000)

    def send(method: int, seq: int) -> bytes:
        data = c.rtp(seq, seq * 160, 111, ssrc=0x5151 if method == 6 else 0x6161)
        data = data[:12] + rng.randbytes(80)  # SRTP: the payload is ciphertext
        return c.stun(method, 1, [(0x0012, peer), (0x0013, data)], rng.randbytes(12))

    for i in range(500):
        t = T0 + i * 20 * MS
        flows.feed_udp(t, SUB, 40000, RELAY, 3478, send(6, i))  # Send indication
        flows.feed_udp(t + MS, RELAY, 3478, SUB, 40000, send(7, i))  # Data indication
    (record,) = flows.close_all()
    assert record.disposition == "app_call"
    assert "turn" in record.extra["protocols"]
    (flow,) = record.extra["app_flows"]
    assert flow["relay_basis"] == "turn"
    assert flow["turn_peer"] == {"ip": "198.51.100.7", "port": 52000}
    # The relayed datagrams are RTP with readable headers: their streams are kept.
    assert {m.ssrc for m in record.media} == {0x5151, 0x6161}


def test_the_same_app_after_the_join_gap_is_a_new_call():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY], app_join_gap_s=10)
    records = media_flow(flows, T0, 10, RELAY, 1400)
    records += flows.expire(T0 + 50 * S)  # the flow closed after its idle gap
    records += media_flow(flows, T0 + 60 * S, 10, RELAY, 1400, sport=40010)
    records += flows.close_all()
    first, second = records
    assert first.uid != second.uid
    assert first.ended_at < second.started_at


def test_two_subscribers_calls_of_one_app_stay_apart():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY])
    records = media_flow(flows, T0, 10, RELAY, 1400)
    other = ip("100.64.1.11")
    rng = random.Random(9)
    for i in range(500):
        t = T0 + i * 20 * MS
        flows.feed_udp(t, other, 41000, RELAY, 1400, encrypted(rng))
        flows.feed_udp(t + MS, RELAY, 1400, other, 41000, encrypted(rng))
    records += flows.close_all()
    assert sorted(r.caller_ip for r in records) == ["100.64.1.10", "100.64.1.11"]


def test_the_subscriber_is_the_anchor_even_when_the_peer_sends_first():
    def subscribers(caller, callee):
        if caller.startswith("100.64."):
            return caller, "outbound", None
        if callee.startswith("100.64."):
            return callee, "inbound", None
        return None, "transit", None

    apps = TableClassifier({PEER: WHATSAPP})
    flows = FlowClassifier(FlowSettings(), lookup_subscriber=subscribers, apps=apps)
    rng = random.Random(4)
    for i in range(500):
        t = T0 + i * 20 * MS
        flows.feed_udp(t, PEER, 52000, SUB, 40000, encrypted(rng))
        flows.feed_udp(t + MS, SUB, 40000, PEER, 52000, encrypted(rng))
    (record,) = flows.close_all()
    assert record.caller_ip == "100.64.1.10" and record.callee_ip == "198.51.100.7"
    assert record.direction == "outbound"
    (flow,) = record.extra["app_flows"]
    assert flow["src_ip"] == "100.64.1.10" and flow["path"] == "peer"


def test_builtin_traits_that_disagree_are_named_in_the_basis():
    flows, _apps = classifier({RELAY: WHATSAPP}, [RELAY])
    for i in range(300):
        t = T0 + i * 20 * MS
        flows.feed_udp(t, SUB, 40000, RELAY, 3478, c.channel_data(0x4000, c.rtp(i, i * 160, 0)))
        flows.feed_udp(
            t + MS, RELAY, 3478, SUB, 40000, c.channel_data(0x4000, c.rtp(i, i, 0, ssrc=7))
        )
    (record,) = flows.close_all()
    assert record.extra["app"]["name"] == "whatsapp"
    assert record.extra["app"]["basis"] == (
        "ndpi:STUN.WhatsAppCall/dpi; builtin:turn-relayed/turn_channel_data"
    )


def test_without_an_app_classifier_nothing_changes_for_plain_rtp():
    flows = FlowClassifier(FlowSettings())
    for i in range(20):
        flows.feed_udp(T0 + i * 20 * MS, SUB, 40000, PEER, 50000, c.rtp(i, i * 160, 0))
    (record,) = flows.close_all()
    assert record.kind == "media" and record.disposition == "media_session"


def test_app_classifier_off_writes_no_label():
    flows = FlowClassifier(FlowSettings(app_classifier="off"))
    for i in range(20):
        payload = c.channel_data(0x4000, c.rtp(i, i * 160, 0))
        flows.feed_udp(T0 + i * 20 * MS, SUB, 40000, PEER, 3478, payload)
    (record,) = flows.close_all()
    assert record.extra["app"] is None


RTP_PEER = AppVerdict("RTP", None, "Media", "dpi")


def test_a_path_from_the_same_subscriber_socket_takes_the_calls_app():
    # The classifier names the relay flows, and only "RTP" for the peer-to-peer
    # path that ICE opened from the same local address and port.
    flows, _apps = classifier({RELAY: TELEGRAM_DPI, PEER: RTP_PEER})
    records = media_flow(flows, T0, 5, RELAY, 1400)
    records += media_flow(flows, T0 + 4 * S, 20, PEER, 52000, payload=_rtp_payloads())
    records += flows.close_all()
    (record,) = records
    assert record.extra["app"]["name"] == "telegram"
    peer_flow = next(f for f in record.extra["app_flows"] if f["dst_ip"] == "198.51.100.7")
    assert peer_flow["classified_as"] == "Telegram" and peer_flow["path"] == "peer"


def test_a_flow_from_another_socket_takes_nothing_from_it():
    flows, _apps = classifier({RELAY: TELEGRAM_DPI, PEER: RTP_PEER})
    records = media_flow(flows, T0, 5, RELAY, 1400)
    records += media_flow(flows, T0 + 4 * S, 20, PEER, 52000, sport=41000, payload=_rtp_payloads())
    records += flows.close_all()
    assert sorted(r.disposition for r in records) == ["app_call", "media_session"]


def test_a_tls_server_name_just_before_names_the_udp_flow():
    voice = ip("66.22.196.10")
    flows, _apps = classifier({voice: AppVerdict("Unknown", None, "Unspecified", "unknown")})
    hello = c.tls_client_hello("rotterdam1234.discord.media")
    flows.feed_tcp(T0, SUB, 51000, voice, 443, hello)
    records = media_flow(flows, T0 + 1 * S, 10, voice, 50010, payload=_rtp_payloads())
    records += flows.close_all()
    (record,) = [r for r in records if r.transport == "udp"]
    assert record.extra["app"] == {
        "name": "discord",
        "confidence": 0.6,
        "basis": "sni:rotterdam1234.discord.media",
    }


def test_a_tls_server_name_long_before_names_nothing():
    voice = ip("66.22.196.10")
    flows, _apps = classifier({}, app_sni_window_s=60)
    flows.feed_tcp(T0, SUB, 51000, voice, 443, c.tls_client_hello("x1.discord.media"))
    records = media_flow(flows, T0 + 120 * S, 10, voice, 50010, payload=_rtp_payloads())
    records += flows.close_all()
    assert [r.extra["app"] for r in records if r.transport == "udp"] == [None]


def test_a_quiet_call_is_a_call_and_a_keepalive_is_not():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY])
    rng = random.Random(5)
    for i in range(40):  # one each way every 2 s for 80 s: silence suppressed
        t = T0 + i * 2 * S
        flows.feed_udp(t, SUB, 40000, RELAY, 1400, encrypted(rng, 30))
        flows.feed_udp(t + 40 * MS, RELAY, 1400, SUB, 40000, encrypted(rng, 30))
    (record,) = flows.close_all()
    assert record.disposition == "app_call"


def test_relay_pings_of_a_call_ringing_unanswered_are_no_call():
    flows, _apps = classifier({RELAY: TELEGRAM_IP}, [RELAY])
    rng = random.Random(5)
    for i in range(45):  # one each way every second while it rings for 45 s
        t = T0 + i * S
        flows.feed_udp(t, SUB, 40000, RELAY, 1400, encrypted(rng, 30))
        flows.feed_udp(t + 40 * MS, RELAY, 1400, SUB, 40000, encrypted(rng, 30))
    assert flows.close_all() == []
    assert flows.app_attempts_without_media == 1


def test_stun_framed_relay_messages_are_not_media():
    # WhatsApp's relays exchange STUN-framed messages of their own (method
    # range 0x0800) while a call rings: a missed call, not a call.
    flows, _apps = classifier({RELAY: WHATSAPP}, [RELAY])
    rng = random.Random(6)
    for i in range(200):
        t = T0 + i * 200 * MS
        for src, sport, dst, dport, kind in (
            (SUB, 40000, RELAY, 3478, 0x0800),
            (RELAY, 3478, SUB, 40000, 0x0801),
        ):
            body = rng.randbytes(24)
            message = kind.to_bytes(2, "big") + len(body).to_bytes(2, "big")
            message += c.MAGIC.to_bytes(4, "big") + rng.randbytes(12) + body
            flows.feed_udp(t, src, sport, dst, dport, message)
    assert flows.close_all() == []
    assert flows.app_attempts_without_media == 1


def test_a_one_way_stream_at_video_game_rates_is_not_a_call():
    server = ip("80.84.170.21")
    flows = FlowClassifier(FlowSettings())
    for i in range(3000):  # 1,000 RTP packets a second down, 60 up
        t = T0 + i * MS
        flows.feed_udp(t, server, 49004, SUB, 40000, c.rtp(i & 0xFFFF, i * 90, 98, ssrc=9))
        if i % 16 == 0:
            flows.feed_udp(t, SUB, 40000, server, 49004, c.rtp(i // 16, i, 127, ssrc=8))
    assert flows.close_all() == []


def _rtp_payloads():
    state = {"seq": 0}

    def payload(rng):
        state["seq"] += 1
        return c.rtp(state["seq"], state["seq"] * 160, 111, ssrc=0x77) + rng.randbytes(60)

    return payload


def test_a_short_video_meeting_mostly_one_way_is_a_call():
    # The shape of a real Zoom meeting flow on UDP 8801 (nDPI's zoom.pcap): 10
    # datagrams up and 175 down in 1.44 s, video coming down.
    zoom = AppVerdict("Zoom", "zoom", "Video", "dpi", call_app=True)
    flows, _apps = classifier({RELAY: zoom}, [RELAY])
    rng = random.Random(8)
    for i in range(175):
        t = T0 + i * 8 * MS
        flows.feed_udp(t, RELAY, 8801, SUB, 58327, encrypted(rng, 1054))
        if i % 17 == 0:
            flows.feed_udp(t + MS, SUB, 58327, RELAY, 8801, encrypted(rng, 781))
    (record,) = flows.close_all()
    assert record.extra["app"]["name"] == "zoom"
    assert (record.extra["caller_packets"], record.extra["callee_packets"]) == (11, 175)


def _zoom(kind: int, length: int, inner: bytes, sfu: bool, **at: int) -> bytes:
    header = bytearray([kind]) + bytes(length - 1)
    for index, value in at.items():
        header[int(index[1:])] = value
    outer = bytes([0x05]) + bytes(7) if sfu else b""
    return outer + bytes(header) + inner


def test_zoom_media_headers_give_up_their_rtp():
    from voiplog.flows._appheaders import zoom_inner

    rtp = c.rtp(7, 960, 112, ssrc=0xABC)
    rtcp = c.sender_report(0xABC)
    assert zoom_inner(_zoom(0x0F, 19, rtp, sfu=True)) == rtp  # audio through a server
    assert zoom_inner(_zoom(0x0F, 19, rtp, sfu=False)) == rtp  # audio peer to peer
    assert zoom_inner(_zoom(0x10, 24, rtp, sfu=True, b20=0x02)) == rtp  # video
    assert zoom_inner(_zoom(0x10, 20, rtp, sfu=True)) == rtp  # byte 20 is RTP's first: 20
    assert zoom_inner(_zoom(0x21, 16, rtcp, sfu=True)) == rtcp
    assert zoom_inner(_zoom(0x1E, 20, rtp, sfu=False)) == rtp  # screen share, peer to peer
    assert zoom_inner(_zoom(0x0D, 27, rtp, sfu=True, b7=0x1E)) == rtp  # screen share, server
    assert zoom_inner(_zoom(0x0D, 27, rtp, sfu=True, b7=0x00)) is None
    assert zoom_inner(_zoom(0x0F, 19, bytes(40), sfu=True)) is None  # no RTP inside
    assert zoom_inner(bytes([0x05]) + bytes(10)) is None  # too short
    assert zoom_inner(b"\x01" + bytes(60)) is None  # Zoom's control, not media


def test_zoom_rtp_behind_its_header_gets_stream_statistics():
    zoom = AppVerdict("Zoom", "zoom", "Video", "dpi", call_app=True)
    flows, _apps = classifier({RELAY: zoom}, [RELAY])
    for i in range(250):
        t = T0 + i * 20 * MS
        up = c.rtp(i, i * 960, 112, ssrc=0x11) + bytes(60)
        down = c.rtp(i, i * 960, 112, ssrc=0x22) + bytes(60)
        flows.feed_udp(t, SUB, 50000, RELAY, 8801, _zoom(0x0F, 19, up, sfu=True))
        flows.feed_udp(t + MS, RELAY, 8801, SUB, 50000, _zoom(0x0F, 19, down, sfu=True))
    (record,) = flows.close_all()
    by_ssrc = {m.ssrc: m for m in record.media}
    # Counted from the datagram at which the application was known (the second).
    assert by_ssrc[0x11].packets == 249 and by_ssrc[0x22].packets == 249
    assert by_ssrc[0x11].lost == 0 and by_ssrc[0x11].payload_type == 112


def test_an_unanswered_call_probing_three_relays_is_one_attempt():
    flows, _apps = classifier({RELAY: WHATSAPP, RELAY2: WHATSAPP, PEER: WHATSAPP}, [RELAY, RELAY2])
    stun_checks(flows, T0, RELAY2, 3478, sport=40001, count=1)
    stun_checks(flows, T0, PEER, 3478, sport=40002, count=1)
    stun_checks(flows, T0, RELAY, 3478, count=100)  # rings on, one ping each way every 0.2 s
    flows.expire(T0 + 60 * S)
    assert flows.close_all() == []
    assert flows.app_attempts_without_media == 1


# -- real captures' shapes: one socket per call, plain RTP beside, no networks --

PRIVATE = ip("192.168.2.12")  # a subscriber behind the capture's own NAT


def test_a_media_flow_from_a_new_socket_after_silence_is_the_next_call():
    # Telegram redials: the first call's flows fall silent (but have not yet
    # timed out) and, 8 s later, a new socket carries the next call.
    flows, _apps = classifier({RELAY: TELEGRAM_DPI, RELAY2: TELEGRAM_DPI}, [RELAY, RELAY2])
    records = media_flow(flows, T0, 10, RELAY, 1400, sport=40000)
    records += media_flow(flows, T0 + 18 * S, 10, RELAY2, 1400, sport=41000)
    records += flows.close_all()
    assert sorted({f["src_port"] for f in r.extra["app_flows"]}.pop() for r in records) == [
        40000,
        41000,
    ]
    assert all(r.disposition == "app_call" for r in records)


def test_a_new_socket_while_the_call_still_carries_media_is_the_same_call():
    # Zoom: audio, video and screen each from a socket of their own, at once.
    flows, _apps = classifier({RELAY: TELEGRAM_DPI}, [RELAY])
    records = media_flow(flows, T0, 10, RELAY, 1400, sport=40000)
    records += media_flow(flows, T0 + 2 * S, 10, RELAY, 1401, sport=41000)
    records += flows.close_all()
    (record,) = records
    assert {f["src_port"] for f in record.extra["app_flows"]} == {40000, 41000}


def test_the_same_socket_after_a_short_silence_is_the_same_call():
    flows, _apps = classifier({RELAY: TELEGRAM_DPI, PEER: TELEGRAM_DPI}, [RELAY])
    records = media_flow(flows, T0, 10, RELAY, 1400)
    records += media_flow(flows, T0 + 17 * S, 10, PEER, 52000)
    records += flows.close_all()
    assert len(records) == 1


def test_without_networks_the_private_end_is_the_subscriber():
    # No subscriber networks and no server ranges: the peer sends first, from
    # a public address, to the subscriber behind a NAT.
    flows = FlowClassifier(FlowSettings(), apps=TableClassifier({PEER: WHATSAPP}))
    rng = random.Random(4)
    for i in range(500):
        t = T0 + i * 20 * MS
        flows.feed_udp(t, PEER, 52000, PRIVATE, 40000, encrypted(rng))
        flows.feed_udp(t + MS, PRIVATE, 40000, PEER, 52000, encrypted(rng))
    (record,) = flows.close_all()
    assert record.caller_ip == "192.168.2.12" and record.callee_ip == "198.51.100.7"
    assert record.extra["far_end"] == "peer"


def test_without_networks_a_socket_seen_in_the_call_is_the_subscriber():
    # Both ends public and the peer first: the socket that already talked to
    # the app's relay is the subscriber's, and both paths are one call.
    flows = FlowClassifier(
        FlowSettings(), apps=TableClassifier({RELAY: WHATSAPP, PEER: WHATSAPP}, [RELAY])
    )
    records = media_flow(flows, T0, 5, RELAY, 3478)
    rng = random.Random(5)
    for i in range(500):
        t = T0 + 4 * S + i * 20 * MS
        records += flows.feed_udp(t, PEER, 52000, SUB, 40000, encrypted(rng))
        records += flows.feed_udp(t + MS, SUB, 40000, PEER, 52000, encrypted(rng))
    records += flows.close_all()
    (record,) = records
    assert {f["src_ip"] for f in record.extra["app_flows"]} == {"100.64.1.10"}
    assert record.callee_ip == "198.51.100.7"


def test_plain_rtp_beside_an_apps_named_flows_is_part_of_its_call():
    # KakaoTalk: nDPI names the control flows, and only "RTP" for the voice
    # between the same two addresses on the ports next to them.
    kakao = AppVerdict(
        "KakaoTalk_Voice", "kakaotalk", "VoIP", "dpi", call=True, call_app=True,
        call_protocol=True,
    )  # fmt: skip
    flows, _apps = classifier({RELAY: kakao})
    records = []
    rng = random.Random(3)
    for i in range(40):  # RTCP-like control, both ways, every second
        t = T0 + i * S
        records += flows.feed_udp(t, SUB, 40001, RELAY, 23045, encrypted(rng, 80))
        records += flows.feed_udp(t + 5 * MS, RELAY, 23045, SUB, 40001, encrypted(rng, 80))
    apps = flows._apps
    apps.verdicts[RELAY] = RTP_PEER
    records += media_flow(flows, T0 + 500 * MS, 30, RELAY, 23044, payload=_rtp_payloads())
    records += flows.close_all()
    (record,) = records
    assert record.disposition == "app_call" and record.extra["app"]["name"] == "kakaotalk"
    assert {f["src_port"] for f in record.extra["app_flows"]} == {40000, 40001}
    assert record.media and all(m.ssrc == 0x77 for m in record.media)


def test_a_call_protocol_named_by_inspection_needs_no_voice_rate():
    # Snapchat's call inside QUIC: 25 datagrams each way in 8 s, on UDP 443.
    snap = AppVerdict(
        "QUIC.SnapchatCall", "snapchat", "VoIP", "dpi", call=True, call_app=True,
        call_protocol=True,
    )  # fmt: skip
    flows, _apps = classifier({RELAY: snap})
    records = media_flow(flows, T0, 8, RELAY, 443, rate=3)
    (record,) = records + flows.close_all()
    assert record.extra["app"]["name"] == "snapchat"
    # UDP 443 is a server's port: the far party is behind it, unseen.
    assert record.extra["far_end"] == "relay" and record.callee_ip is None
    (flow,) = record.extra["app_flows"]
    assert flow["relay_basis"] == "server_port"


def test_an_app_named_without_its_call_protocol_needs_the_voice_rate():
    flows, _apps = classifier({RELAY: TELEGRAM_DPI})
    assert media_flow(flows, T0, 8, RELAY, 1400, rate=3) + flows.close_all() == []


def test_a_dtls_srtp_offer_nobody_answered_is_no_call():
    # A ClientHello offering SRTP, sent twice, never answered (nDPI's dtls.pcap).
    flows = FlowClassifier(FlowSettings())
    hello = c.dtls_client_hello()
    flows.feed_udp(T0, SUB, 40739, PEER, 56515, hello)
    flows.feed_udp(T0 + 1, SUB, 40739, PEER, 56515, hello)
    assert flows.close_all() == []


def test_an_agreed_dtls_srtp_handshake_is_a_webrtc_session():
    flows = FlowClassifier(FlowSettings())
    flows.feed_udp(T0, SUB, 40739, PEER, 56515, c.dtls_client_hello())
    flows.feed_udp(T0 + 30 * MS, PEER, 56515, SUB, 40739, c.dtls_server_hello())
    (record,) = flows.close_all()
    assert record.extra["encryption"] == "dtls-srtp"
    assert record.extra["dtls_srtp_profiles"] == [7]


def test_media_with_googles_relay_ports_is_google_meet():
    # Over IPv6 nDPI 4.2 knows no Google range: the relay's port names it.
    meet_relay = ip("2001:4860:4864:5:8000::1")
    flows, _apps = classifier({meet_relay: AppVerdict("Unknown", None, "Unspecified", "unknown")})
    records = media_flow(flows, T0, 10, meet_relay, 19305, payload=_rtp_payloads())
    (record,) = records + flows.close_all()
    assert record.extra["app"]["name"] == "google_meet"
    assert record.extra["app"]["basis"].startswith("port:19305/port")
    assert record.extra["far_end"] == "relay"


def test_googles_public_stun_port_names_no_app():
    stun_server = ip("2001:4860:4864:5:8000::2")
    flows, _apps = classifier({stun_server: AppVerdict("Unknown", None, "Unspecified", "unknown")})
    records = media_flow(flows, T0, 10, stun_server, 19302, payload=_rtp_payloads())
    records += flows.close_all()
    assert all((r.extra.get("app") or {}).get("name") != "google_meet" for r in records)
