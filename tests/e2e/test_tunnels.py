"""End to end: a call seen through tunnels and mirrors.

Through a tunnel the record is the plain capture's, field for field, plus a
``tunnel`` object naming the outermost tunnel of the call's first INVITE. Seen twice
by two taps, the call gives the plain record when mirror dedup is on.
"""

from __future__ import annotations

import struct

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from tests.sipcraft import ETHER, T0, make_dialog, make_registration, sorted_frames
from tests.streamcraft import tunnelled


def _call(**kw):
    d = make_dialog(80, **kw)
    d.basic_answered(T0, talk_s=1.0)
    return sorted_frames(d)


@pytest.fixture
def reference(replayer):
    (rec,) = replayer.records(_call())
    assert rec["disposition"] == "answered" and len(rec["media"]) == 2
    return rec


OUT4 = dict(src="198.51.100.1", dst="198.51.100.2")
OUT6 = dict(src="2001:db8:ffff::1", dst="2001:db8:ffff::2")


def _raw(ip: bytes):
    return Raw(ip)


def _pptp(ip: bytes) -> bytes:
    gre = struct.pack(">BBHHHII", 0x30, 0x81, 0x880B, len(ip) + 4, 0x0101, 7, 6)
    outer = IP(proto=47, **OUT4)
    return bytes(ETHER / outer / Raw(gre + b"\xff\x03\x00\x21" + ip))


def _eth(ip: bytes) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:04", type=0x0800) / _raw(ip))


TUNNELS = [
    (
        "gre_key_and_sequence",
        lambda ip: bytes(
            ETHER
            / IP(**OUT4)
            / GRE(proto=0x0800, key_present=1, key=1001, seqnum_present=1, sequence_number=5)
            / _raw(ip)
        ),
        {"type": "gre", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": 1001},
    ),
    (
        "gre_checksum_no_key",
        lambda ip: bytes(ETHER / IP(**OUT4) / GRE(proto=0x0800, chksum_present=1) / _raw(ip)),
        {"type": "gre", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": None},
    ),
    (
        "gre_over_ipv6",
        lambda ip: bytes(ETHER / IPv6(**OUT6) / GRE(proto=0x0800, key_present=1, key=9) / _raw(ip)),
        {"type": "gre", "outer_src": "2001:db8:ffff::1", "outer_dst": "2001:db8:ffff::2", "key": 9},
    ),
    (
        "gre_ppp_pptp",
        _pptp,
        {"type": "pptp", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": 0x0101},
    ),
    (
        "erspan_1",
        lambda ip: bytes(ETHER / IP(**OUT4) / GRE(proto=0x88BE) / Raw(_eth(ip))),
        {
            "type": "erspan",
            "outer_src": "198.51.100.1",
            "outer_dst": "198.51.100.2",
            "key": None,
            "version": 1,
        },
    ),
    (
        "erspan_2",
        lambda ip: bytes(ETHER / IP(**OUT4) / GRE() / ERSPAN_II(session_id=42) / Raw(_eth(ip))),
        {
            "type": "erspan",
            "outer_src": "198.51.100.1",
            "outer_dst": "198.51.100.2",
            "key": 42,
            "version": 2,
        },
    ),
    (
        "erspan_3",
        lambda ip: bytes(
            ETHER / IP(**OUT4) / GRE(proto=0x22EB) / ERSPAN_III(session_id=43) / Raw(_eth(ip))
        ),
        {
            "type": "erspan",
            "outer_src": "198.51.100.1",
            "outer_dst": "198.51.100.2",
            "key": 43,
            "version": 3,
        },
    ),
    (
        "vxlan",
        lambda ip: bytes(
            ETHER
            / IP(**OUT4)
            / UDP(sport=51000, dport=4789)
            / VXLAN(flags=0x08, vni=7001)
            / Raw(_eth(ip))
        ),
        {"type": "vxlan", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": 7001},
    ),
    (
        "ip_in_ip",
        lambda ip: bytes(ETHER / IP(proto=4, **OUT4) / _raw(ip)),
        {"type": "ipip", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": None},
    ),
    (
        "ipv4_in_ipv6",
        lambda ip: bytes(ETHER / IPv6(nh=4, **OUT6) / _raw(ip)),
        {
            "type": "4in6",
            "outer_src": "2001:db8:ffff::1",
            "outer_dst": "2001:db8:ffff::2",
            "key": None,
        },
    ),
    (
        "mpls_stack_then_gre",
        lambda ip: bytes(
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8847)
            / MPLS(label=16, s=0, ttl=64)
            / MPLS(label=17, s=0, ttl=64)
            / MPLS(label=18, s=1, ttl=64)
            / IP(**OUT4)
            / GRE(proto=0x0800, key_present=1, key=5)
            / _raw(ip)
        ),
        {"type": "gre", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": 5},
    ),
    (
        "vlan_pppoe_then_gre",
        lambda ip: bytes(
            ETHER
            / Dot1Q(vlan=100)
            / PPPoE(sessionid=0x1234)
            / PPP(proto=0x21)
            / IP(**OUT4)
            / GRE(proto=0x0800)
            / _raw(ip)
        ),
        {"type": "gre", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": None},
    ),
]


@pytest.mark.parametrize(("name", "wrap", "tunnel"), TUNNELS, ids=[t[0] for t in TUNNELS])
def test_call_through_a_tunnel_records_the_outer_endpoints(replayer, reference, name, wrap, tunnel):
    (rec,) = replayer.records(tunnelled(_call(), wrap))
    assert rec == {**reference, "tunnel": tunnel}


def test_6in4(replayer):
    frames = _call(caller_ip="2001:db8:1::10", callee_ip="2001:db8:2::50")
    (expected,) = replayer.records(frames)
    wrap = lambda ip: bytes(ETHER / IP(proto=41, **OUT4) / _raw(ip))  # noqa: E731
    (rec,) = replayer.records(tunnelled(frames, wrap))
    assert rec == {
        **expected,
        "tunnel": {
            "type": "6in4",
            "outer_src": "198.51.100.1",
            "outer_dst": "198.51.100.2",
            "key": None,
        },
    }


def test_pppoe_and_mpls_alone_are_not_tunnels(replayer, reference):
    pppoe = lambda ip: bytes(ETHER / PPPoE(sessionid=7) / PPP(proto=0x21) / _raw(ip))  # noqa: E731
    assert replayer.records(tunnelled(_call(), pppoe)) == [reference]
    mpls = lambda ip: bytes(  # noqa: E731
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8847)
        / MPLS(label=100, s=0)
        / MPLS(label=200, s=1)
        / _raw(ip)
    )
    assert replayer.records(tunnelled(_call(), mpls)) == [reference]


# -- mirrors ----------------------------------------------------------------------------


def _two_taps(frames, delay_us: int = 40):
    """Every packet seen again `delay_us` later by a second tap: another VLAN, one hop
    further (TTL one lower, so another IP checksum)."""
    out = []
    for ts, frame in frames:
        out.append((ts, frame))
        pkt = Ether(frame)
        inner = pkt[IP] if IP in pkt else pkt[IPv6]
        if IP in pkt:
            inner.ttl -= 1
            del inner.chksum
        copy = Ether(src=pkt.src, dst=pkt.dst) / Dot1Q(vlan=999) / inner
        out.append((ts + delay_us, bytes(copy)))
    return out


MIRROR_CONFIG = "[reassembly]\nmirror_dedup_ms = 2\n"


def test_mirrored_call_counts_once_with_dedup(replayer, reference):
    assert replayer.records(_two_taps(_call()), config=MIRROR_CONFIG) == [reference]


def test_mirrored_call_without_dedup_counts_its_media_twice(replayer, reference):
    """Without mirror_dedup_ms the media is counted twice; the SIP copies, 40 µs apart,
    are always known for copies, not retransmissions."""
    (rec,) = replayer.records(_two_taps(_call()))
    assert [m["packets"] for m in rec["media"]] == [2 * m["packets"] for m in reference["media"]]
    assert "invite_retransmitted" not in rec["flags"]
    assert rec["flags"] == reference["flags"]


def test_mirror_dedup_keeps_sip_retransmissions(replayer):
    d = make_dialog(81)
    d.invite(T0)
    d.invite(T0 + 500_000)  # T1: a real retransmission, not a mirror copy
    d.response(T0 + 600_000, 486)
    d.ack(T0 + 610_000)
    (rec,) = replayer.records(sorted_frames(d), config=MIRROR_CONFIG)
    assert "invite_retransmitted" in rec["flags"]
    assert rec["disposition"] == "busy"


def test_mirror_dedup_with_tunnelled_and_plain_copies(replayer, reference):
    """One tap sends ERSPAN, the other a plain SPAN copy: the inner packets match."""
    frames = _call()
    wrap = TUNNELS[5][1]  # ERSPAN II
    both = sorted(frames + [(ts + 25, wrap(f[14:])) for ts, f in frames], key=lambda f: f[0])
    (rec,) = replayer.records(both, config=MIRROR_CONFIG)
    assert rec == reference


def test_mirrored_fragments_count_once(replayer, reference):
    from tests.streamcraft import ip_fragments

    frames = _two_taps(ip_fragments(_call(), 256))
    records, stats = _pipeline(frames, mirror_window_us=2000)
    assert records == [reference]
    assert stats.reassembled == 7
    assert not stats.weird  # no duplicate fragments, no half datagram left to time out


def _pipeline(frames, **settings):
    from voiplog.pipeline import Pipeline, ReassemblySettings

    records = []
    pipeline = Pipeline(
        lambda r: records.append(r.to_dict()), reassembly=ReassemblySettings(**settings)
    )
    pipeline.feed((ts, 1, frame) for ts, frame in frames)
    pipeline.finish()
    return records, pipeline.stats


def test_only_the_tunnelled_call_gets_a_tunnel(replayer):
    plain = make_dialog(82)
    plain.basic_answered(T0, talk_s=0.5)
    inside = make_dialog(83, caller_ip="10.1.0.11")
    inside.basic_answered(T0 + 100_000, talk_s=0.5)
    wrap = TUNNELS[0][1]  # GRE with key 1001
    frames = sorted(
        plain.frames + tunnelled(inside.frames, wrap), key=lambda f: f[0]
    )  # fmt: skip
    records = {r["call_id"]: r for r in replayer.records(frames)}
    assert "tunnel" not in records["call-82@craft.example"]
    assert records["call-83@craft.example"]["tunnel"]["key"] == 1001


def test_a_registration_through_a_tunnel_records_the_outer_endpoints(replayer):
    reg = make_registration(84)
    reg.register(T0, 1)
    reg.reply(T0 + 20_000, 200, 1, contacts=[reg.default_contact()], expires=3600)
    (record,) = replayer.records(tunnelled(reg.frames, TUNNELS[0][1]))  # GRE with key 1001
    assert record["kind"] == "registration" and record["result"] == "registered"
    assert record["tunnel"] == {
        "type": "gre", "outer_src": "198.51.100.1", "outer_dst": "198.51.100.2", "key": 1001,
    }  # fmt: skip


def test_tunnel_table_is_bounded_by_the_call_table():
    from voiplog.calls import CallSettings
    from voiplog.pipeline import Pipeline

    records = []
    pipeline = Pipeline(
        lambda r: records.append(r.to_dict()), call_settings=CallSettings(max_open_calls=2)
    )
    frames = []
    for n in range(5):
        d = make_dialog(90 + n, caller_ip=f"10.1.0.{20 + n}")
        d.invite(T0 + n * 1000)
        frames += tunnelled(d.frames, TUNNELS[0][1])
    pipeline.feed((ts, 1, frame) for ts, frame in sorted(frames, key=lambda f: f[0]))
    assert len(pipeline._call_extras) <= 2  # the evicted calls' entries went with their records
    pipeline.finish()
    # Evicted calls were written when the call table overflowed, with their tunnel.
    assert len(records) == 5
    assert all(r["tunnel"]["key"] == 1001 for r in records)
