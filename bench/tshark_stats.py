"""Read what ``tshark -q -z sip,stat -z rtp,streams`` prints, and hold it against ground truth.

The benchmark runs tshark as the reference; parsing its summary lets each run confirm
that tshark saw the same traffic the generator says it wrote (so both tools are timed
on work that was actually done), and lets the generator itself be checked.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

TSHARK_STATS_ARGS = ("-q", "-z", "sip,stat", "-z", "rtp,streams")

# "   0.048   12.345   10.0.0.1 40000   203.0.113.20 16384 0x1A2B3C4D   g711U   612   3 (0.5%) ..."
_RTP_ROW = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+"
    r"(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+(?P<dport>\d+)\s+"
    r"(?P<ssrc>0x[0-9A-Fa-f]+)\s+(?P<payload>\S+(?: \S+)*?)\s+"
    r"(?P<packets>\d+)\s+(?P<lost>-?\d+)\s+\("
)
_SIP_TOTAL = re.compile(r"Number of SIP messages:\s*(\d+)")
_SIP_RESENT = re.compile(r"Number of resent SIP messages:\s*(\d+)")
_SIP_STATUS = re.compile(r"^\s*SIP (\d{3}) .*?:\s*(\d+) Packets")
_SIP_METHOD = re.compile(r"^\s*([A-Z]+)\s*:\s*(\d+) Packets")


@dataclass(frozen=True, slots=True)
class RtpStreamRow:
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int
    payload: str
    packets: int
    lost: int


@dataclass(frozen=True, slots=True)
class TsharkStats:
    sip_messages: int | None
    sip_resent: int | None
    sip_responses: dict[str, int] = field(default_factory=dict)
    sip_requests: dict[str, int] = field(default_factory=dict)
    rtp_streams: list[RtpStreamRow] = field(default_factory=list)

    @property
    def rtp_packets(self) -> int:
        return sum(s.packets for s in self.rtp_streams)

    @property
    def rtp_lost(self) -> int:
        return sum(s.lost for s in self.rtp_streams)


def parse(text: str) -> TsharkStats:
    streams: list[RtpStreamRow] = []
    responses: dict[str, int] = {}
    requests: dict[str, int] = {}
    total = resent = None
    section = None
    for line in text.splitlines():
        if "RTP Streams" in line:
            section = "rtp"
            continue
        if "SIP Statistics" in line:
            section = "sip"
            continue
        if section == "rtp":
            match = _RTP_ROW.match(line)
            if match:
                streams.append(
                    RtpStreamRow(
                        src_ip=match["src"],
                        src_port=int(match["sport"]),
                        dst_ip=match["dst"],
                        dst_port=int(match["dport"]),
                        ssrc=int(match["ssrc"], 16),
                        payload=match["payload"],
                        packets=int(match["packets"]),
                        lost=int(match["lost"]),
                    )
                )
        elif section == "sip":
            if match := _SIP_TOTAL.search(line):
                total = int(match[1])
            elif match := _SIP_RESENT.search(line):
                resent = int(match[1])
            elif match := _SIP_STATUS.match(line):
                responses[match[1]] = responses.get(match[1], 0) + int(match[2])
            elif match := _SIP_METHOD.match(line):
                requests[match[1]] = requests.get(match[1], 0) + int(match[2])
    return TsharkStats(total, resent, responses, requests, streams)


def run(tshark: str, capture: str) -> TsharkStats:
    result = subprocess.run(
        [tshark, "-r", capture, *TSHARK_STATS_ARGS],
        check=True,
        capture_output=True,
        text=True,
    )
    return parse(result.stdout)


def disagreements(stats: TsharkStats, expected) -> list[str]:
    """How tshark's view differs from a generator's ``Expected``; empty when it agrees."""
    problems = []

    def compare(what: str, seen: object, truth: object) -> None:
        if seen != truth:
            problems.append(f"{what}: tshark {seen}, ground truth {truth}")

    compare("SIP messages", stats.sip_messages, expected.sip_messages)
    compare("resent SIP messages", stats.sip_resent, expected.invite_retransmissions)
    compare("SIP requests", stats.sip_requests, expected.sip_requests)
    compare("SIP responses", stats.sip_responses, expected.sip_responses)
    compare("RTP streams", len(stats.rtp_streams), expected.rtp_streams)
    compare("RTP packets", stats.rtp_packets, expected.rtp_packets)
    compare("RTP lost", stats.rtp_lost, expected.rtp_lost)
    truth = {
        (m["src_ip"], m["src_port"], m["dst_ip"], m["dst_port"], m["ssrc"]): (
            m["packets"],
            m["lost"],
        )
        for call in expected.call_records
        for m in call["media"]
    }
    seen = {
        (s.src_ip, s.src_port, s.dst_ip, s.dst_port, s.ssrc): (s.packets, s.lost)
        for s in stats.rtp_streams
    }
    wrong = [key for key in truth if seen.get(key) != truth[key]]
    extra = [key for key in seen if key not in truth]
    for key in wrong[:10]:
        problems.append(
            f"RTP stream {key}: tshark (packets, lost) {seen.get(key)}, ground truth {truth[key]}"
        )
    for key in extra[:10]:
        problems.append(f"RTP stream {key}: seen by tshark only")
    return problems
