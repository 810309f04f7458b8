"""voiplog.ndpi against the installed libndpi: what 4.2 names crafted datagrams and server names, and the binding's contract.

Datagrams are built from the 4.2 dissectors' own signatures (stun.c, telegram.c,
viber.c, imo.c, teamspeak.c, quic.c, dns.c, wireguard.c, ntp.c) and its
published address ranges; the addresses appear only inside the packets handed
to nDPI. Every test that needs the library gets a fresh classifier: nDPI keeps
a cache across the flows of one module (see `test_stun_cache_names_later_flows`).
Tests of the refusal paths and of the name rules need no library at all.
"""

from __future__ import annotations

import ctypes.util
import ipaddress
import resource
import struct
from dataclasses import dataclass

import pytest
from scapy.contrib.stun import STUN, STUNGenericTlv, STUNUsername
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.quic import QUIC_Initial

from tests.rtp._packets import rtp
from voiplog.errors import UsageError
from voiplog.ndpi import LIBRARY_ENV, MAX_DATAGRAMS, NdpiUnavailable, _names, adapter_for, load

SUBSCRIBER = "10.20.30.40"
NOBODY = "198.51.100.9"  # in no application's ranges
WHATSAPP_RELAY = "169.44.36.20"
TELEGRAM_RELAY = "149.154.167.51"
ZOOM_RELAY = "8.5.128.10"
WEBEX_RELAY = "62.109.200.10"
TEAMS_RELAY = "52.112.0.10"
FACEBOOK_EDGE = "157.240.20.51"


def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


@pytest.fixture
def classifier():
    try:
        found = load()
    except NdpiUnavailable as reason:
        pytest.skip(f"libndpi unavailable: {reason}")
    with found:
        # The detection module is built on first use: built now, so that the
        # tests that wrap its bound calls wrap the real ones.
        found._engine  # noqa: B018
        yield found


def test_the_detection_module_is_built_on_first_use_only():
    try:
        found = load()
    except NdpiUnavailable as reason:
        pytest.skip(f"libndpi unavailable: {reason}")
    with found:
        assert found._started is None
        flow = found.new_flow()
        assert found._started is not None
        found.release(flow)


@pytest.fixture
def ndpi42(classifier):
    """A classifier over libndpi 4.2, whose detections the table below records."""
    if not classifier.name.startswith("ndpi 4.2"):
        pytest.skip(f"the table records libndpi 4.2, this is {classifier.name}")
    return classifier


def _exchange(classifier, datagrams, client, cport, server, sport, start_us=1_000_000):
    """Feed ``(direction, payload)`` datagrams, 0 from the client; (verdict, datagrams fed)."""
    flow = classifier.new_flow()
    try:
        for index, (direction, payload) in enumerate(datagrams, 1):
            ends = (
                (client, cport, server, sport) if direction == 0 else (server, sport, client, cport)
            )
            verdict = classifier.feed(
                flow,
                start_us + index * 20_000,
                _packed(ends[0]),
                ends[1],
                _packed(ends[2]),
                ends[3],
                payload,
            )
            if verdict is not None:
                return verdict, index
        return classifier.give_up(flow), None
    finally:
        classifier.release(flow)


# --- crafted datagrams ---------------------------------------------------------


def _stun(
    message_type: str | int, *attributes, transaction: int = 0x0102030405060708090A0B0C
) -> bytes:
    return bytes(
        STUN(
            stun_message_type=message_type, transaction_id=transaction, attributes=list(attributes)
        )
    )


def _tlv(kind: int, value: bytes) -> STUNGenericTlv:
    return STUNGenericTlv(type=kind, value=value)


def whatsapp_stun():
    # stun.c: attributes 0x4000-0x4002 are "the only messages apparently whatsapp voice can use".
    return [(0, _stun("Binding request", _tlv(0x4000, b"\x00\x00\x00\x01")))]


def signal_turn_allocate():
    # stun.c: a REALM naming signal.org is Signal's TURN service.
    return [(0, _stun(0x0003, _tlv(0x0014, b"turn3.voip.signal.org")))]


def messenger_stun():
    # stun.c: Messenger's binding requests carry 0xC057 and are exactly 100 bytes long.
    return [(0, _stun("Binding request", _tlv(0xC057, bytes(4)), STUNUsername(username=b"u" * 88)))]


def zoom_stun():
    # stun.c: attribute 0x0103 is Zoom's.
    return [(0, _stun("Binding request", _tlv(0x0103, bytes(4))))]


def skype_stun():
    # stun.c: MS candidate identifier 0x8054, four bytes with the last three zero.
    return [(0, _stun("Binding request", _tlv(0x8054, b"\x01\x00\x00\x00")))]


def duo_stun():
    return [(0, _stun("Binding request", _tlv(0xFF03, bytes(4))))]


def zoom_media():
    # Zoom's SFU encapsulation (type 0x05, media type 0x10 at byte 8) around RTP,
    # both ways; 4.2 has no Zoom dissector and knows Zoom by its server ranges.
    def datagram(seq):
        return (
            bytes([0x05, 0x10, 0x01])
            + struct.pack("!HBBBB", seq, 0, 0, 0, 0x10)
            + bytes(15)
            + rtp(seq, seq * 160, 98)
        )

    return [(seq % 2, datagram(seq)) for seq in range(MAX_DATAGRAMS)]


def opaque(count=MAX_DATAGRAMS, size=120):
    """Datagrams of no known protocol, both ways (a relay's encrypted media, say)."""
    noise = [bytes((seq * 37 + i * 11 + 5) & 0xFF for i in range(size)) for seq in range(count)]
    return [(seq % 2, noise[seq]) for seq in range(count)]


def telegram_reflector():
    # telegram.c: a run of exactly 12 0xFF bytes on a port in 500-600.
    return [(0, bytes(range(1, 9)) + b"\xff" * 12 + bytes(range(20, 50)))]


def viber_keepalive():
    # viber.c: 12 bytes with 0x03 0x00 at offset 2.
    return [(0, b"\x7a\x11\x03\x00" + bytes(8))]


def imo_probe():
    # imo.c: 10 bytes starting 0x09 0x02.
    return [(0, b"\x09\x02" + bytes(range(8)))]


def teamspeak_init():
    return [(0, b"TS3INIT1" + b"\x00\x65\x00\x00\x88\x0a\x00\x00\x00\x00" + bytes(16))]


def whatsapp_relay_rtp():
    return [(seq % 2, rtp(seq, seq * 160, 120)) for seq in range(4)]


def quic_initial():
    # A QUIC v1 Initial: long header, version 1, padded to 1200 bytes as clients
    # must. Its protected payload is not a real ClientHello (nothing decrypts it).
    header = QUIC_Initial(Version=1, DstConnID=bytes(range(8)), SrcConnID=bytes(range(8, 16)))
    head = bytes(header)[:-3]  # up to the token length; Length and packet number follow
    body = bytes(1200 - len(head) - 3)
    return [(0, head + struct.pack("!HB", 0x4000 | (len(body) + 1), 0) + body)]


def dns_lookup():
    query = DNS(id=0x4242, rd=1, qd=DNSQR(qname="example.com"))
    answer = DNS(
        id=0x4242,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="example.com"),
        an=DNSRR(rrname="example.com", ttl=300, rdata="93.184.215.14"),
    )
    return [(0, bytes(query)), (1, bytes(answer))]


def wireguard_handshake():
    # wireguard.c: initiation (type 1, 148 bytes) answered by a response (type 2,
    # 92 bytes) whose receiver index is the initiator's sender index.
    initiation = struct.pack("<II", 1, 0x11223344) + bytes(140)
    response = struct.pack("<III", 2, 0x55667788, 0x11223344) + bytes(80)
    return [(0, initiation), (1, response)]


def ntp_poll():
    return [(0, bytes([0x23, 0x00, 0x06, 0xEC]) + bytes(44))]


@dataclass(frozen=True)
class Case:
    datagrams: object
    server: str
    sport: int
    protocol: str
    category: str
    confidence: str
    app: str | None
    decided_after: int | None  # None: undecided, the verdict came from give_up
    call: bool = False
    excluded: bool = False
    client: str = SUBSCRIBER


# What libndpi 4.2.0 says of each crafted flow.
TABLE_4_2 = {
    "whatsapp_stun": Case(whatsapp_stun, NOBODY, 3478, "STUN.WhatsAppCall", "VoIP", "dpi", "whatsapp", 1, call=True),
    "whatsapp_relay_rtp": Case(whatsapp_relay_rtp, WHATSAPP_RELAY, 3478, "RTP", "Media", "ip", "whatsapp", 1),
    "signal_turn": Case(signal_turn_allocate, NOBODY, 3478, "STUN.SignalVoip", "VoIP", "dpi", "signal", 1, call=True),
    "messenger_stun": Case(messenger_stun, NOBODY, 3478, "STUN.FacebookVoip", "VoIP", "dpi", "messenger", 1, call=True),
    "zoom_stun": Case(zoom_stun, NOBODY, 3478, "STUN.Zoom", "Video", "dpi", "zoom", 1),
    "zoom_media": Case(zoom_media, ZOOM_RELAY, 8801, "Zoom", "Video", "ip", "zoom", MAX_DATAGRAMS),
    "skype_stun": Case(skype_stun, NOBODY, 3478, "STUN.SkypeCall", "VoIP", "dpi", "teams", 1, call=True),
    "duo_stun": Case(duo_stun, NOBODY, 3478, "STUN.GoogleHangoutDuo", "VoIP", "dpi", "google_meet", 1, call=True),
    "telegram_relay": Case(opaque, TELEGRAM_RELAY, 1400, "Telegram", "Chat", "ip", "telegram", MAX_DATAGRAMS),
    "telegram_reflector": Case(telegram_reflector, NOBODY, 599, "Telegram", "Chat", "dpi", "telegram", 1),
    "viber": Case(viber_keepalive, NOBODY, 5242, "Viber", "VoIP", "dpi", "viber", 1, call=True),
    "imo": Case(imo_probe, NOBODY, 10000, "IMO", "VoIP", "dpi", "imo", 1, call=True),
    "teamspeak": Case(teamspeak_init, NOBODY, 9987, "TeamSpeak", "VoIP", "dpi", "teamspeak", 1, call=True),
    "webex_relay": Case(opaque, WEBEX_RELAY, 9000, "Webex", "VoIP", "ip", "webex", MAX_DATAGRAMS, call=True),
    "quic_initial": Case(quic_initial, NOBODY, 443, "QUIC", "Web", "dpi", None, 1, excluded=True),
    "dns": Case(dns_lookup, NOBODY, 53, "DNS", "Network", "dpi", None, 2, excluded=True),
    "wireguard": Case(wireguard_handshake, NOBODY, 51820, "WireGuard", "VPN", "dpi", None, 2, excluded=True),
    "ntp": Case(ntp_poll, NOBODY, 123, "NTP", "System", "dpi", None, 1, excluded=True),
    "nothing_known": Case(opaque, NOBODY, 40123, "Unknown", "Unspecified", "unknown", None, MAX_DATAGRAMS),
    # 4.2 excludes STUN over IPv6 from its STUN dissector; the adapter hands IPv6
    # to it behind an IPv4 header with stand-in addresses, so it is dissected.
    "stun_over_ipv6": Case(whatsapp_stun, "2001:db8::2", 3478, "STUN.WhatsAppCall", "VoIP", "dpi", "whatsapp", 1, call=True, client="2001:db8::1"),
    "telegram_reflector_ipv6": Case(telegram_reflector, "2001:db8::2", 599, "Telegram", "Chat", "dpi", "telegram", 1, client="2001:db8::1"),
    "imo_ipv6": Case(imo_probe, "2001:db8::2", 10000, "IMO", "VoIP", "dpi", "imo", 1, call=True, client="2001:db8::1"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TABLE_4_2))
def test_what_ndpi_4_2_names(ndpi42, name):
    case = TABLE_4_2[name]
    verdict, fed = _exchange(ndpi42, case.datagrams(), case.client, 50_000, case.server, case.sport)
    assert (verdict.protocol, verdict.category, verdict.confidence) == (
        case.protocol,
        case.category,
        case.confidence,
    )
    assert verdict.app == case.app
    assert verdict.call_app == (case.app is not None)
    assert verdict.call == case.call
    assert verdict.excluded == case.excluded
    assert fed == case.decided_after


def test_stun_cache_names_later_flows(ndpi42):
    """nDPI remembers a STUN endpoint's application for the module's later flows."""
    plain = [(0, _stun("Binding request", STUNUsername(username=b"abcd:efgh")))] * 3
    alone, fed = _exchange(ndpi42, plain, SUBSCRIBER, 40_000, NOBODY, 3478)
    assert (alone.protocol, alone.app, fed) == ("STUN", None, 3)

    _exchange(ndpi42, whatsapp_stun(), SUBSCRIBER, 40_002, "203.0.113.7", 3478)
    after, fed = _exchange(ndpi42, plain, SUBSCRIBER, 40_002, "203.0.113.99", 3478)
    assert (after.protocol, after.app, fed) == ("STUN.WhatsAppCall", "whatsapp", 1)


def test_no_ndpi_call_after_a_verdict(classifier, monkeypatch):
    calls = []
    process, giveup = classifier._process, classifier._engine.giveup

    def counted_process(*args):
        calls.append("process")
        return process(*args)

    def counted_giveup(*args):
        calls.append("giveup")
        return giveup(*args)

    monkeypatch.setattr(classifier, "_process", counted_process)
    monkeypatch.setattr(classifier._engine, "giveup", counted_giveup)
    flow = classifier.new_flow()
    client, server = _packed(SUBSCRIBER), _packed(NOBODY)
    payload = whatsapp_stun()[0][1]
    verdict = classifier.feed(flow, 1_000_000, client, 40_000, server, 3478, payload)
    assert verdict is not None and verdict.app == "whatsapp"
    assert calls == ["process"]
    for index in range(5):
        again = classifier.feed(flow, 1_020_000 + index, client, 40_000, server, 3478, payload)
        assert again is verdict
    assert classifier.give_up(flow) is verdict
    assert calls == ["process"]
    classifier.release(flow)


def test_undecided_flow_is_given_up_at_the_cap(classifier):
    flow = classifier.new_flow()
    client, server = _packed(SUBSCRIBER), _packed(NOBODY)
    verdicts = [
        classifier.feed(flow, 1_000_000 + i * 20_000, client, 40_000, server, 40_001, payload)
        for i, (_direction, payload) in enumerate(opaque(MAX_DATAGRAMS))
    ]
    assert verdicts[:-1] == [None] * (MAX_DATAGRAMS - 1)
    assert verdicts[-1] is not None and verdicts[-1].protocol == "Unknown"
    classifier.release(flow)


def test_give_up_before_the_cap_uses_the_addresses(ndpi42):
    verdict, fed = _exchange(ndpi42, opaque(3), SUBSCRIBER, 40_000, TELEGRAM_RELAY, 1400)
    assert fed is None
    assert (verdict.protocol, verdict.app, verdict.confidence) == ("Telegram", "telegram", "ip")


def test_give_up_of_a_flow_never_fed(classifier):
    flow = classifier.new_flow()
    verdict = classifier.give_up(flow)
    assert (verdict.protocol, verdict.app, verdict.confidence) == ("Unknown", None, "unknown")
    assert verdict.excluded is False
    classifier.release(flow)


def test_release_frees_flows(classifier):
    """Ten thousand flows fed and released, twice: the second round needs no new memory."""
    client = _packed(SUBSCRIBER)
    samples = [quic_initial()[0][1], dns_lookup()[0][1], opaque(1)[0][1], whatsapp_stun()[0][1]]

    def round_of_flows():
        flows = [classifier.new_flow() for _ in range(10_000)]
        for index, flow in enumerate(flows):
            server = struct.pack("!I", 0xC6336400 + index % 256)
            for payload in samples[index % 4 : index % 4 + 2]:
                classifier.feed(flow, 1_000_000 + index, client, 1024 + index, server, 443, payload)
        for flow in flows:
            classifier.release(flow)

    round_of_flows()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    round_of_flows()
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib
    # Leaking the flow structs alone would take 10,000 x 688 bytes, about 6.7 MiB.
    assert grown_kib < 3 * 1024
    verdict, _ = _exchange(classifier, whatsapp_stun(), SUBSCRIBER, 40_000, NOBODY, 3478)
    assert verdict.app == "whatsapp"


def test_released_flow_is_refused_and_release_is_idempotent(classifier):
    flow = classifier.new_flow()
    classifier.release(flow)
    classifier.release(flow)
    with pytest.raises(UsageError):
        classifier.feed(flow, 1, _packed(SUBSCRIBER), 1, _packed(NOBODY), 2, b"x")


def test_oversized_datagram_is_cut_to_what_ip_can_carry(classifier):
    flow = classifier.new_flow()
    for client, server in ((SUBSCRIBER, NOBODY), ("2001:db8::1", "2001:db8::2")):
        verdict = classifier.feed(flow, 1, _packed(client), 1, _packed(server), 2, bytes(70_000))
        assert verdict is None
    classifier.release(flow)


def test_closed_classifier_refuses_work():
    try:
        classifier = load()
    except NdpiUnavailable as reason:
        pytest.skip(f"libndpi unavailable: {reason}")
    flow = classifier.new_flow()
    with classifier:
        pass
    with pytest.raises(UsageError):
        classifier.feed(flow, 1, _packed(SUBSCRIBER), 1, _packed(NOBODY), 2, b"x")
    classifier.release(flow)


def test_server_app(ndpi42, monkeypatch):
    assert ndpi42.server_app(_packed(TELEGRAM_RELAY)) == "telegram"
    assert ndpi42.server_app(_packed(TEAMS_RELAY)) == "teams"  # nDPI's Skype_Teams ranges
    assert ndpi42.server_app(_packed(ZOOM_RELAY)) == "zoom"
    assert ndpi42.server_app(_packed(FACEBOOK_EDGE)) is None  # Facebook makes no calls
    assert ndpi42.server_app(_packed(NOBODY)) is None
    assert ndpi42.server_app(_packed("2001:67c:4e8:f004::a")) is None  # 4.2 has IPv4 ranges only


def test_server_app_cache_is_bounded(classifier, monkeypatch):
    lookups = []
    match = classifier._engine.match_address

    def counted(ip):
        lookups.append(ip)
        return match(ip)

    monkeypatch.setattr(classifier._engine, "match_address", counted)
    monkeypatch.setattr(classifier, "_server_cache_size", 4)
    first = _packed(TELEGRAM_RELAY)
    assert classifier.server_app(first) == classifier.server_app(first)
    assert len(lookups) == 1
    for last in range(10):
        classifier.server_app(bytes([192, 0, 2, last]))
    assert len(classifier._servers) <= 4
    classifier.server_app(first)
    assert len(lookups) == 12


# What libndpi 4.2.0's host-name rules say of call applications' server names.
# 4.2 knows many applications only by subdomains (its rules are ".whatsapp.",
# ".zoom.us", ".kakao.com"...), so a bare domain is often no application.
HOSTS_4_2 = {
    "g.whatsapp.net": "whatsapp",
    "e1.whatsapp.net": "whatsapp",
    "mmg.whatsapp.net": "whatsapp",
    "media-frt3-1.cdn.whatsapp.net": "whatsapp",  # nDPI's WhatsAppFiles
    "web.whatsapp.com": "whatsapp",
    "whatsapp.net": None,
    "web.telegram.org": "telegram",
    "telegram.org": None,
    "core.telegram.org": None,
    "eu-west123.discord.media": "discord",
    "discord.media": "discord",
    "discord.gg": "discord",
    "gateway.discord.gg": "discord",
    "cdn.discordapp.com": "discord",
    "us04web.zoom.us": "zoom",
    "zoom.us": None,
    "teams.microsoft.com": "teams",  # nDPI's Teams
    "api.skype.com": "teams",  # nDPI's Skype_Teams
    "signal.org": "signal",
    "chat.signal.org": "signal",
    "dl-media.viber.com": "viber",
    "viber.com": None,
    "imo.im": None,
    "line-apps.com": None,  # 4.2 has no LINE rules at all
    "obs.line-apps.com": None,
    "app.snapchat.com": "snapchat",
    "snapchat.com": None,
    "sdk.snapkit.com": None,
    "talk.kakao.com": "kakaotalk",
    "kakao.com": None,
    "edge-mqtt.facebook.com": "messenger",  # nDPI's Messenger
    "messenger.com": "messenger",
    "graph.facebook.com": None,  # nDPI's Facebook: no calls
    "meet.google.com": None,  # nDPI's Google
    "www.example.com": None,
    "youtube.com": None,  # nDPI's YouTube: no calls
    "netflix.com": None,
}


@pytest.mark.parametrize("name", sorted(HOSTS_4_2))
def test_what_ndpi_4_2_host_rules_say(ndpi42, name):
    assert ndpi42.host_app(name) == HOSTS_4_2[name]


def test_host_app_ignores_case(ndpi42):
    assert ndpi42.host_app("G.WhatsApp.NET") == "whatsapp"
    assert ndpi42.host_app("EU-WEST123.Discord.Media") == "discord"


def test_host_app_matches_whole_labels(ndpi42):
    assert ndpi42.host_app("notdiscord.gg") is None
    assert ndpi42.host_app("discord.gg.example.com") is None


def test_host_app_of_what_is_no_host_name(classifier, monkeypatch):
    calls = []
    monkeypatch.setattr(classifier, "_match_host", calls.append)
    assert classifier.host_app("") is None
    assert classifier.host_app("a" * 254) is None
    assert classifier.host_app("bücher.example") is None
    assert calls == []
    assert classifier._hosts == {}


def test_host_app_of_the_longest_name(ndpi42):
    longest = "a" * 62 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 49 + ".whatsapp.net"
    assert len(longest) == 253
    assert ndpi42.host_app(longest) == "whatsapp"


def test_host_app_judges_each_name_alone(ndpi42):
    """The scratch flow keeps nothing from one name to the next."""
    names = ["edge-mqtt.facebook.com", "graph.facebook.com", "g.whatsapp.net", "youtube.com"]
    first = [ndpi42.host_app(name) for name in names]
    ndpi42._hosts.clear()
    assert [ndpi42.host_app(name) for name in reversed(names)] == first[::-1]


def test_host_app_cache_is_bounded(classifier, monkeypatch):
    lookups = []
    match = classifier._match_host

    def counted(name):
        lookups.append(name)
        return match(name)

    monkeypatch.setattr(classifier, "_match_host", counted)
    monkeypatch.setattr(classifier, "_host_cache_size", 4)
    assert classifier.host_app("g.whatsapp.net") == classifier.host_app("g.whatsapp.net")
    assert len(lookups) == 1
    for last in range(10):
        classifier.host_app(f"host{last}.example.com")
    assert len(classifier._hosts) <= 4
    classifier.host_app("g.whatsapp.net")
    assert len(lookups) == 12


def test_host_app_after_close_is_refused():
    try:
        classifier = load()
    except NdpiUnavailable as reason:
        pytest.skip(f"libndpi unavailable: {reason}")
    with classifier:
        pass
    with pytest.raises(UsageError):
        classifier.host_app("g.whatsapp.net")


# --- loading and refusing ----------------------------------------------------------


def test_unknown_release_is_refused():
    with pytest.raises(NdpiUnavailable) as refused:
        adapter_for("9.9.9")
    message = str(refused.value)
    assert "9.9.9" in message and "supported: 4.2" in message


def test_point_releases_share_an_adapter():
    assert adapter_for("4.2.0") is adapter_for("4.2.7")
    assert "4.2" in adapter_for("4.2.0").RELEASES


def test_missing_library_is_refused(monkeypatch):
    monkeypatch.setenv(LIBRARY_ENV, "/nonexistent/libndpi.so")
    with pytest.raises(NdpiUnavailable) as refused:
        load()
    message = str(refused.value)
    assert "/nonexistent/libndpi.so" in message and "not found" in message
    assert "\n" not in message


def test_library_that_is_not_ndpi_is_refused():
    libc = ctypes.util.find_library("c")
    if libc is None:
        pytest.skip("no libc to load")
    with pytest.raises(NdpiUnavailable, match="not libndpi"):
        load(libc)


class _FakeFunction:
    def __init__(self, result):
        self.result = result

    def __call__(self, *args):
        return self.result


class _FakeLibrary:
    """Answers every nDPI symbol; the size and API version are the test's."""

    def __init__(self, api_version, flow_size, missing=()):
        self._results = {
            "ndpi_get_api_version": api_version,
            "ndpi_detection_get_sizeof_ndpi_flow_struct": flow_size,
        }
        self._missing = missing

    def __getattr__(self, name):
        if name in self._missing:
            raise AttributeError(name)
        return _FakeFunction(self._results.get(name))


def test_flow_struct_of_another_layout_is_refused():
    adapter = adapter_for("4.2.0")
    with pytest.raises(NdpiUnavailable) as refused:
        adapter.open_engine(_FakeLibrary(adapter.API_VERSION, 700), "4.2.0")
    assert "700" in str(refused.value) and "688" in str(refused.value)


def test_other_api_version_is_refused():
    adapter = adapter_for("4.2.0")
    with pytest.raises(NdpiUnavailable, match="API version 8700"):
        adapter.open_engine(_FakeLibrary(8700, 688), "4.2.0")


def test_missing_symbol_is_refused():
    adapter = adapter_for("4.2.0")
    library = _FakeLibrary(adapter.API_VERSION, 688, missing={"ndpi_extra_dissection_possible"})
    with pytest.raises(NdpiUnavailable, match="ndpi_extra_dissection_possible"):
        adapter.open_engine(library, "4.2.0")


# --- the name rules, release-independent -------------------------------------------


def test_quic_is_excluded_even_for_a_call_app():
    assert _names.judge("QUIC", "WhatsApp", "Chat") == ("whatsapp", False, True, True, False)
    # ...but a call protocol inside QUIC is a call: Snapchat's RTP after its CHLO.
    assert _names.judge("QUIC", "SnapchatCall", "VoIP") == ("snapchat", True, True, False, True)


def test_lookup_of_an_app_domain_is_dns():
    assert _names.judge("DNS", "WhatsApp", "Chat")[3] is True


def test_call_app_category_never_excludes():
    assert _names.judge("Unknown", "Zoom", "Video") == ("zoom", False, True, False, False)
    assert _names.judge("Unknown", "WhatsAppFiles", "Download")[3] is False


def test_category_excludes_other_apps_but_not_hosting_ranges():
    assert _names.judge("Unknown", "NetFlix", "Video")[3] is True
    assert _names.judge("Unknown", "Steam", "Game")[3] is True
    assert _names.judge("Unknown", "Azure", "Cloud")[3] is False


def test_generic_voip_protocols_are_no_app_and_no_call():
    for master, app in (("SIP", "Unknown"), ("Unknown", "RTP"), ("STUN", "Unknown")):
        assert _names.judge(master, app, "VoIP") == (None, False, False, False, False)


def test_newer_release_names_map_too():
    assert _names.judge("STUN", "TelegramVoip", "VoIP") == ("telegram", True, True, False, True)
    assert _names.judge("Unknown", "LineCall", "VoIP") == ("line", True, True, False, True)
    assert _names.judge("STUN", "Skype_TeamsCall", "VoIP")[0] == "teams"
