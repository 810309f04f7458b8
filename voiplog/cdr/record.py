"""The call-detail record: one flat, documented structure per call (CDR contract v1).

A record is what gets written; the mutable state used to build it lives in
`voiplog.calls`. Every field below is part of the JSON contract of DESIGN.md, in
the order it is written. Optional fields are ``None`` when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

try:
    # hashlib's own blake2b, without hashlib loading OpenSSL's libcrypto (3 ms at start).
    from _blake2 import blake2b
except ImportError:  # a Python built without it
    from hashlib import blake2b

from voiplog._frozen import fast_frozen_init
from voiplog.cdr.disposition import Disposition, EndedBy, RecordKind

CONTRACT_VERSION = 1


def format_ts(ts_us: int | None) -> str | None:
    """Packet time (integer microseconds since the epoch) as ISO 8601 UTC with 'Z'."""
    if ts_us is None:
        return None
    seconds, micros = divmod(ts_us, 1_000_000)
    # A record's times (set-up, ringing, answer, end, its media) fall in a few
    # seconds, shared with the records written around it: the text of each second
    # is kept, in a table emptied when it is full.
    prefix = _SECONDS.get(seconds)
    if prefix is None:
        if len(_SECONDS) >= _MAX_SECONDS:
            _SECONDS.clear()
        prefix = _SECONDS[seconds] = f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}."
    return f"{prefix}{micros:06d}Z"


_SECONDS: dict[int, str] = {}
_MAX_SECONDS = 4096

# Base32 (RFC 4648, lower case) of every 10-bit value: two letters of a uid each.
_B32_PAIRS = [
    a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567"
]


def make_uid(*parts: object) -> str:
    """A stable record id: the same identifying facts always give the same uid."""
    digest = blake2b(
        "\x1f".join(["" if p is None else str(p) for p in parts]).encode("utf-8", "surrogatepass"),
        digest_size=10,
    ).digest()
    # "C" and the base32 of the 80 bits, as base64.b32encode (lower-cased) writes them.
    n = int.from_bytes(digest, "big")
    pairs = _B32_PAIRS
    return "".join(
        (
            "C",
            pairs[n >> 70],
            pairs[n >> 60 & 1023],
            pairs[n >> 50 & 1023],
            pairs[n >> 40 & 1023],
            pairs[n >> 30 & 1023],
            pairs[n >> 20 & 1023],
            pairs[n >> 10 & 1023],
            pairs[n & 1023],
        )
    )


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class MediaStream:
    """One RTP stream: one SSRC sent from one source address:port."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    ssrc: int
    payload_type: int
    codec: str | None
    packets: int
    lost: int  # expected minus received, as Wireshark counts it
    jitter_max_ms: float
    jitter_mean_ms: float
    first_at: str
    last_at: str

    @classmethod
    def from_summary(cls, s: dict[str, Any]) -> MediaStream:
        """The record of an RTP stream from its statistics (`RtpStream.summary()`)."""
        return cls(
            src_ip=s["src_ip"],
            src_port=s["src_port"],
            dst_ip=s["dst_ip"],
            dst_port=s["dst_port"],
            ssrc=s["ssrc"],
            payload_type=s["payload_type"],
            codec=s["codec"],
            packets=s["packets"],
            lost=s["lost"],
            jitter_max_ms=s["jitter_max_ms"],
            jitter_mean_ms=s["jitter_mean_ms"],
            first_at=format_ts(s["first_us"]),
            last_at=format_ts(s["last_us"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in MEDIA_KEYS}


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call-detail record, field for field the CDR JSON contract v1."""

    uid: str  # stable id: same input, same uid
    kind: RecordKind
    call_id: str | None  # SIP Call-ID
    caller: str | None  # user part of From, unescaped
    callee: str | None  # user part of To, unescaped
    caller_uri: str | None  # From URI without tag
    callee_uri: str | None  # To URI without tag
    request_uri: str | None  # Request-URI of the initial INVITE
    caller_ip: str | None  # source of the initial INVITE
    caller_port: int | None
    callee_ip: str | None  # destination of the initial INVITE
    callee_port: int | None
    transport: str  # udp, tcp, tls, ws, wss, sctp
    subscriber_ip: str | None  # the endpoint inside the POP's subscriber networks
    direction: str | None  # outbound, inbound, internal, transit
    started_at: str  # first INVITE packet
    ringing_at: str | None  # first 180/183
    answered_at: str | None  # first 2xx to the INVITE
    ended_at: str | None  # see DESIGN.md: BYE, final response, CANCEL or last packet
    duration_s: float  # ended_at - answered_at, 0.0 when not answered
    setup_ms: int | None  # INVITE -> first ringing or final response
    disposition: Disposition
    final_status: int | None  # SIP status of the final answer to the INVITE
    ended_by: EndedBy | None
    user_agent: str | None  # caller's User-Agent
    media: tuple[MediaStream, ...] = ()
    flags: tuple[str, ...] = ()
    subscriber: dict[str, Any] | None = None  # enrichment of the subscriber line
    remote: dict[str, Any] | None = None  # enrichment of the far end
    extra: dict[str, Any] = field(default_factory=dict)  # keys beyond the contract

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the contract: the fields in their order (`CALL_KEYS`),
        then the keys beyond it."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _CALL_FIELDS}
        out["media"] = [m.to_dict() for m in self.media]
        out["flags"] = list(self.flags)
        out["version"] = CONTRACT_VERSION
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


def record_keys(cls) -> tuple[str, ...]:
    """The JSON keys of a record class, in their order: its fields (but `extra`,
    whose keys come after), then `version`. The one definition of a record's
    keys: the store's columns are derived from it too."""
    return (*(f.name for f in fields(cls) if f.name != "extra"), "version")


MEDIA_KEYS: tuple[str, ...] = tuple(f.name for f in fields(MediaStream))
CALL_KEYS = record_keys(CallRecord)
_CALL_FIELDS = CALL_KEYS[:-1]
