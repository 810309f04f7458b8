"""HEP feeds through the whole pipeline: a call's record is the same whether its SIP
was captured on the wire or sent by a proxy as HEP (v3 or v2), and bad HEP is counted,
never fatal."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.pcapwriter import write_pcap
from tests.sipcraft import T0, make_dialog, make_registration, sorted_frames, udp_frame
from voiplog.capture import open_capture
from voiplog.cli.main import cli
from voiplog.packet import DecodeError, decode, format_ip
from voiplog.packet.hep import HepMessage, HepSettings, encode_hep3
from voiplog.pipeline import Pipeline
from voiplog.sip import looks_like_sip

PROXY = "198.51.100.9"
COLLECTOR = "203.0.113.1"
NODE = 2001


def calls() -> list[tuple[int, bytes]]:
    """Answered calls with media, a busy call, an IPv6 call and a registration."""
    a = make_dialog(1)
    a.basic_answered(T0, talk_s=1.0)
    b = make_dialog(2)
    b.basic_answered(T0 + 300_000, talk_s=0.5)
    busy = make_dialog(3)
    busy.invite(T0 + 500_000)
    busy.response(T0 + 520_000, 100)
    busy.response(T0 + 700_000, 486)
    busy.ack(T0 + 710_000, cseq=1)
    v6 = make_dialog(4, caller_ip="2001:db8::10", callee_ip="2001:db8:1::50")
    v6.basic_answered(T0 + 900_000, talk_s=0.3)
    reg = make_registration(1)
    reg.register(T0 + 100_000, 1)
    reg.reply(T0 + 130_000, 401, 1)
    reg.register(T0 + 200_000, 2, auth_user="3001")
    reg.reply(T0 + 230_000, 200, 2, contacts=[reg.default_contact()], expires=3600)
    return sorted_frames(a, b, busy, v6, reg)


def v2_packet(msg: HepMessage) -> bytes:
    width = len(msg.src_ip)
    header = struct.pack(
        ">BBBBHH", 2, 8 + 2 * width, 10 if width == 16 else 2, msg.proto, msg.src_port, msg.dst_port
    )
    seconds, micros = divmod(msg.ts_us, 1_000_000)
    return header + msg.src_ip + msg.dst_ip + struct.pack("<IIH2x", seconds, micros, NODE)


def as_hep(frames, version: int = 3, key: bytes | None = b"myHep", delay_us: int = 0):
    """The same traffic with every SIP datagram sent by a proxy as HEP to port 9060
    (arriving `delay_us` later); media stays as captured."""
    out = []
    for ts, frame in frames:
        proto, src, sport, dst, dport, payload = decode(1, frame)
        if 5060 <= sport <= 5070 or 5060 <= dport <= 5070:
            msg = HepMessage(3, proto, src, sport, dst, dport, ts, 1, payload, NODE, key)
            packet = encode_hep3(msg) if version == 3 else v2_packet(msg) + payload
            out.append((ts + delay_us, udp_frame(PROXY, 47000, COLLECTOR, 9060, packet)))
        else:
            out.append((ts, frame))
    out.sort(key=lambda f: f[0])
    return out


def records(frames, hep: HepSettings | None = None) -> tuple[list[dict], Pipeline]:
    out = []
    pipeline = Pipeline(out.append, hep=hep)
    pipeline.feed((ts, 1, frame) for ts, frame in frames)
    pipeline.finish()
    return [r.to_dict() for r in out], pipeline


def without_source(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "source"}


@pytest.mark.parametrize("version", [3, 2])
def test_hep_records_equal_captured_records(version):
    frames = calls()
    captured, _ = records(frames)
    key = b"myHep" if version == 3 else None
    fed, pipeline = records(as_hep(frames, version, key), HepSettings(auth_key=key))
    assert len(captured) == 5
    assert [without_source(r) for r in fed] == captured
    assert all("source" not in r for r in captured)
    assert [r["source"] for r in fed] == [{"type": "hep", "node_id": NODE}] * 5
    assert pipeline.stats.hep["sip"] == pipeline.stats.sip_messages > 20
    assert not pipeline.stats.weird.keys() - {"rtp.unmatched"}


def test_hep_arriving_late_keeps_the_senders_times():
    frames = calls()
    captured, _ = records(frames)
    fed, _ = records(as_hep(frames, delay_us=40_000))
    assert [without_source(r) for r in fed] == captured


def hep_copies(frames, node: int = NODE, delay_us: int = 0) -> list[tuple[int, bytes]]:
    """Only the HEP packets of `as_hep`: the SIP of `frames` as a proxy sent it."""
    packets = as_hep(frames, delay_us=delay_us)
    if node != NODE:
        packets = [
            (ts, frame.replace(NODE.to_bytes(4, "big"), node.to_bytes(4, "big")))
            for ts, frame in packets
        ]
    return [f for f in packets if f not in frames]


@pytest.mark.parametrize("delay_us", [1_500, -1_500, 400_000])
def test_sip_captured_and_sent_as_hep_is_one_message(delay_us):
    """A POP that captures the SIP and also gets it as HEP from the proxy writes the
    records of the capture alone: the second copy of each message is no retransmission."""
    frames = calls()
    captured, alone = records(frames)
    both = sorted(frames + hep_copies(frames, delay_us=delay_us), key=lambda f: f[0])
    fed, pipeline = records(both, HepSettings(auth_key=b"myHep"))
    assert [without_source(r) for r in fed] == captured
    assert all("retransmitted" not in " ".join(r["flags"]) for r in fed)
    assert pipeline.stats.sip_messages == alone.stats.sip_messages
    assert pipeline.stats.weird["sip.copy_from_another_source"] == alone.stats.sip_messages


def test_sip_captured_twice_within_microseconds_is_one_message():
    """A port mirrored twice: every SIP datagram comes again 40 µs later. The copies
    are no retransmissions (the media, not deduplicated here, is left out)."""
    everything = calls()
    hep = as_hep(everything)
    frames = [f for f in everything if f not in hep]  # the SIP datagrams
    alone, _ = records(frames)
    doubled = sorted(frames + [(ts + 40, frame) for ts, frame in frames], key=lambda f: f[0])
    fed, pipeline = records(doubled)
    assert fed == alone
    assert pipeline.stats.weird["sip.mirror_copy"] == len(frames)


def test_a_retransmission_both_sources_see_is_one_retransmission():
    call = make_dialog(5)
    call.invite(T0)
    call.invite(T0 + 500_000)  # the INVITE again, after T1: a retransmission
    call.response(T0 + 520_000, 100)
    call.answer(T0 + 900_000)
    call.ack(T0 + 910_000)
    call.bye(T0 + 3_000_000)
    frames = sorted_frames(call)
    captured, _ = records(frames)
    assert "invite_retransmitted" in captured[0]["flags"]
    both = sorted(frames + hep_copies(frames, delay_us=2_000), key=lambda f: f[0])
    fed, _ = records(both, HepSettings(auth_key=b"myHep"))
    assert fed == captured


def test_two_hep_nodes_reporting_one_hop_give_one_message():
    """Both proxies of a hop send its messages as HEP; nothing is captured but media."""
    frames = calls()
    captured, _ = records(frames)
    first = hep_copies(frames)
    media = [f for f in as_hep(frames) if f not in first]
    second = hep_copies(frames, node=2002, delay_us=3_000)
    fed, pipeline = records(sorted(first + second + media, key=lambda f: f[0]))
    assert [without_source(r) for r in fed] == captured
    assert pipeline.stats.weird["sip.copy_from_another_source"] == len(second)


def test_replay_of_a_hep_capture_writes_the_same_records(tmp_path):
    frames = calls()
    plain, hep = tmp_path / "plain.pcap", tmp_path / "hep.pcap"
    write_pcap(plain, frames)
    write_pcap(hep, as_hep(frames))
    config = tmp_path / "pop.toml"
    config.write_text('[hep]\nauth_key = "myHep"\nnode_ids = [2001]\n')
    outputs = []
    for path in (plain, hep):
        out = tmp_path / (path.stem + ".jsonl")
        result = CliRunner().invoke(
            cli,
            ["replay", str(path), "--config", str(config), "--store", "none", "--jsonl", str(out)],
        )
        assert result.exit_code == 0, result.output
        outputs.append([json.loads(line) for line in out.read_text().splitlines()])
    from_capture, from_hep = outputs
    assert len(from_capture) == 5
    assert [without_source(r) for r in from_hep] == from_capture
    assert {r["source"]["node_id"] for r in from_hep} == {NODE}


def test_refused_and_bad_hep_is_counted_not_fatal():
    frames = calls()
    hep = as_hep(frames)
    sent = sum(decode(1, frame)[4] == 9060 for _, frame in hep)
    fed, wrong_key = records(hep, HepSettings(auth_key=b"other"))
    assert wrong_key.stats.sip_messages == 0
    assert not [r for r in fed if r.get("call_id")]  # media alone: no call record
    assert wrong_key.stats.weird["hep.bad_auth_key"] == sent
    _, other_node = records(hep, HepSettings(node_ids=frozenset({7})))
    assert other_node.stats.weird["hep.node_not_accepted"] > 20
    garbage = [
        (T0, udp_frame(PROXY, 47000, COLLECTOR, 9060, b"HEP3\x00\x0aabc")),
        (T0 + 1, udp_frame(PROXY, 47000, COLLECTOR, 9060, b"\x09 nonsense")),
    ]
    fed, pipeline = records(garbage + hep)
    assert pipeline.stats.parse_errors["hep.bad_length"] == 1
    assert pipeline.stats.parse_errors["hep.bad_version"] == 1
    assert len(fed) == 5


def test_flood_from_one_sender_is_cut_and_counted():
    frames = calls()
    _, pipeline = records(as_hep(frames), HepSettings(max_rate_per_source=5))
    assert pipeline.stats.weird["hep.flood"] > 0
    assert pipeline.stats.hep["sip"] + pipeline.stats.weird["hep.flood"] > 20


def test_reports_are_counted_and_listener_path_feeds_sip():
    frames = calls()
    packets = []
    for ts, frame in as_hep(frames):
        _, src, _, _, dport, payload = decode(1, frame)
        if dport == 9060:
            packets.append((ts + 5, payload, format_ip(src)))
    report = HepMessage(3, 17, b"\1\2\3\4", 1, b"\5\6\7\10", 2, T0, 5, b'{"rtcp":1}', NODE)
    packets.insert(3, (T0, encode_hep3(report), PROXY))
    out = []
    pipeline = Pipeline(out.append)
    pipeline.feed_hep(packets)
    pipeline.finish()
    assert pipeline.stats.hep["rtcp_report"] == 1
    sip_only, _ = records([f for f in frames if decode(1, f[1])[1] and b"SIP/2.0" in f[1]])
    assert [without_source(r.to_dict()) for r in out] == sip_only


CORPUS = Path("/work/shared/corpus/pcaps")
CORPUS_UDP = [
    "BruteShark__sip-rtp-g711.pcap",
    "heplify__rtp_rtcp_sip.pcap",
    "heplify__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap",
    "nDPI__sip.pcap",
    "BruteShark__SIP_DTMF2.pcap",
    "ipfixprobe__sip-sample.pcap",
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus absent")
@pytest.mark.parametrize("name", CORPUS_UDP)
def test_corpus_calls_fed_by_hep_equal_captured(name):
    """Real captures with their SIP re-sent as HEP v3, as heplify would from the same
    wire: the records are those of the capture, each saying it came by HEP."""
    path = CORPUS / name
    if not path.exists():
        pytest.skip("shared corpus absent")
    with open_capture(path) as reader:
        frames = list(reader)
    hep = []
    for ts, linktype, frame in frames:
        try:
            datagram = decode(linktype, frame)
        except DecodeError:
            datagram = None
        if datagram is not None and datagram[0] == 17 and looks_like_sip(datagram[5]):
            proto, src, sport, dst, dport, payload = datagram
            msg = HepMessage(3, proto, src, sport, dst, dport, ts, 1, payload, NODE)
            frame = udp_frame(PROXY, 47000, COLLECTOR, 9060, encode_hep3(msg))
            linktype = 1
        hep.append((ts, linktype, frame))

    def replay(feed):
        out = []
        pipeline = Pipeline(out.append)
        pipeline.feed(feed)
        pipeline.finish()
        return [r.to_dict() for r in out], pipeline

    captured, _ = replay(frames)
    fed, pipeline = replay(hep)
    calls = [r for r in captured if r["kind"] in ("sip", "registration")]
    assert calls, "no call in the capture"
    assert pipeline.stats.hep["sip"] > 0
    assert [without_source(r) for r in fed] == captured
    assert all(r["source"]["type"] == "hep" for r in fed if r["kind"] in ("sip", "registration"))


def test_hep_config_section(tmp_path):
    from voiplog.config import ConfigError, load_config

    path = tmp_path / "pop.toml"
    path.write_text(
        '[hep]\nlisten = ["udp:0.0.0.0:9060", "tcp:[::1]:9061"]\nauth_key = "k"\n'
        "node_ids = [1, 2]\nports = [9060, 9064]\nmax_rate_per_source = 100\n"
    )
    settings = load_config(path).hep.settings()
    assert settings == HepSettings(
        ports=frozenset({9060, 9064}),
        auth_key=b"k",
        node_ids=frozenset({1, 2}),
        max_rate_per_source=100,
    )
    path.write_text('[hep]\nlisten = ["udp:somehost:9060"]\n')
    with pytest.raises(ConfigError, match=r"pop.toml: hep.listen: .*'somehost' is not an IP"):
        load_config(path)


def test_hep_over_tcp_in_a_capture():
    """A capture of a HEP-over-TCP feed: segments cut across HEP packets, two out of
    order and one retransmitted; the records are those of the captured SIP."""
    from scapy.layers.inet import IP, TCP

    from tests.sipcraft import ETHER

    frames = calls()
    stream = b""
    stamps = []
    for ts, frame in frames:
        _, src, sport, dst, dport, payload = decode(1, frame)
        if 5060 <= sport <= 5070 or 5060 <= dport <= 5070:
            msg = HepMessage(3, 17, src, sport, dst, dport, ts, 1, payload, NODE)
            stamps.append((len(stream), ts))
            stream += encode_hep3(msg)
    media = [(ts, 1, f) for ts, f in frames if decode(1, f)[2] not in range(5060, 5071)
             and decode(1, f)[4] not in range(5060, 5071)]  # fmt: skip

    def segment(seq: int, data: bytes, flags: str = "PA") -> bytes:
        tcp = TCP(sport=47000, dport=9060, seq=seq, ack=1, flags=flags)
        return bytes(ETHER / IP(src=PROXY, dst=COLLECTOR) / tcp / data)

    isn = 1000
    out = [(T0 - 1000, 1, segment(isn, b"", "S"))]
    pieces = []
    for i in range(0, len(stream), 700):
        when = max(ts for off, ts in stamps if off <= i) + 100
        pieces.append((when, isn + 1 + i, stream[i : i + 700]))
    pieces[3], pieces[4] = pieces[4], pieces[3]  # out of order, the pipeline waits
    pieces.insert(6, pieces[5])  # a retransmission
    out += [(max(when, pieces[max(n - 1, 0)][0]), 1, segment(seq, data))
            for n, (when, seq, data) in enumerate(pieces)]  # fmt: skip
    feed = sorted(out + media, key=lambda f: f[0])
    captured, _ = records(frames)
    fed, pipeline = records([(ts, f) for ts, _, f in feed])
    assert pipeline.stats.hep["sip"] == len(stamps)
    assert [without_source(r) for r in fed] == captured
