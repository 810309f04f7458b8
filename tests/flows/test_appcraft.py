"""The app-call generator itself: reproducible, sorted, well-formed, calls that last."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tests import appcraft

TRAPS = (
    lambda: appcraft.quic_video(duration_s=1),
    lambda: appcraft.quic_app("messenger", duration_s=1),
    lambda: appcraft.dns_burst(queries=5),
    lambda: appcraft.ntp(polls=2),
    lambda: appcraft.wireguard_tunnel(duration_s=1),
    lambda: appcraft.game_stream(duration_s=1),
    lambda: appcraft.chat_tls("whatsapp"),
    lambda: appcraft.chat_tls("telegram"),
    lambda: appcraft.voice_message("whatsapp"),
    lambda: appcraft.keepalive_udp("viber", duration_s=60),
)


def _transport(frame: bytes):
    """The UDP or TCP layer of a frame, checking every length on the way down."""
    packet = Ether(frame)
    if IP in packet:
        ip = packet[IP]
        assert ip.len == len(frame) - 14
        assert ip.ihl == 5
        payload_len = ip.len - 20
    else:
        ip = packet[IPv6]
        payload_len = ip.plen
        assert ip.plen == len(frame) - 54
    if UDP in packet:
        assert packet[UDP].len == payload_len
        return packet[UDP]
    assert TCP in packet
    return packet[TCP]


def _checksums_valid(frame: bytes) -> bool:
    packet = Ether(frame)
    layer = packet[UDP] if UDP in packet else packet[TCP]
    sent = layer.chksum
    del layer.chksum
    if IP in packet:
        del packet[IP].chksum
    return Ether(bytes(packet))[layer.__class__].chksum == sent


def _is_up(call: appcraft.CraftedCall, frame: bytes) -> bool:
    packet = Ether(frame)
    return (packet[IP].src if IP in packet else packet[IPv6].src) == call.subscriber_ip


@pytest.mark.parametrize("app", appcraft.APPS)
def test_a_seed_gives_the_same_bytes(app):
    first = appcraft.app_call(app, duration_s=2, seed=7)
    again = appcraft.app_call(app, duration_s=2, seed=7)
    other = appcraft.app_call(app, duration_s=2, seed=8)
    assert first.frames == again.frames
    assert first.frames != other.frames


def test_mix_is_reproducible_and_holds_every_app_and_trap():
    frames, crafted = appcraft.mix(3, calls=len(appcraft.APPS), traps=len(appcraft.TRAPS))
    again, _ = appcraft.mix(3, calls=len(appcraft.APPS), traps=len(appcraft.TRAPS))
    assert frames == again
    assert [f[0] for f in frames] == sorted(f[0] for f in frames)
    assert {c.app for c in crafted if c.is_call} == set(appcraft.APPS)
    assert sum(not c.is_call for c in crafted) == len(appcraft.TRAPS)
    assert len(frames) == sum(len(c.frames) for c in crafted)
    assert len({c.subscriber_ip for c in crafted}) == len(crafted)


@pytest.mark.parametrize("app", appcraft.APPS)
@pytest.mark.parametrize("variant", ["relay", "p2p_switch", "muted", "missed"])
def test_frames_are_sorted_well_formed_and_on_the_listed_flows(app, variant):
    if variant == "missed":
        call = appcraft.missed_call(app, seed=1)
    else:
        call = appcraft.app_call(
            app, duration_s=1, p2p_switch=variant == "p2p_switch", muted=variant == "muted", seed=1
        )
    times = [ts for ts, _ in call.frames]
    assert times == sorted(times)
    assert (call.first_us, call.last_us) == (times[0], times[-1])
    flows = set(call.flows)
    for _, frame in call.frames:
        layer = _transport(frame)
        ip = layer.underlayer
        ends = {(ip.src, layer.sport), (ip.dst, layer.dport)}
        sub = (call.subscriber_ip, next(p for a, p in ends if a == call.subscriber_ip))
        far = next(e for e in ends if e != sub)
        assert ("udp" if isinstance(layer, UDP) else "tcp", *sub, *far) in flows
    assert ipaddress.ip_address(call.subscriber_ip) in ipaddress.ip_network("100.64.0.0/10")


@pytest.mark.parametrize("make", TRAPS)
def test_traps_are_well_formed(make):
    trap = make()
    assert not trap.is_call
    assert [ts for ts, _ in trap.frames] == sorted(ts for ts, _ in trap.frames)
    for _, frame in trap.frames:
        _transport(frame)


@pytest.mark.parametrize("make", [*TRAPS[:3], lambda: appcraft.app_call("telegram", ipv6=True)])
def test_checksums_are_right(make):
    frames = make().frames
    assert all(_checksums_valid(frame) for _, frame in frames[:200])


@pytest.mark.parametrize("app", appcraft.APPS)
@pytest.mark.parametrize("p2p_switch", [False, True])
def test_a_call_has_media_both_ways_for_its_whole_duration(app, p2p_switch):
    call = appcraft.app_call(app, duration_s=10, p2p_switch=p2p_switch, seed=2)
    up, down = set(), set()
    for ts, frame in call.frames:
        (up if _is_up(call, frame) else down).add((ts - call.last_us) // 500_000)
    # Every half second of the last ten seconds has packets in both directions.
    assert set(range(-20, 0)) <= up & down
    assert len(call.frames) > 2 * 50 * 10


def test_a_muted_call_sends_only_rtcp_every_few_seconds():
    call = appcraft.app_call("signal", duration_s=60, muted=True)
    assert len(call.frames) < 120
    up = [ts for ts, frame in call.frames if _is_up(call, frame)]
    down = [ts for ts, frame in call.frames if not _is_up(call, frame)]
    assert len(up) > 10 and len(down) > 10


def _stun_attributes(message: bytes) -> dict[int, bytes]:
    length = struct.unpack(">H", message[2:4])[0]
    assert len(message) == 20 + length
    attrs, offset = {}, 20
    while offset < len(message):
        kind, size = struct.unpack(">HH", message[offset : offset + 4])
        attrs[kind] = message[offset + 4 : offset + 4 + size]
        offset += 4 + size + (-size % 4)
    assert offset == len(message)
    return attrs


@pytest.mark.parametrize("app", ["messenger", "teams"])
def test_send_and_data_indications_carry_a_data_attribute_of_the_right_length(app):
    call = appcraft.app_call(app, duration_s=2)
    seen = {0x0016: 0, 0x0017: 0}
    for _, frame in call.frames:
        payload = bytes(_transport(frame).payload)
        if len(payload) < 20 or payload[:2] not in (b"\x00\x16", b"\x00\x17"):
            continue
        assert payload[4:8] == b"\x21\x12\xa4\x42"
        attrs = _stun_attributes(payload)
        data = attrs[0x0013]
        assert 0x0012 in attrs
        assert data[0] >> 6 == 2 or data[:2] == b"\x00\x01" or data[:2] == b"\x01\x01"
        assert (payload[:2] == b"\x00\x16") == _is_up(call, frame)
        seen[struct.unpack(">H", payload[:2])[0]] += 1
    assert seen[0x0016] > 90 and seen[0x0017] > 90


def test_channel_data_length_matches_the_datagram():
    call = appcraft.app_call("signal", duration_s=2)
    channel = 0
    for _, frame in call.frames:
        payload = bytes(_transport(frame).payload)
        if 0x40 <= payload[0] <= 0x4F:
            _channel, length = struct.unpack(">HH", payload[:4])
            assert length == len(payload) - 4
            channel += 1
    assert channel > 200


def test_zoom_media_has_the_sfu_header_then_rtp():
    call = appcraft.app_call("zoom", duration_s=2)
    audio = 0
    for _, frame in call.frames:
        payload = bytes(_transport(frame).payload)
        if payload[0] == 0x05 and payload[8] == 15:
            assert payload[7] == (0 if _is_up(call, frame) else 4)
            assert payload[8 + 19] == 0x80
            audio += 1
    assert audio > 150


def test_unknown_apps_and_unsupported_ipv6_are_refused():
    with pytest.raises(ValueError):
        appcraft.app_call("carrier-pigeon")
    with pytest.raises(ValueError):
        appcraft.app_call("viber", ipv6=True)


def test_write_pcap_round_trips(tmp_path):
    call = appcraft.app_call("whatsapp", duration_s=1)
    path = tmp_path / "call.pcap"
    offsets = appcraft.write_pcap(path, call.frames)
    assert len(offsets) == len(call.frames)
    data = path.read_bytes()
    first = offsets[0]
    caplen = struct.unpack("<I", data[first + 8 : first + 12])[0]
    assert data[first + 16 : first + 16 + caplen] == call.frames[0][1]
