"""The benchmark capture generator: deterministic, and its sidecar tells the truth.

Captures are read back with a plain struct reader, independent of the generator's code,
and checked packet by packet: time order, checksums, SIP counts, dispositions and RTP
streams with their loss.
"""

from __future__ import annotations

import itertools
import shutil
import struct
from collections import Counter
from pathlib import Path

import pytest

from bench import gencapture, tshark_stats

SMALL = {
    "calls_concurrent": 6,
    "packets": 700,
    "mean_hold_s": 1.0,
    "loss_call_fraction": 1.0,
    "reorder_call_fraction": 1.0,
    "invite_retransmit_fraction": 0.5,
}
DISPOSITION_OF_STATUS = {200: "answered", 486: "busy", 487: "cancelled", 404: "rejected"}


def _checksum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _read_pcap(path: Path) -> list[tuple[int, bytes]]:
    data = path.read_bytes()
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)
    offset, records = 24, []
    while offset < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, offset)
        assert incl == orig
        records.append((sec * 1_000_000 + usec, data[offset + 16 : offset + 16 + incl]))
        offset += 16 + incl
    assert offset == len(data)
    return records


def _udp(frame: bytes) -> tuple[str, int, str, int, bytes]:
    assert frame[12:14] == b"\x08\x00"
    ip = frame[14:34]
    assert ip[0] == 0x45 and ip[9] == 17
    assert _checksum_ok(ip), "IPv4 header checksum"
    total_length = struct.unpack("!H", ip[2:4])[0]
    udp = frame[34 : 14 + total_length]
    sport, dport, length, checksum = struct.unpack("!HHHH", udp[:8])
    assert length == len(udp)
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, length)
    assert checksum != 0 and _checksum_ok(pseudo + udp), "UDP checksum"
    src = ".".join(str(b) for b in ip[12:16])
    dst = ".".join(str(b) for b in ip[16:20])
    return src, sport, dst, dport, udp[8:]


def _read_back(path: Path) -> dict:
    """Everything the sidecar claims, recomputed from the capture alone."""
    records = _read_pcap(path)
    times = [ts for ts, _ in records]
    assert times == sorted(times), "records out of timestamp order"
    requests: Counter[str] = Counter()
    responses: Counter[str] = Counter()
    invites_seen: set[bytes] = set()
    retransmissions = 0
    final_status: dict[str, int] = {}
    streams: dict[tuple, list[int]] = {}
    for _, frame in records:
        src, sport, dst, dport, payload = _udp(frame)
        if 5060 in (sport, dport):
            head, _, _ = payload.partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            if lines[0].startswith("SIP/2.0 "):
                status = int(lines[0].split()[1])
                responses[str(status)] += 1
                if status >= 200 and headers["CSeq"].endswith(" INVITE"):
                    final_status.setdefault(headers["Call-ID"], status)
            else:
                method = lines[0].split()[0]
                requests[method] += 1
                if method == "INVITE":
                    retransmissions += payload in invites_seen
                    invites_seen.add(payload)
        else:
            assert payload[0] == 0x80 and len(payload) == 172
            seq, _, ssrc = struct.unpack("!HII", payload[2:12])
            streams.setdefault((src, sport, dst, dport, ssrc), []).append(seq)
    packets = lost = 0
    reordered = False
    for seqs in streams.values():
        # unwrap 16-bit sequence numbers against the first one
        first = seqs[0]
        extended = [first + ((s - first + 0x8000) & 0xFFFF) - 0x8000 for s in seqs]
        packets += len(seqs)
        lost += max(extended) - min(extended) + 1 - len(seqs)
        reordered |= any(b < a for a, b in itertools.pairwise(extended))
    return {
        "packets": len(records),
        "sip_messages": sum(requests.values()) + sum(responses.values()),
        "sip_requests": dict(requests),
        "sip_responses": dict(responses),
        "invite_retransmissions": retransmissions,
        "calls": len(final_status),
        "calls_by_disposition": Counter(DISPOSITION_OF_STATUS[s] for s in final_status.values()),
        "rtp_streams": len(streams),
        "rtp_packets": packets,
        "rtp_lost": lost,
        "reordered": reordered,
    }


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory) -> tuple[Path, gencapture.Expected]:
    path = tmp_path_factory.mktemp("gencapture") / "small.pcap"
    return path, gencapture.generate(path, seed=7, **SMALL)


def test_same_seed_gives_same_bytes(tmp_path, small_capture):
    path, _ = small_capture
    again = tmp_path / "again.pcap"
    gencapture.generate(again, seed=7, **SMALL)
    assert again.read_bytes() == path.read_bytes()
    assert gencapture.sidecar_path(again).read_text() == gencapture.sidecar_path(path).read_text()
    other = tmp_path / "other.pcap"
    gencapture.generate(other, seed=8, **SMALL)
    assert other.read_bytes() != path.read_bytes()


def test_sidecar_matches_what_was_written(small_capture):
    path, expected = small_capture
    assert gencapture.Expected.load(gencapture.sidecar_path(path)) == expected
    seen = _read_back(path)
    assert expected.packets == seen["packets"]
    assert 300 <= expected.packets <= 1500
    assert expected.sip_messages == seen["sip_messages"]
    assert expected.sip_requests == seen["sip_requests"]
    assert expected.sip_responses == seen["sip_responses"]
    assert expected.invite_retransmissions == seen["invite_retransmissions"]
    assert expected.calls == seen["calls"] == len(expected.call_records)
    assert {k: v for k, v in expected.calls_by_disposition.items() if v} == dict(
        seen["calls_by_disposition"]
    )
    assert expected.rtp_streams == seen["rtp_streams"]
    assert expected.rtp_packets == seen["rtp_packets"]
    assert expected.rtp_lost == seen["rtp_lost"]
    assert expected.packets == expected.sip_messages + expected.rtp_packets
    # the impairments asked for are really in the capture
    assert expected.rtp_lost > 0
    assert expected.rtp_reordered_pairs > 0 and seen["reordered"]
    assert expected.invite_retransmissions > 0


def test_every_call_in_the_sidecar_is_complete(small_capture):
    _, expected = small_capture
    for call in expected.call_records:
        assert call["started_at"] <= call["ended_at"]
        if call["disposition"] == "answered":
            assert len(call["media"]) == 2
            assert call["duration_s"] >= 1.0
        else:
            assert call["media"] == [] and call["duration_s"] == 0.0


def test_duration_mode_keeps_calls_inside_the_window(tmp_path):
    expected = gencapture.generate(
        tmp_path / "timed.pcap", calls_concurrent=3, duration_s=8.0, seed=3, mean_hold_s=1.0
    )
    assert expected.calls > 0
    assert expected.capture_duration_s <= 8.0
    assert expected.calls_peak_concurrent <= 3


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_sees_the_ground_truth(small_capture):
    path, expected = small_capture
    stats = tshark_stats.run(shutil.which("tshark"), str(path))
    assert tshark_stats.disagreements(stats, expected) == []
