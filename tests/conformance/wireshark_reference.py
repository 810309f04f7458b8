"""Readers of the Wireshark reference files that accompany the conformance corpus."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_CALL = re.compile(
    r"^(?P<start>[\d.]+)\s+(?P<stop>[\d.]+)\s+(?P<pkts>\d+)\s+(?P<init>\S+)\s+"
    r"(?P<state>COMPLETED|IN CALL \(no BYE\)|CANCELLED|REJECTED \d+|CALL SETUP/UNKNOWN|\S.*?)\s+"
    r"(?P<call_id>\S+) \| (?P<parties>.*?) \| (?P<details>.*)$"
)
# A stream with no known clock rate shows -1.000 as its minimum jitter, and a
# one-packet stream -1.000 as its minimum delta.
_STREAM = re.compile(
    r"^\s*(?P<start>[\d.]+)\s+(?P<end>[\d.]+)\s+(?P<src>\S+)\s+(?P<sport>\d+)\s+(?P<dst>\S+)\s+"
    r"(?P<dport>\d+)\s+0x(?P<ssrc>[0-9A-Fa-f]+)\s+(?P<payload>.+?)\s+(?P<pkts>\d+)\s+"
    r"(?P<lost>-?\d+) \(.*?\)\s+(?P<min_delta>-?[\d.]+)\s+(?P<mean_delta>[\d.]+)\s+"
    r"(?P<max_delta>[\d.]+)\s+(?P<min_jitter>-?[\d.]+)\s+(?P<mean_jitter>[\d.]+)\s+"
    r"(?P<max_jitter>[\d.]+)"
)


@dataclass(frozen=True)
class ReferenceCall:
    call_id: str
    state: str
    methods: dict[str, int]
    responses: dict[str, int]

    @property
    def has_invite(self) -> bool:
        return self.methods.get("INVITE", 0) > 0


@dataclass(frozen=True)
class ReferenceStream:
    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    payload: str
    packets: int
    lost: int
    max_jitter_ms: float
    mean_jitter_ms: float

    @property
    def key(self) -> tuple[str, int, str, int, int]:
        return (self.src, self.sport, self.dst, self.dport, self.ssrc)


def _counts(details: str, label: str) -> dict[str, int]:
    for part in details.split("; "):
        if part.startswith(label + "="):
            out = {}
            for item in filter(None, part[len(label) + 1 :].split(",")):
                name, _, count = item.rpartition(":")
                out[name] = out.get(name, 0) + int(count or 0)
            return out
    return {}


def read_calls(path: Path) -> list[ReferenceCall]:
    calls = []
    for line in path.read_text(errors="replace").splitlines():
        if "(no Call-ID) |" in line:
            # A message without the mandatory Call-ID belongs to no call or
            # registration; voiplog counts it as sip.missing_header.
            continue
        m = _CALL.match(line)
        if m:
            details = m["details"]
            calls.append(
                ReferenceCall(
                    call_id=m["call_id"],
                    state=m["state"],
                    methods=_counts(details, "methods"),
                    responses=_counts(details, "responses"),
                )
            )
    return calls


def read_streams(path: Path) -> list[ReferenceStream]:
    streams = []
    for line in path.read_text(errors="replace").splitlines():
        m = _STREAM.match(line)
        if m:
            streams.append(
                ReferenceStream(
                    src=m["src"],
                    sport=int(m["sport"]),
                    dst=m["dst"],
                    dport=int(m["dport"]),
                    ssrc=int(m["ssrc"], 16),
                    payload=m["payload"],
                    packets=int(m["pkts"]),
                    lost=int(m["lost"]),
                    max_jitter_ms=float(m["max_jitter"]),
                    mean_jitter_ms=float(m["mean_jitter"]),
                )
            )
    return streams


def expected_disposition(state: str) -> tuple[str, bool | None]:
    """Wireshark's VoIP-calls state as (disposition, has BYE); None when it does not say."""
    from voiplog.calls import judge

    if state == "COMPLETED":
        return "answered", True
    if state.startswith("IN CALL"):
        return "answered", False
    if state == "CANCELLED":
        return "cancelled", None
    if state.startswith("REJECTED"):
        return judge(int(state.split()[1]), False).value, None
    return "no_final_response", None
