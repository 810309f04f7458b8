"""Crafted captures of messenger-app calls, and of app traffic that is not a call.

Each generator returns a `CraftedCall`: Ethernet frames ``[(ts_us, bytes)]`` sorted by
time, the application voiplog should name, the subscriber's address and the
five-tuples used. Calls follow the apps' published wire formats:

* ICE/TURN apps (Messenger, Signal, Snapchat, Google Meet, a browser's WebRTC call):
  RFC 8445 checks with MESSAGE-INTEGRITY and FINGERPRINT, an RFC 8656 allocation
  (401, then authenticated), permissions, ChannelBind, then SRTP inside ChannelData
  or inside Send/Data indications (XOR-PEER-ADDRESS + DATA), or directly once ICE
  moves to a peer-to-peer pair; DTLS-SRTP keying where the app uses it.
* WhatsApp: STUN to several relays on UDP 3478 with its own 0x4000-range
  attributes and its 0x0800 relay messages, then SRTP straight to the relay.
* Telegram (libtgvoip reflectors, UDP 500-600): a 16-byte peer tag, then either the
  reflector's special packets (twelve 0xFF bytes and a type) or msg_key + ciphertext.
* Zoom: the SFU header (type 0x05, sequence, direction) on UDP 8801, then the media
  encapsulation (15 audio, 33-35 RTCP) carrying RTP with an encrypted payload.
* Viber: little-endian length and type words, control pings of types 3 and 9.
* IMO: one-byte keep-alives sent twice, its 10- and 11-byte control messages.
* Discord: the 74-byte IP discovery exchange, then RTP with AEAD payloads.
* Teams: MS-TURN (MS-VERSION, candidate identifier, implementation version) with
  Send/Data indications; KakaoTalk and LINE: STUN, then SRTP and RTCP to their relays.

The far ends are in the operators' published address ranges; the subscriber is in
100.64.0.0/10 or 10.0.0.0/8 (2001:db8::/32 for IPv6). Payloads are random bytes: the
captures hold no audio. Everything derives from ``seed``, so a capture is
reproducible byte for byte. Frames are built with `struct` (scapy would be far too
slow for captures of many thousand packets), with correct lengths and checksums.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import random
import struct
import sys
import zlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests import pcapwriter
from tests.flows._craft import dtls_client_hello, dtls_record, dtls_server_hello, tls_client_hello
from tests.rtp._packets import rtp

__all__ = [
    "APPS",
    "T0",
    "TRAPS",
    "CraftedCall",
    "app_call",
    "chat_tls",
    "dns_burst",
    "game_stream",
    "keepalive_udp",
    "missed_call",
    "mix",
    "ntp",
    "quic_app",
    "quic_video",
    "voice_message",
    "wireguard_tunnel",
    "write_pcap",
]

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z in µs
MS = 1_000
S = 1_000_000

Frame = tuple[int, bytes]
Flow = tuple[str, str, int, str, int]
"""``(transport, subscriber ip, subscriber port, far ip, far port)``."""


@dataclass(frozen=True, slots=True)
class CraftedCall:
    """One crafted call, missed call or trap."""

    app: str
    """The application voiplog should name (``whatsapp``, ``teams``...)."""
    kind: str
    """``call``, ``missed`` or the trap's name (``quic_video``, ``wireguard``...)."""
    subscriber_ip: str
    frames: list[Frame]
    """Ethernet frames sorted by time."""
    flows: tuple[Flow, ...]
    """Every five-tuple used, subscriber side first, in order of first use."""

    @property
    def first_us(self) -> int:
        return self.frames[0][0]

    @property
    def last_us(self) -> int:
        return self.frames[-1][0]

    @property
    def is_call(self) -> bool:
        """True for an answered call: the one kind that must become a call record."""
        return self.kind == "call"


# --- frames -----------------------------------------------------------------------

_MAC_SUB = bytes.fromhex("020000000001")
_MAC_NET = bytes.fromhex("020000000002")


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class _Wire:
    """Builds frames with consistent IPv4 ids and appends them to one capture."""

    def __init__(self, subscriber: str) -> None:
        self.subscriber = subscriber
        self.frames: list[Frame] = []
        self.flows: list[Flow] = []
        self._ip_id = 0

    def add_flow(self, flow: Flow) -> None:
        if flow not in self.flows:
            self.flows.append(flow)

    def frame(self, ts: int, proto: int, src: str, dst: str, l4: bytes) -> None:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        up = src == self.subscriber
        macs = (_MAC_NET + _MAC_SUB) if up else (_MAC_SUB + _MAC_NET)
        if s.version == 4:
            pseudo = s.packed + d.packed + struct.pack(">BBH", 0, proto, len(l4))
            l4 = _with_l4_checksum(proto, pseudo, l4)
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            header = struct.pack(
                ">BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self._ip_id, 0x4000, 64 if up else 52,
                proto, 0, s.packed, d.packed,
            )  # fmt: skip
            header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
            self.frames.append((ts, macs + b"\x08\x00" + header + l4))
        else:
            pseudo = s.packed + d.packed + struct.pack(">IxxxB", len(l4), proto)
            l4 = _with_l4_checksum(proto, pseudo, l4)
            header = struct.pack(">IHBB", 0x60000000, len(l4), proto, 64 if up else 52)
            self.frames.append((ts, macs + b"\x86\xdd" + header + s.packed + d.packed + l4))

    def udp(self, ts: int, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        self.frame(
            ts, 17, src, dst, struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
        )

    def done(self, app: str, kind: str) -> CraftedCall:
        self.frames.sort(key=lambda f: f[0])
        return CraftedCall(app, kind, self.subscriber, self.frames, tuple(self.flows))


def _with_l4_checksum(proto: int, pseudo: bytes, l4: bytes) -> bytes:
    offset = 6 if proto == 17 else 16
    value = _checksum(pseudo + l4)
    if proto == 17 and value == 0:
        value = 0xFFFF
    return l4[:offset] + struct.pack(">H", value) + l4[offset + 2 :]


@dataclass
class _Leg:
    """One UDP five-tuple of a capture, subscriber side first."""

    wire: _Wire
    sub_port: int
    far: str
    far_port: int

    def __post_init__(self) -> None:
        self.wire.add_flow(("udp", self.wire.subscriber, self.sub_port, self.far, self.far_port))

    def up(self, ts: int, payload: bytes) -> None:
        self.wire.udp(ts, self.wire.subscriber, self.sub_port, self.far, self.far_port, payload)

    def down(self, ts: int, payload: bytes) -> None:
        self.wire.udp(ts, self.far, self.far_port, self.wire.subscriber, self.sub_port, payload)


@dataclass
class _Tcp:
    """A TCP connection: handshake, segments of at most ``mss`` bytes, ACKs and FIN."""

    wire: _Wire
    rng: random.Random
    sub_port: int
    far: str
    far_port: int
    mss: int = 1440
    seq_up: int = field(init=False)
    seq_down: int = field(init=False)

    def __post_init__(self) -> None:
        self.seq_up = self.rng.getrandbits(32)
        self.seq_down = self.rng.getrandbits(32)
        self.wire.add_flow(("tcp", self.wire.subscriber, self.sub_port, self.far, self.far_port))

    def _segment(
        self, ts: int, up: bool, flags: int, data: bytes = b"", options: bytes = b""
    ) -> None:
        sub = self.wire.subscriber
        src, sport, dst, dport = (
            (sub, self.sub_port, self.far, self.far_port)
            if up
            else (self.far, self.far_port, sub, self.sub_port)
        )
        seq, ack = (self.seq_up, self.seq_down) if up else (self.seq_down, self.seq_up)
        offset = (20 + len(options)) // 4
        header = struct.pack(
            ">HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF if flags & 0x10 else 0,
            offset << 4, flags, 65535 if up else 28960, 0, 0,
        )  # fmt: skip
        self.wire.frame(ts, 6, src, dst, header + options + data)
        advance = len(data) + (1 if flags & 0x03 else 0)
        if up:
            self.seq_up += advance
        else:
            self.seq_down += advance

    def open(self, ts: int, rtt_us: int) -> int:
        mss = struct.pack(">BBH", 2, 4, self.mss) + b"\x01\x01\x04\x02"
        self._segment(ts, True, 0x02, options=mss)
        self._segment(ts + rtt_us, False, 0x12, options=mss)
        self._segment(ts + rtt_us + 50, True, 0x10)
        return ts + rtt_us + 50

    def send(self, ts: int, up: bool, data: bytes, gap_us: int = 40) -> int:
        """Send ``data`` in MSS-sized PSH/ACK segments; the other side ACKs every second one."""
        for n, start in enumerate(range(0, len(data), self.mss)):
            self._segment(ts, up, 0x18, data[start : start + self.mss])
            if n % 2:
                self._segment(ts + 200, not up, 0x10)
            ts += gap_us
        return ts

    def close(self, ts: int, rtt_us: int) -> int:
        self._segment(ts, True, 0x11)
        self._segment(ts + rtt_us, False, 0x11)
        self._segment(ts + rtt_us + 50, True, 0x10)
        return ts + rtt_us + 50


# --- STUN / TURN (RFC 8489, 8656, 8445) --------------------------------------------

MAGIC = 0x2112A442
BINDING, ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 1, 3, 4, 6, 7, 8, 9
REQUEST, INDICATION, SUCCESS, ERROR = 0, 1, 2, 3

A_MAPPED = 0x0001
A_USERNAME = 0x0006
A_INTEGRITY = 0x0008
A_ERROR_CODE = 0x0009
A_CHANNEL_NUMBER = 0x000C
A_LIFETIME = 0x000D
A_XOR_PEER = 0x0012
A_DATA = 0x0013
A_REALM = 0x0014
A_NONCE = 0x0015
A_XOR_RELAYED = 0x0016
A_REQUESTED_TRANSPORT = 0x0019
A_XOR_MAPPED = 0x0020
A_PRIORITY = 0x0024
A_USE_CANDIDATE = 0x0025
A_SOFTWARE = 0x8022
A_FINGERPRINT = 0x8028
A_ICE_CONTROLLED = 0x8029
A_ICE_CONTROLLING = 0x802A
A_GOOG_NETWORK_INFO = 0xC057
A_MS_VERSION = 0x8008
A_MS_CANDIDATE_ID = 0x8054
A_MS_SERVICE_QUALITY = 0x8055
A_MS_IMPLEMENTATION_VERSION = 0x8070


def stun_type(method: int, klass: int) -> int:
    return (
        (method & 0x000F)
        | (method & 0x0070) << 1
        | (method & 0x0F80) << 2
        | (klass & 1) << 4
        | (klass & 2) << 7
    )


def stun(
    method: int,
    klass: int,
    txid: bytes,
    attributes: list[tuple[int, bytes]] = (),
    *,
    key: bytes | None = None,
    fingerprint: bool = False,
    message_type: int | None = None,
) -> bytes:
    """A STUN message, with MESSAGE-INTEGRITY (HMAC-SHA1 under ``key``) and FINGERPRINT."""
    body = b"".join(
        struct.pack(">HH", kind, len(value)) + value + bytes(-len(value) % 4)
        for kind, value in attributes
    )
    kind = stun_type(method, klass) if message_type is None else message_type

    def header(length: int) -> bytes:
        return struct.pack(">HHI", kind, length, MAGIC) + txid

    if key is not None:
        mac = hmac.new(key, header(len(body) + 24) + body, hashlib.sha1).digest()
        body += struct.pack(">HH", A_INTEGRITY, 20) + mac
    if fingerprint:
        crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
        body += struct.pack(">HHI", A_FINGERPRINT, 4, crc)
    return header(len(body)) + body


def xor_address(ip: str, port: int, txid: bytes) -> bytes:
    packed = ipaddress.ip_address(ip).packed
    mask = MAGIC.to_bytes(4, "big") + txid
    family = 1 if len(packed) == 4 else 2
    return struct.pack(">BBH", 0, family, port ^ (MAGIC >> 16)) + bytes(
        a ^ b for a, b in zip(packed, mask, strict=False)
    )


def channel_data(channel: int, data: bytes) -> bytes:
    """RFC 8656 ChannelData over UDP (no padding needed on UDP, RFC 8656 section 12.5)."""
    return struct.pack(">HH", channel, len(data)) + data


# --- media ------------------------------------------------------------------------


def _srtp(
    rng: random.Random, seq: int, ts: int, ssrc: int, pt: int, size: int, ext: bytes | None
) -> bytes:
    """RTP header in clear, encrypted payload, 10-byte authentication tag (RFC 3711)."""
    return rtp(seq, ts, pt, ssrc=ssrc, extension=ext, payload=rng.randbytes(size)) + rng.randbytes(
        10
    )


def _srtcp(rng: random.Random, ssrc: int, index: int, blocks: int = 1) -> bytes:
    """An SRTCP compound (SR + SDES) with its encrypted part, E flag and index, tag."""
    words = 6 + 6 * blocks
    header = struct.pack(">BBHI", 0x80 | blocks, 200, words, ssrc)
    return (
        header
        + rng.randbytes(4 * words - 4 + 20)
        + struct.pack(">I", 0x80000000 | index)
        + rng.randbytes(10)
    )


def _rtcp_sr(rng: random.Random, ssrc: int, ntp_s: int, rtp_ts: int, packets: int) -> bytes:
    """A plain RTCP SR with one report block, then an SDES CNAME (RFC 3550)."""
    sr = struct.pack(
        ">BBHIIIIII", 0x81, 200, 12, ssrc, ntp_s, rng.getrandbits(32), rtp_ts, packets, packets * 90
    ) + struct.pack(">IIIIII", rng.getrandbits(32), 0, rng.getrandbits(16), 30, 0, 0)
    cname = b"\x01\x10" + rng.randbytes(8).hex().encode()
    chunk = struct.pack(">I", ssrc) + cname + bytes(-(4 + len(cname)) % 4 or 4)
    return sr + struct.pack(">BBH", 0x81, 202, len(chunk) // 4) + chunk


def _webrtc_ext(rng: random.Random, ts_us: int) -> bytes:
    """RFC 8285 one-byte extensions libwebrtc sends on audio: audio level, abs-send-time."""
    level = bytes([0x10, rng.randint(0x80, 0xFF)])
    abs_send = bytes([0x32]) + (((ts_us << 18) // S) & 0xFFFFFF).to_bytes(3, "big")
    return level + abs_send + bytes(2)


# --- the apps ---------------------------------------------------------------------

APPS = (
    "whatsapp",
    "telegram",
    "signal",
    "imo",
    "viber",
    "messenger",
    "zoom",
    "discord",
    "teams",
    "google_meet",
    "snapchat",
    "kakaotalk",
    "line",
    "webrtc",
)
_ALIASES = {"skype": "teams", "skype/teams": "teams", "meet": "google_meet", "duo": "google_meet"}

# Far ends, in ranges the operators publish (and nDPI 4.2 lists, where it lists any).
_RELAYS4 = {
    "whatsapp": ("157.240.195.54", "31.13.72.52", "157.240.195.52"),
    "messenger": ("157.240.20.51", "31.13.86.5", "179.60.192.3"),
    "telegram": ("91.108.56.130", "149.154.167.51", "91.108.4.10"),
    "signal": ("34.117.136.13", "35.190.61.200"),
    "zoom": ("209.9.211.10", "8.5.128.10", "213.19.144.10"),
    "teams": ("52.113.5.5", "52.114.1.1", "52.112.0.10"),
    "google_meet": ("74.125.250.10", "142.250.82.20"),
    "snapchat": ("35.186.224.47", "34.102.215.99"),
    "viber": ("52.0.252.10", "52.0.253.15"),
    "imo": ("169.136.136.10", "169.136.140.21"),
    "discord": ("66.22.196.10", "66.22.220.12"),
    "kakaotalk": ("1.201.1.10", "1.201.2.3"),
    "line": ("147.92.158.10", "147.92.159.20"),
    "webrtc": ("3.120.114.203", "18.197.20.41"),
}
_RELAYS6 = {
    "whatsapp": ("2a03:2880:f2ff:c3:face:b00c:0:167", "2a03:2880:f0ff:c:face:b00c:0:3"),
    "messenger": ("2a03:2880:f0ff:10:face:b00c:0:24d9", "2a03:2880:f2ff:14:face:b00c:0:3"),
    "telegram": ("2001:b28:f23d:f001::e", "2001:67c:4e8:f004::a"),
    "google_meet": ("2001:4860:4864:5:8000::1", "2001:4860:4864:5:8000::2"),
    "webrtc": ("2a05:d014:9f0:7a00::3", "2a05:d014:9f0:7a01::8"),
}
# The other party's public (server-reflexive) address, for peer-to-peer pairs.
_PEERS4 = ("81.2.69.160", "89.160.20.112", "175.16.199.12", "2.125.160.216", "67.43.156.14")
_PEERS6 = ("2a02:8108:1c40:3e00::5", "2600:1700:5a0:ae10::19", "2003:e6:3f1f:3a00::c")


def _subscriber(rng: random.Random, requested: str | None, ipv6: bool) -> str:
    if requested is None:
        requested = f"100.64.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    address = ipaddress.ip_address(requested)
    if ipv6 and address.version == 4:
        a, b, c, d = address.packed
        return str(ipaddress.ip_address(f"2001:db8:{a:x}{b:02x}:{c:x}{d:02x}::1"))
    return str(address)


def _port(rng: random.Random) -> int:
    return rng.randint(32768, 60999)


@dataclass
class _Media:
    """One direction of a call's media: its framing, sequence number and SSRC."""

    rng: random.Random
    wrap: Callable[[random.Random, int, int, int, int], bytes]
    """(rng, seq, rtp_ts, ssrc, t_us) -> datagram payload."""
    control: Callable[[random.Random, int, int, int], bytes]
    """(rng, ssrc, index, t_us) -> the RTCP datagram payload."""
    seq: int = 0
    ssrc: int = 0
    rtcp_index: int = 0

    def __post_init__(self) -> None:
        self.seq = self.rng.getrandbits(16)
        self.ssrc = self.rng.getrandbits(32)

    def packet(self, t: int, n: int) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.wrap(self.rng, self.seq, n * 960, self.ssrc, t)

    def report(self, t: int) -> bytes:
        self.rtcp_index += 1
        return self.control(self.rng, self.ssrc, self.rtcp_index, t)


def _opus(rng: random.Random) -> int:
    return rng.randint(70, 150)


def _media_srtp_webrtc(rng, seq, ts, ssrc, t):
    return _srtp(rng, seq, ts, ssrc, 111, _opus(rng), _webrtc_ext(rng, t))


def _media_srtp_plain(pt: int, ext: bool) -> Callable:
    def wrap(rng, seq, ts, ssrc, t):
        extension = rng.randbytes(4) if ext else None
        return _srtp(rng, seq, ts, ssrc, pt, _opus(rng), extension)

    return wrap


def _control_srtcp(rng, ssrc, index, t):
    return _srtcp(rng, ssrc, index)


def _control_rtcp(rng, ssrc, index, t):
    return _rtcp_sr(rng, ssrc, (t // S) + 2_208_988_800, index * 48000 * 5, index * 250)


class _Telegram:
    """libtgvoip over a reflector: the 16-byte peer tag before every datagram."""

    def __init__(self, rng: random.Random) -> None:
        self.peer_tag = _no_ff(rng, 16)

    def media(self, rng, seq, ts, ssrc, t):
        # msg_key, then AES-IGE ciphertext: whole 16-byte blocks.
        return self.peer_tag + rng.randbytes(16) + rng.randbytes(16 * rng.randint(5, 9))

    def control(self, rng, ssrc, index, t):
        return self.peer_tag + rng.randbytes(16) + rng.randbytes(32)

    def special(self, rng: random.Random, kind: int, body: bytes) -> bytes:
        """A reflector control packet: twelve 0xFF bytes, then a little-endian type."""
        return self.peer_tag + b"\xff" * 12 + struct.pack("<i", kind) + body


def _no_ff(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(0, 255) for _ in range(size))


def _viber_message(rng: random.Random, kind: int, body_len: int) -> bytes:
    """Viber's UDP framing: total length and message type, little-endian 16-bit words."""
    return struct.pack("<HH", 4 + body_len, kind) + rng.randbytes(body_len)


def _viber_media(rng, seq, ts, ssrc, t):
    return _viber_message(rng, 0x0010, rng.randint(90, 170))


def _viber_control(rng, ssrc, index, t):
    return _viber_message(rng, 0x0012, rng.randint(40, 60))


def _imo_media(rng, seq, ts, ssrc, t):
    return bytes([0x0A, 0x01]) + struct.pack(">H", seq) + rng.randbytes(rng.randint(80, 160))


def _imo_control(rng, ssrc, index, t):
    return bytes([0x0A, 0x05]) + struct.pack(">H", index) + rng.randbytes(36)


# Zoom's media encapsulation: type -> header length before the RTP/RTCP packet.
_ZOOM_HEADER = {15: 19, 16: 24, 33: 16, 34: 16, 35: 16}


def _zoom_encap(kind: int, seq: int, ts: int, inner: bytes) -> bytes:
    header = struct.pack(">BHI", kind, seq & 0xFFFF, ts & 0xFFFFFFFF)
    return header + bytes(_ZOOM_HEADER[kind] - len(header)) + inner


class _Zoom:
    """Zoom's SFU header before the media encapsulation, when a server forwards the media."""

    def __init__(self, sfu: bool, up: bool) -> None:
        self.sfu, self.up, self.counter = sfu, up, 0

    def _sfu(self, inner: bytes) -> bytes:
        if not self.sfu:
            return inner
        self.counter += 1
        return struct.pack(">BHIB", 0x05, self.counter & 0xFFFF, 0, 0 if self.up else 4) + inner

    def media(self, rng, seq, ts, ssrc, t):
        inner = rtp(seq, ts, 112, ssrc=ssrc, payload=rng.randbytes(_opus(rng)))
        return self._sfu(_zoom_encap(15, seq, ts, inner))

    def control(self, rng, ssrc, index, t):
        return self._sfu(_zoom_encap(33, index, t // MS, _control_rtcp(rng, ssrc, index, t)))


def _discord_media(rng, seq, ts, ssrc, t):
    """RTP with an AEAD payload (aead_aes256_gcm_rtpsize): ciphertext, tag, 4-byte nonce."""
    header = rtp(seq, ts, 120, ssrc=ssrc, extension=rng.randbytes(4), payload=b"")
    return header + rng.randbytes(_opus(rng)) + rng.randbytes(16) + struct.pack(">I", seq)


def _discord_control(rng, ssrc, index, t):
    header = struct.pack(">BBHI", 0x81, 201, 7, ssrc)
    return header + rng.randbytes(24) + rng.randbytes(16) + struct.pack(">I", index)


def _discord_discovery(kind: int, ssrc: int, ip: str, port: int) -> bytes:
    """Discord's IP discovery: type, length 70, SSRC, NUL-padded address, port."""
    return (
        struct.pack(">HHI", kind, 70, ssrc) + ip.encode().ljust(64, b"\0") + struct.pack(">H", port)
    )


# --- a call -----------------------------------------------------------------------


@dataclass
class _Call:
    """The state shared by the steps of one call."""

    app: str
    rng: random.Random
    wire: _Wire
    start: int
    duration_us: int
    relay: bool
    p2p_switch: bool
    ipv6: bool
    muted: bool
    answered: bool
    sub_port: int = 0
    relay_ip: str = ""
    peer_ip: str = ""
    peer_port: int = 0
    ufrag: bytes = b""
    peer_ufrag: bytes = b""
    ice_key: bytes = b""
    turn_key: bytes = b""

    def __post_init__(self) -> None:
        rng = self.rng
        self.sub_port = _port(rng)
        relays = (_RELAYS6 if self.ipv6 else _RELAYS4)[self.app]
        self.relay_ip = rng.choice(relays)
        self.alt_relays = [r for r in relays if r != self.relay_ip]
        self.peer_ip = rng.choice(_PEERS6 if self.ipv6 else _PEERS4)
        self.peer_port = _port(rng)
        self.public_ip = (
            "2001:db8:ffff::" + f"{rng.randint(1, 0xFFFF):x}"
            if self.ipv6
            else f"203.0.113.{rng.randint(1, 254)}"
        )
        self.public_port = _port(rng)
        self.ufrag = rng.randbytes(3).hex().encode()
        self.peer_ufrag = rng.randbytes(3).hex().encode()
        self.ice_key = rng.randbytes(22).hex().encode()
        self.turn_key = hashlib.md5(rng.randbytes(16)).digest()
        self.relayed_port = rng.randint(49152, 65535)

    def txid(self) -> bytes:
        return self.rng.randbytes(12)

    def jitter(self, t: int, spread_us: int = 3 * MS) -> int:
        return t + self.rng.randint(0, spread_us)

    # -- ICE / TURN ------------------------------------------------------------

    def binding_check(
        self, *, controlling: bool = True, nominate: bool = False, extra=(), goog: bool = True
    ) -> bytes:
        attrs = [(A_USERNAME, self.peer_ufrag + b":" + self.ufrag)]
        if goog:
            attrs.append((A_GOOG_NETWORK_INFO, struct.pack(">HH", 1, 10)))
        attrs.append(
            (A_ICE_CONTROLLING if controlling else A_ICE_CONTROLLED, self.rng.randbytes(8))
        )
        if nominate:
            attrs.append((A_USE_CANDIDATE, b""))
        attrs.append((A_PRIORITY, struct.pack(">I", 0x6E7F1EFF)))
        attrs.extend(extra)
        return stun(BINDING, REQUEST, self.txid(), attrs, key=self.ice_key, fingerprint=True)

    def binding_success(self, request: bytes, ip: str, port: int) -> bytes:
        txid = request[8:20]
        return stun(
            BINDING, SUCCESS, txid, [(A_XOR_MAPPED, xor_address(ip, port, txid))],
            key=self.ice_key, fingerprint=True,
        )  # fmt: skip

    def gather(self, leg: _Leg, t: int) -> int:
        """A server-reflexive candidate: a Binding request with no attributes, answered."""
        txid = self.txid()
        leg.up(t, stun(BINDING, REQUEST, txid))
        t += self.rtt()
        mapped = xor_address(self.public_ip, self.public_port, txid)
        leg.down(t, stun(BINDING, SUCCESS, txid, [(A_XOR_MAPPED, mapped)]))
        return t + 2 * MS

    def rtt(self) -> int:
        return self.rng.randint(25, 90) * MS

    def allocate(self, leg: _Leg, t: int, realm: bytes, software: bytes | None = None) -> int:
        """RFC 8656 section 7: unauthenticated Allocate, 401 with nonce, then the real one."""
        transport = (A_REQUESTED_TRANSPORT, b"\x11\0\0\0")
        soft = [(A_SOFTWARE, software)] if software else []
        txid = self.txid()
        leg.up(t, stun(ALLOCATE, REQUEST, txid, [transport, *soft], fingerprint=True))
        t += self.rtt()
        nonce = self.rng.randbytes(8).hex().encode()
        error = struct.pack(">HBB", 0, 4, 1) + b"Unauthorized"
        leg.down(
            t,
            stun(
                ALLOCATE, ERROR, txid,
                [(A_ERROR_CODE, error), (A_REALM, realm), (A_NONCE, nonce)], fingerprint=True,
            ),
        )  # fmt: skip
        t += 3 * MS
        self.nonce, self.realm = nonce, realm
        txid = self.txid()
        user = (A_USERNAME, self.rng.randbytes(12).hex().encode())
        auth = [user, (A_REALM, realm), (A_NONCE, nonce)]
        leg.up(
            t,
            stun(
                ALLOCATE,
                REQUEST,
                txid,
                [transport, *auth, *soft],
                key=self.turn_key,
                fingerprint=True,
            ),
        )
        t += self.rtt()
        leg.down(
            t,
            stun(
                ALLOCATE, SUCCESS, txid,
                [
                    (A_XOR_RELAYED, xor_address(leg.far, self.relayed_port, txid)),
                    (A_LIFETIME, struct.pack(">I", 600)),
                    (A_XOR_MAPPED, xor_address(self.public_ip, self.public_port, txid)),
                ],
                key=self.turn_key, fingerprint=True,
            ),
        )  # fmt: skip
        self.turn_user = user
        return t + 2 * MS

    def turn_request(self, leg: _Leg, t: int, method: int, attrs: list) -> int:
        txid = self.txid()
        auth = [self.turn_user, (A_REALM, self.realm), (A_NONCE, self.nonce)]
        leg.up(t, stun(method, REQUEST, txid, [*attrs, *auth], key=self.turn_key, fingerprint=True))
        t += self.rtt()
        leg.down(t, stun(method, SUCCESS, txid, key=self.turn_key, fingerprint=True))
        return t + MS

    def peer_attr(self) -> tuple[int, bytes]:
        return (A_XOR_PEER, xor_address(self.peer_ip, self.peer_port, bytes(12)))

    def send_indication(self, data: bytes) -> bytes:
        txid = self.txid()
        peer = (A_XOR_PEER, xor_address(self.peer_ip, self.peer_port, txid))
        return stun(SEND, INDICATION, txid, [peer, (A_DATA, data)])

    def data_indication(self, data: bytes) -> bytes:
        txid = self.txid()
        peer = (A_XOR_PEER, xor_address(self.peer_ip, self.peer_port, txid))
        return stun(DATA, INDICATION, txid, [peer, (A_DATA, data)])


def _media(
    call: _Call,
    up_send: Callable[[int, bytes], None],
    down_send: Callable[[int, bytes], None],
    up: _Media,
    down: _Media,
    t0: int,
    t1: int,
    keepalive: Callable[[int], None] | None = None,
) -> None:
    """Both directions of a call from t0 to t1: 50 pps each and RTCP every ~5 s, or, muted,
    only RTCP every 1-5 s; ``keepalive`` is called every ~5 s (ICE consent, relay pings)."""
    rng = call.rng
    if call.muted:
        for send, media in ((up_send, up), (down_send, down)):
            t = t0 + rng.randint(0, 500 * MS)
            while t < t1:
                send(t, media.report(t))
                t += rng.randint(1 * S, 5 * S)
    else:
        n = 0
        t = t0
        next_rtcp = [t0 + rng.randint(1 * S, 3 * S), t0 + rng.randint(1 * S, 3 * S)]
        while t < t1:
            up_send(call.jitter(t, 2 * MS), up.packet(t, n))
            down_send(call.jitter(t + 11 * MS, 6 * MS), down.packet(t, n))
            for k, (send, media) in enumerate(((up_send, up), (down_send, down))):
                if t >= next_rtcp[k]:
                    send(t + 7 * MS + k * 3 * MS, media.report(t))
                    next_rtcp[k] = t + rng.randint(4 * S, 6 * S)
            n += 1
            t += 20 * MS
    if keepalive is not None:
        t = t0 + rng.randint(2 * S, 5 * S)
        while t < t1:
            keepalive(t)
            t += rng.randint(4500 * MS, 5500 * MS)


def _ringing(call: _Call) -> int:
    """How long the callee's phone rings: answered after 2-9 s, missed after 30-45 s."""
    return (call.rng.randint(2, 9) if call.answered else call.rng.randint(30, 45)) * S


def _ring(call: _Call, t: int, ping: Callable[[int], None]) -> int:
    """The relay pings about once a second while the callee's phone rings; the end."""
    ring_end = t + _ringing(call)
    while t < ring_end:
        ping(t)
        t += call.rng.randint(900, 1100) * MS
    return t


def _talk(
    call: _Call,
    up_send: Callable,
    down_send: Callable,
    up: _Media,
    down: _Media,
    t: int,
    keepalive: Callable | None,
    open_direct: Callable[[int], _Leg],
    delay: int = 50 * MS,
) -> None:
    """The answered call's media from ``t``: through the relay (``up_send`` and
    ``down_send``), then, from halfway (``p2p_switch``) or from the start (no
    ``relay``), over the peer-to-peer leg that ``open_direct(switch)`` opens."""
    end = t + call.duration_us
    switch = t + call.duration_us // 2 if call.p2p_switch else end
    if not call.relay:
        switch = t
    _media(call, up_send, down_send, up, down, t, switch, keepalive)
    if switch < end:
        direct = open_direct(switch)
        _media(call, direct.up, direct.down, up, down, switch + delay, end)


# The TURN realms the operators' relays send in their 401 responses.
_REALMS = {
    "messenger": b"facebook.com",
    "signal": b"signal.org",
    "snapchat": b"snapchat.com",
    "google_meet": b"google.com",
    "webrtc": b"turn.example.net",
    "teams": b"rtcmedia",
}


def _ice_turn_call(call: _Call, encapsulation: str, dtls: bool) -> None:
    """libwebrtc-style ICE with a TURN relay, media relayed and optionally moving to p2p."""
    rng, t = call.rng, call.start
    leg = _Leg(
        call.wire, call.sub_port, call.relay_ip, 3478 if call.app != "google_meet" else 19305
    )
    realm = _REALMS[call.app]
    if call.app == "webrtc":
        # A browser gathers its server-reflexive candidate from a public STUN server.
        stun_server = "2001:4860:4864:5:8000::1" if call.ipv6 else "74.125.250.129"
        t = call.gather(_Leg(call.wire, call.sub_port, stun_server, 19302), t)
    else:
        t = call.gather(leg, t)
    t = call.allocate(leg, t, realm)
    t += _ringing(call)
    channel = 0x4000 + rng.randint(0, 0x3FF)
    t = call.turn_request(leg, t, CREATE_PERMISSION, [call.peer_attr()])
    if encapsulation == "channel":
        t = call.turn_request(
            leg,
            t,
            CHANNEL_BIND,
            [(A_CHANNEL_NUMBER, struct.pack(">HH", channel, 0)), call.peer_attr()],
        )

    def wrap_up(data: bytes) -> bytes:
        return (
            channel_data(channel, data)
            if encapsulation == "channel"
            else call.send_indication(data)
        )

    def wrap_down(data: bytes) -> bytes:
        return (
            channel_data(channel, data)
            if encapsulation == "channel"
            else call.data_indication(data)
        )

    # ICE checks: the peer's server-reflexive address directly (unanswered for now),
    # and the relayed pair, which answers.
    direct = _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)
    for k in range(3):
        direct.up(t + k * 100 * MS, call.binding_check(goog=call.app != "webrtc"))
    request = call.binding_check(nominate=True)
    leg.up(t, wrap_up(request))
    t += call.rtt()
    leg.down(t, wrap_down(call.binding_success(request, call.public_ip, call.public_port)))
    reverse = call.binding_check(controlling=False)
    leg.down(t + 5 * MS, wrap_down(reverse))
    leg.up(t + 6 * MS, wrap_up(call.binding_success(reverse, call.peer_ip, call.peer_port)))
    t += 10 * MS
    if not call.answered:
        # Ringing unanswered: the allocation is refreshed, then released.
        t = call.turn_request(leg, t, REFRESH, [(A_LIFETIME, struct.pack(">I", 0))])
        return
    if dtls:
        t = _dtls_handshake(
            call, lambda ts, d: leg.up(ts, wrap_up(d)), lambda ts, d: leg.down(ts, wrap_down(d)), t
        )
    up = _Media(rng, _media_srtp_webrtc, _control_srtcp)
    down = _Media(rng, _media_srtp_webrtc, _control_srtcp)
    end = t + call.duration_us
    switch = t + call.duration_us // 2 if call.p2p_switch or not call.relay else end
    if not call.relay:
        switch = t
    consent = lambda ts: leg.up(ts, wrap_up(call.binding_check()))  # noqa: E731
    _media(
        call,
        lambda ts, d: leg.up(ts, wrap_up(d)),
        lambda ts, d: leg.down(ts, wrap_down(d)),
        up,
        down,
        t,
        switch,
        consent,
    )
    if switch < end:
        request = call.binding_check(nominate=True)
        direct.up(switch, request)
        direct.down(
            switch + call.rtt(), call.binding_success(request, call.public_ip, call.public_port)
        )
        reverse = call.binding_check(controlling=False)
        direct.down(switch + 5 * MS, reverse)
        direct.up(switch + 6 * MS, call.binding_success(reverse, call.peer_ip, call.peer_port))
        consent = lambda ts: direct.up(ts, call.binding_check())  # noqa: E731
        _media(call, direct.up, direct.down, up, down, switch + 100 * MS, end, consent)
    call.turn_request(leg, end + 50 * MS, REFRESH, [(A_LIFETIME, struct.pack(">I", 0))])


def _dtls_handshake(call: _Call, up: Callable, down: Callable, t: int) -> int:
    """DTLS 1.2 with use_srtp (RFC 5764): the flights of a WebRTC handshake."""
    rng = call.rng
    up(t, dtls_client_hello())
    t += call.rtt()
    flight = dtls_server_hello() + dtls_record(22, rng.randbytes(rng.randint(400, 600)), seq=2)
    down(t, flight + dtls_record(22, rng.randbytes(120), seq=3))
    t += 5 * MS
    up(
        t,
        dtls_record(22, rng.randbytes(450), seq=1)
        + dtls_record(20, b"\x01", seq=2)
        + dtls_record(22, rng.randbytes(40), epoch=1),
    )
    t += call.rtt()
    down(t, dtls_record(20, b"\x01", seq=4) + dtls_record(22, rng.randbytes(40), epoch=1))
    return t + 5 * MS


def _whatsapp_call(call: _Call) -> None:
    """Relay election pings to several WhatsApp relays, 0x0800 relay messages, SRTP."""
    rng, t = call.rng, call.start
    token = rng.randbytes(16)
    legs = []
    for ip in [call.relay_ip, *call.alt_relays]:
        leg = _Leg(call.wire, call.sub_port, ip, 3478)
        legs.append(leg)
        txid = call.txid()
        leg.up(t, stun(BINDING, REQUEST, txid, [(0x4000, token), (0x4002, struct.pack(">I", 1))]))
        leg.down(
            t + call.rtt(),
            stun(
                BINDING, SUCCESS, txid,
                [(A_XOR_MAPPED, xor_address(call.public_ip, call.public_port, txid)), (0x4001, rng.randbytes(4))],
            ),
        )  # fmt: skip
        t += 15 * MS
    leg = legs[0]

    def relay_message(ts: int) -> None:
        txid = call.txid()
        leg.up(
            ts, stun(0, 0, txid, [(0x4000, token), (0x4003, rng.randbytes(8))], message_type=0x0800)
        )
        leg.down(
            ts + call.rtt(), stun(0, 0, txid, [(0x4004, rng.randbytes(4))], message_type=0x0801)
        )

    t = _ring(call, t, relay_message)
    if not call.answered:
        return
    wrap = _media_srtp_plain(120, ext=True)
    up, down = _Media(rng, wrap, _control_srtcp), _Media(rng, wrap, _control_srtcp)

    def open_direct(switch: int) -> _Leg:
        direct = _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)
        txid = call.txid()
        direct.up(switch, stun(BINDING, REQUEST, txid, [(0x4000, token)]))
        direct.down(switch + call.rtt(), stun(BINDING, SUCCESS, txid, [(0x4000, token)]))
        return direct

    _talk(call, leg.up, leg.down, up, down, t, relay_message, open_direct)


def _telegram_call(call: _Call) -> None:
    """libtgvoip: reflector pings to every reflector, then media through the best one."""
    rng, t = call.rng, call.start
    tg = _Telegram(rng)
    legs = []
    for ip in [call.relay_ip, *call.alt_relays]:
        leg = _Leg(call.wire, call.sub_port, ip, rng.choice((532, 596, 597)))
        legs.append(leg)
        query = rng.randbytes(8)
        leg.up(t, tg.special(rng, -2, query))
        leg.down(t + call.rtt(), tg.special(rng, -4, query + rng.randbytes(16)))
        t += 5 * MS
    leg = legs[0]

    def ping(ts: int) -> None:
        leg.up(ts, tg.special(rng, -2, rng.randbytes(8)))
        leg.down(ts + call.rtt(), tg.special(rng, -4, rng.randbytes(24)))

    def control(ts: int) -> None:
        leg.up(ts, tg.control(rng, 0, 0, ts))
        leg.down(ts + call.rtt(), tg.control(rng, 0, 0, ts))

    t = _ring(call, t, control)
    if not call.answered:
        return
    up, down = _Media(rng, tg.media, tg.control), _Media(rng, tg.media, tg.control)

    def open_direct(switch: int) -> _Leg:
        # Peer-to-peer datagrams carry no peer tag: msg_key and ciphertext only.
        strip = lambda f: lambda r, *a: f(r, *a)[16:]  # noqa: E731
        up.wrap, down.wrap = strip(tg.media), strip(tg.media)
        up.control, down.control = strip(tg.control), strip(tg.control)
        return _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)

    _talk(call, leg.up, leg.down, up, down, t, ping, open_direct, delay=0)


def _viber_call(call: _Call) -> None:
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, 7985)

    def ping(ts: int) -> None:
        leg.up(ts, _viber_message(rng, 3, 8))
        leg.down(ts + call.rtt(), _viber_message(rng, 9, 16))

    t = _ring(call, t, ping)
    if not call.answered:
        return
    up, down = _Media(rng, _viber_media, _viber_control), _Media(rng, _viber_media, _viber_control)

    def open_direct(switch: int) -> _Leg:
        ping(switch)
        return _Leg(call.wire, call.sub_port, call.peer_ip, 5242)

    _talk(call, leg.up, leg.down, up, down, t, ping, open_direct)


def _imo_call(call: _Call) -> None:
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, rng.choice((10000, 10010, 10020)))
    leg.up(t, bytes([0x09, 0x02]) + rng.randbytes(8))
    leg.down(t + call.rtt(), bytes([0x00, 0x09, 0x03]) + rng.randbytes(8))
    t += 200 * MS

    def keepalive(ts: int) -> None:
        # One byte, sent twice: the relay echoes it.
        byte = bytes([rng.randint(0, 255)])
        leg.up(ts, byte)
        leg.up(ts + 30 * MS, byte)
        leg.down(ts + call.rtt(), byte)

    t = _ring(call, t, keepalive)
    if not call.answered:
        return
    up, down = _Media(rng, _imo_media, _imo_control), _Media(rng, _imo_media, _imo_control)

    def open_direct(switch: int) -> _Leg:
        direct = _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)
        direct.up(switch, bytes([0x09, 0x02]) + rng.randbytes(8))
        direct.down(switch + call.rtt(), bytes([0x00, 0x09, 0x03]) + rng.randbytes(8))
        return direct

    _talk(call, leg.up, leg.down, up, down, t, keepalive, open_direct)


def _zoom_call(call: _Call) -> None:
    """A Zoom meeting through a multimedia router on UDP 8801; p2p without the SFU header."""
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, 8801)
    sfu_up, sfu_down = _Zoom(True, True), _Zoom(True, False)
    # The client's first datagrams to the router: SFU control (type 0x01), echoed.
    for _ in range(3):
        leg.up(t, struct.pack(">BHIB", 0x01, rng.getrandbits(16), 0, 0) + rng.randbytes(24))
        leg.down(
            t + call.rtt(),
            struct.pack(">BHIB", 0x02, rng.getrandbits(16), 0, 4) + rng.randbytes(24),
        )
        t += 120 * MS
    if not call.answered:
        t += _ringing(call)
        return
    up = _Media(rng, sfu_up.media, sfu_up.control)
    down = _Media(rng, sfu_down.media, sfu_down.control)

    def open_direct(switch: int) -> _Leg:
        direct = _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)
        txid = call.txid()
        direct.up(switch, stun(BINDING, REQUEST, txid, [(0x0103, rng.randbytes(8))]))
        direct.down(
            switch + call.rtt(),
            stun(
                BINDING,
                SUCCESS,
                txid,
                [(A_XOR_MAPPED, xor_address(call.public_ip, call.public_port, txid))],
            ),
        )
        p2p_up, p2p_down = _Zoom(False, True), _Zoom(False, False)
        up.wrap, up.control = p2p_up.media, p2p_up.control
        down.wrap, down.control = p2p_down.media, p2p_down.control
        return direct

    _talk(call, leg.up, leg.down, up, down, t, None, open_direct)


def _discord_call(call: _Call) -> None:
    rng, t = call.rng, call.start
    # The voice gateway: a WebSocket over TLS to the voice server's host name,
    # whose address the UDP voice connection then uses too.
    region = rng.choice(("rotterdam", "frankfurt", "us-east", "singapore"))
    host = f"{region}{rng.randint(1000, 9999)}.discord.media"
    _tls_exchange(rng, call.wire, host, call.relay_ip, t, rng.randint(200, 600), 400)
    t += 400 * MS
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, rng.randint(50000, 65535))
    up = _Media(rng, _discord_media, _discord_control)
    down = _Media(rng, _discord_media, _discord_control)
    leg.up(t, _discord_discovery(1, up.ssrc, "", 0))
    leg.down(t + call.rtt(), _discord_discovery(2, up.ssrc, call.public_ip, call.public_port))
    t += 300 * MS
    counter = iter(range(1 << 32))

    def keepalive(ts: int) -> None:
        # An 8-byte counter every 5 s holds the NAT binding; the server ignores it.
        leg.up(ts, struct.pack("<Q", next(counter)))

    if not call.answered:
        # A caller waits in the voice channel while the other side rings.
        for ts in range(t, t + _ringing(call), 5 * S):
            keepalive(ts)
        return
    end = t + call.duration_us
    _media(call, leg.up, leg.down, up, down, t, end, keepalive)


def _teams_call(call: _Call) -> None:
    """MS-TURN to a Teams transport relay: Send/Data indications carry the media."""
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, 3478)
    ms = [
        (A_MS_VERSION, struct.pack(">I", 6)),
        (A_MS_CANDIDATE_ID, bytes([rng.randint(1, 255), 0, 0, 0])),
        (A_MS_IMPLEMENTATION_VERSION, struct.pack(">I", 3)),
    ]
    txid = call.txid()
    leg.up(
        t, stun(ALLOCATE, REQUEST, txid, [*ms, (A_MS_SERVICE_QUALITY, struct.pack(">HH", 1, 0))])
    )
    t += call.rtt()
    error = struct.pack(">HBB", 0, 4, 1) + b"Unauthorized"
    call.nonce, call.realm = rng.randbytes(16).hex().encode(), _REALMS["teams"]
    leg.down(
        t,
        stun(
            ALLOCATE,
            ERROR,
            txid,
            [(A_ERROR_CODE, error), (A_REALM, call.realm), (A_NONCE, call.nonce)],
        ),
    )
    t += 3 * MS
    call.turn_user = (A_USERNAME, rng.randbytes(20))
    txid = call.txid()
    auth = [call.turn_user, (A_REALM, call.realm), (A_NONCE, call.nonce)]
    leg.up(t, stun(ALLOCATE, REQUEST, txid, [*ms, *auth], key=call.turn_key))
    t += call.rtt()
    leg.down(
        t,
        stun(
            ALLOCATE, SUCCESS, txid,
            [(A_XOR_RELAYED, xor_address(call.relay_ip, call.relayed_port, txid)),
             (A_LIFETIME, struct.pack(">I", 480)), (A_MS_VERSION, struct.pack(">I", 6))],
            key=call.turn_key,
        ),
    )  # fmt: skip
    t += _ringing(call)
    t = call.turn_request(leg, t, CREATE_PERMISSION, [call.peer_attr(), *ms])
    check = call.binding_check(goog=False, extra=ms[1:])
    leg.up(t, call.send_indication(check))
    leg.down(
        t + call.rtt(),
        call.data_indication(call.binding_success(check, call.public_ip, call.public_port)),
    )
    t += 200 * MS
    if not call.answered:
        return
    wrap = _media_srtp_plain(104, ext=False)
    up, down = _Media(rng, wrap, _control_srtcp), _Media(rng, wrap, _control_srtcp)
    _talk(
        call, lambda ts, d: leg.up(ts, call.send_indication(d)),
        lambda ts, d: leg.down(ts, call.data_indication(d)), up, down, t, None,
        lambda switch: _open_checked(call, switch, nominate=True, extra=ms[1:]),
    )  # fmt: skip


def _open_checked(call: _Call, switch: int, **check: Any) -> _Leg:
    """A peer-to-peer leg opened by one ICE check (no Google attributes) and its answer."""
    direct = _Leg(call.wire, call.sub_port, call.peer_ip, call.peer_port)
    request = call.binding_check(goog=False, **check)
    direct.up(switch, request)
    direct.down(
        switch + call.rtt(), call.binding_success(request, call.public_ip, call.public_port)
    )
    return direct


def _relay_rtp_call(call: _Call, port: int, control: Callable) -> None:
    """STUN to the operator's relay, then SRTP and RTCP straight to it (KakaoTalk, LINE)."""
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, port)
    t = call.gather(leg, t)
    ring_end = t + _ringing(call)
    while t < ring_end:
        t = call.gather(leg, t) + rng.randint(900, 1100) * MS
    if not call.answered:
        return
    wrap = _media_srtp_plain(96, ext=False)
    up, down = _Media(rng, wrap, control), _Media(rng, wrap, control)
    _talk(call, leg.up, leg.down, up, down, t, None, lambda switch: _open_checked(call, switch))


def _google_meet_call(call: _Call) -> None:
    """Meet's ICE-lite media servers on UDP 19305: checks, DTLS-SRTP, consent checks."""
    rng, t = call.rng, call.start
    leg = _Leg(call.wire, call.sub_port, call.relay_ip, 19305)
    for _ in range(2):
        request = call.binding_check(nominate=True)
        leg.up(t, request)
        t += call.rtt()
        leg.down(t, call.binding_success(request, call.public_ip, call.public_port))
        t += 50 * MS
    if not call.answered:
        t += _ringing(call)
        return
    t = _dtls_handshake(call, leg.up, leg.down, t)
    up = _Media(rng, _media_srtp_webrtc, _control_srtcp)
    down = _Media(rng, _media_srtp_webrtc, _control_srtcp)
    consent = lambda ts: leg.up(ts, call.binding_check())  # noqa: E731
    _media(call, leg.up, leg.down, up, down, t, t + call.duration_us, consent)


_ENCAPSULATION = {
    "messenger": "indication",
    "signal": "channel",
    "snapchat": "channel",
    "webrtc": "channel",
}
_IPV6_APPS = frozenset(_RELAYS6)


def _ice_turn_app_call(call: _Call) -> None:
    _ice_turn_call(
        call, _ENCAPSULATION[call.app], dtls=call.app in ("signal", "webrtc", "snapchat")
    )


_CALLS: dict[str, Callable[[_Call], None]] = {
    "whatsapp": _whatsapp_call,
    "telegram": _telegram_call,
    "viber": _viber_call,
    "imo": _imo_call,
    "zoom": _zoom_call,
    "discord": _discord_call,
    "teams": _teams_call,
    "google_meet": _google_meet_call,
    "kakaotalk": lambda c: _relay_rtp_call(c, c.rng.randint(10000, 10100), _control_rtcp),
    "line": lambda c: _relay_rtp_call(c, c.rng.choice((20000, 20001, 20002)), _control_srtcp),
}
"""App -> what makes its call; the ICE/TURN apps (Messenger, Signal...) otherwise."""


def _dispatch(call: _Call) -> None:
    _CALLS.get(call.app, _ice_turn_app_call)(call)


def _make_call(app: str, answered: bool, **kw) -> CraftedCall:
    app = _ALIASES.get(app, app)
    if app not in APPS:
        raise ValueError(f"unknown app {app!r}; known: {', '.join(APPS)}")
    if kw["ipv6"] and app not in _IPV6_APPS:
        raise ValueError(f"{app} is crafted over IPv4 only")
    rng = random.Random(f"{app}:{kw['seed']}")
    wire = _Wire(_subscriber(rng, kw["subscriber"], kw["ipv6"]))
    call = _Call(
        app, rng, wire, kw["start_us"], int(kw["duration_s"] * S), kw["relay"],
        kw["p2p_switch"], kw["ipv6"], kw["muted"], answered,
    )  # fmt: skip
    _dispatch(call)
    return wire.done(app, "call" if answered else "missed")


def app_call(
    app: str,
    *,
    subscriber: str | None = None,
    start_us: int = T0,
    duration_s: float = 20.0,
    relay: bool = True,
    p2p_switch: bool = False,
    ipv6: bool = False,
    muted: bool = False,
    seed: int = 0,
) -> CraftedCall:
    """An answered call of ``app`` (one of `APPS`, or ``skype``): call set-up, then
    ``duration_s`` of media both ways, through the app's relay (``relay``), moving to a
    peer-to-peer pair halfway (``p2p_switch``), or peer-to-peer from the start
    (``relay=False``; apps without peer-to-peer media keep the relay). ``muted``: only
    RTCP/SRTCP both ways, every 1-5 s."""
    return _make_call(
        app, True, subscriber=subscriber, start_us=start_us, duration_s=duration_s,
        relay=relay, p2p_switch=p2p_switch, ipv6=ipv6, muted=muted, seed=seed,
    )  # fmt: skip


def missed_call(
    app: str,
    *,
    subscriber: str | None = None,
    start_us: int = T0,
    ipv6: bool = False,
    seed: int = 0,
) -> CraftedCall:
    """The set-up of a call that rings 30-45 s unanswered: STUN, TURN, relay pings, no media."""
    return _make_call(
        app, False, subscriber=subscriber, start_us=start_us, duration_s=0, relay=True,
        p2p_switch=False, ipv6=ipv6, muted=False, seed=seed,
    )  # fmt: skip


# --- traps: app and UDP traffic that is not a call ---------------------------------


def _trap_wire(name: str, seed: int, subscriber: str | None, ipv6: bool = False):
    rng = random.Random(f"trap:{name}:{seed}")
    if subscriber is None:
        subscriber = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return rng, _Wire(_subscriber(rng, subscriber, ipv6))


def _quic_initial(rng: random.Random, dcid: bytes, scid: bytes, client: bool) -> bytes:
    """A QUIC v1 Initial (RFC 9000 17.2.2), padded to 1200 bytes by the client."""
    first = 0xC0 | rng.getrandbits(4) & 0x0F
    token = b"\x00"  # no token: a first connection
    size = 1200 if client else rng.randint(1150, 1250)
    head = (
        bytes([first])
        + struct.pack(">I", 1)
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + token
    )
    rest = size - len(head) - 2
    return head + struct.pack(">H", 0x4000 | rest) + rng.randbytes(rest)


def _quic_short(rng: random.Random, dcid: bytes, size: int) -> bytes:
    return bytes([0x40 | rng.getrandbits(6)]) + dcid + rng.randbytes(size - 1 - len(dcid))


def _quic_session(
    rng: random.Random,
    wire: _Wire,
    far: str,
    t: int,
    duration_us: int,
    down_pps: int,
    up_every: int,
) -> None:
    leg = _Leg(wire, _port(rng), far, 443)
    client_cid, server_cid = rng.randbytes(8), rng.randbytes(8)
    leg.up(t, _quic_initial(rng, client_cid, b"", True))
    t += rng.randint(10, 40) * MS
    leg.down(t, _quic_initial(rng, b"", server_cid, False))
    leg.down(t + 200, _quic_initial(rng, b"", server_cid, False))
    t += 2 * MS
    leg.up(t, _quic_initial(rng, server_cid, b"", True))
    end = t + duration_us
    gap = S // down_pps
    n = 0
    while t < end:
        # Video arrives in bursts of a chunk every few hundred ms.
        burst = rng.randint(20, 60)
        for k in range(burst):
            leg.down(
                t + k * gap // 4, _quic_short(rng, client_cid, rng.choice((1250, 1250, 1250, 900)))
            )
            n += 1
            if n % up_every == 0:
                leg.up(t + k * gap // 4 + 300, _quic_short(rng, server_cid, rng.randint(35, 60)))
        t += burst * gap


def quic_video(
    *, subscriber: str | None = None, start_us: int = T0, duration_s: float = 20.0, seed: int = 0
) -> CraftedCall:
    """Video over QUIC from a Google/YouTube address: Initials, then short headers, mostly down."""
    rng, wire = _trap_wire("quic_video", seed, subscriber)
    _quic_session(
        rng,
        wire,
        rng.choice(("142.250.185.78", "172.217.16.142", "216.58.212.174")),
        start_us,
        int(duration_s * S),
        300,
        10,
    )
    return wire.done("youtube", "quic_video")


def quic_app(
    app: str = "whatsapp",
    *,
    subscriber: str | None = None,
    start_us: int = T0,
    duration_s: float = 5.0,
    seed: int = 0,
) -> CraftedCall:
    """Media of a Meta app (a video or picture download) over QUIC from Meta's servers."""
    rng, wire = _trap_wire(f"quic_app:{app}", seed, subscriber)
    far = "157.240.195.54" if app == "whatsapp" else "157.240.20.35"
    _quic_session(rng, wire, far, start_us, int(duration_s * S), 400, 4)
    return wire.done(_ALIASES.get(app, app), "quic_app")


def _dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_burst(
    *, subscriber: str | None = None, start_us: int = T0, queries: int = 40, seed: int = 0
) -> CraftedCall:
    """A phone's burst of DNS lookups for app hosts, A and AAAA, to the ISP's resolver."""
    rng, wire = _trap_wire("dns", seed, subscriber)
    names = (
        "g.whatsapp.net", "mmg.whatsapp.net", "graph.facebook.com", "web.telegram.org",
        "chat.signal.org", "zoom.us", "gateway.discord.gg", "teams.microsoft.com",
        "meet.google.com", "www.youtube.com", "i.ytimg.com", "app-measurement.com",
    )  # fmt: skip
    t = start_us
    resolver = "10.255.255.53"
    for _ in range(queries):
        name = rng.choice(names)
        for qtype in (1, 28):
            txid, sport = rng.getrandbits(16), _port(rng)
            question = _dns_name(name) + struct.pack(">HH", qtype, 1)
            query = (
                struct.pack(">HHHHHH", txid, 0x0100, 1, 0, 0, 1)
                + question
                + bytes.fromhex("0000291000000000000000")
            )
            rdata = rng.randbytes(4 if qtype == 1 else 16)
            answer = (
                struct.pack(">HHHHHH", txid, 0x8180, 1, 1, 0, 0) + question
                + struct.pack(">HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
            )  # fmt: skip
            leg = _Leg(wire, sport, resolver, 53)
            leg.up(t, query)
            leg.down(t + rng.randint(2, 30) * MS, answer)
            t += rng.randint(1, 30) * MS
        t += rng.randint(0, 400) * MS
    return wire.done("dns", "dns")


def ntp(
    *, subscriber: str | None = None, start_us: int = T0, polls: int = 8, seed: int = 0
) -> CraftedCall:
    """SNTP polls (RFC 5905 mode 3 and 4) to a pool server every 64 s."""
    rng, wire = _trap_wire("ntp", seed, subscriber)
    leg = _Leg(wire, _port(rng), "162.159.200.123", 123)
    t = start_us
    for _ in range(polls):
        leg.up(t, b"\x23" + bytes(39) + rng.randbytes(8))
        leg.down(t + rng.randint(10, 40) * MS, b"\x24\x03\x00\xe7" + rng.randbytes(44))
        t += 64 * S
    return wire.done("ntp", "ntp")


def wireguard_tunnel(
    *, subscriber: str | None = None, start_us: int = T0, duration_s: float = 20.0, seed: int = 0
) -> CraftedCall:
    """A WireGuard VPN: handshake initiation (type 1, 148 bytes) and response (type 2,
    92 bytes), then transport data (type 4) both ways at a high rate and keep-alives."""
    rng, wire = _trap_wire("wireguard", seed, subscriber)
    leg = _Leg(
        wire, _port(rng), rng.choice(("185.65.135.10", "193.32.127.66", "146.70.116.98")), 51820
    )
    sender, receiver = rng.getrandbits(32), rng.getrandbits(32)
    t = start_us
    leg.up(t, struct.pack("<I", 1) + struct.pack("<I", sender) + rng.randbytes(140))
    t += rng.randint(20, 60) * MS
    leg.down(t, struct.pack("<I", 2) + struct.pack("<II", receiver, sender) + rng.randbytes(80))
    counters = [0, 0]
    end = t + int(duration_s * S)

    def data(ts: int, up: bool, size: int) -> None:
        k = 0 if up else 1
        body = rng.randbytes(size + (-size % 16) + 16)
        packet = struct.pack("<IIQ", 4, receiver if up else sender, counters[k]) + body
        counters[k] += 1
        (leg.up if up else leg.down)(ts, packet)

    data(t + 2 * MS, True, 0)  # the initiator's first (empty) data packet confirms the keys
    while t < end:
        t += rng.randint(2, 12) * MS
        up = rng.random() < 0.35
        data(t, up, rng.randint(40, 1380) if not up else rng.randint(40, 400))
    return wire.done("wireguard", "wireguard")


def game_stream(
    *, subscriber: str | None = None, start_us: int = T0, duration_s: float = 20.0, seed: int = 0
) -> CraftedCall:
    """Cloud gaming: ICE, DTLS, then RTP video at ~1,000 pps down and input packets up."""
    rng, wire = _trap_wire("game_stream", seed, subscriber)
    call = _Call(
        "webrtc", rng, wire, start_us, int(duration_s * S), True, False, False, False, True
    )
    leg = _Leg(
        wire,
        call.sub_port,
        rng.choice(("80.84.170.21", "185.136.70.44")),
        rng.randint(49000, 49010),
    )
    t = start_us
    request = call.binding_check(goog=False)
    leg.up(t, request)
    leg.down(t + 20 * MS, call.binding_success(request, call.public_ip, call.public_port))
    t = _dtls_handshake(call, leg.up, leg.down, t + 30 * MS)
    end = t + call.duration_us
    video_ssrc, input_seq, video_seq = rng.getrandbits(32), 0, rng.getrandbits(16)
    frame_no = 0
    while t < end:
        # One 60 fps video frame in 12-20 full-size RTP packets, then the player's input.
        for k in range(rng.randint(12, 20)):
            video_seq = (video_seq + 1) & 0xFFFF
            leg.down(
                t + k * 150, _srtp(rng, video_seq, frame_no * 1500, video_ssrc, 98, 1180, None)
            )
        input_seq += 1
        leg.up(
            t + rng.randint(0, 8) * MS,
            _srtp(rng, input_seq, frame_no * 1500, 0x1234, 127, rng.randint(20, 60), None),
        )
        frame_no += 1
        t += 16_667
    return wire.done("cloud_gaming", "game_stream")


_CHAT_HOSTS = {
    "whatsapp": ("g.whatsapp.net", "157.240.195.60"),
    "telegram": ("web.telegram.org", "149.154.167.99"),
    "signal": ("chat.signal.org", "13.248.212.111"),
    "messenger": ("edge-chat.messenger.com", "157.240.20.19"),
    "viber": ("ias.viber.com", "52.0.252.30"),
    "zoom": ("zoom.us", "170.114.52.2"),
    "discord": ("gateway.discord.gg", "162.159.135.234"),
    "teams": ("teams.microsoft.com", "52.113.194.132"),
}


def _whatsapp_hello(rng: random.Random) -> bytes:
    """WhatsApp's chat connection: the edge routing preamble ("ED", version, routing
    info), the "WA" header (protocol 6, dictionary 3), then a framed Noise hello."""
    routing = b"\x08" + rng.randbytes(1) + b"\x10" + rng.randbytes(1)
    hello = b"\x12\x22\x0a\x20" + rng.randbytes(32)
    return (
        b"ED\x00\x01" + len(routing).to_bytes(3, "big") + routing
        + b"WA\x06\x03" + len(hello).to_bytes(3, "big") + hello
    )  # fmt: skip


def _tls_exchange(
    rng: random.Random, wire: _Wire, host: str, ip: str, t: int, upload: int, download: int
) -> int:
    conn = _Tcp(wire, rng, _port(rng), ip, 443)
    rtt = rng.randint(20, 80) * MS
    t = conn.open(t, rtt)
    if host == "g.whatsapp.net":
        t = conn.send(t, True, _whatsapp_hello(rng))
    else:
        t = conn.send(t, True, tls_client_hello(host, ("h2", "http/1.1")))
    server_flight = b"\x16\x03\x03" + struct.pack(">H", 122) + b"\x02" + rng.randbytes(121)
    server_flight += b"\x14\x03\x03\x00\x01\x01" + _app_data(rng, rng.randint(2000, 4000))
    t = conn.send(t + rtt, False, server_flight)
    t = conn.send(t + 5 * MS, True, b"\x14\x03\x03\x00\x01\x01" + _app_data(rng, 60))
    t = conn.send(t + 5 * MS, True, _app_data(rng, upload))
    t = conn.send(t + rtt, False, _app_data(rng, download))
    return conn.close(t + rng.randint(1, 3) * S, rtt)


def _app_data(rng: random.Random, size: int) -> bytes:
    out = b""
    while size > 0:
        chunk = min(size, 16384)
        out += b"\x17\x03\x03" + struct.pack(">H", chunk) + rng.randbytes(chunk)
        size -= chunk
    return out


def chat_tls(
    app: str = "whatsapp", *, subscriber: str | None = None, start_us: int = T0, seed: int = 0
) -> CraftedCall:
    """An app's chat connection over TCP 443: ClientHello with its SNI, then a few records."""
    app = _ALIASES.get(app, app)
    rng, wire = _trap_wire(f"chat:{app}", seed, subscriber)
    host, ip = _CHAT_HOSTS[app]
    _tls_exchange(rng, wire, host, ip, start_us, rng.randint(200, 900), rng.randint(300, 2000))
    return wire.done(app, "chat_tls")


_MEDIA_HOSTS = {
    "whatsapp": ("mmg.whatsapp.net", "157.240.195.53"),
    "telegram": ("venus.web.telegram.org", "149.154.167.222"),
    "signal": ("cdn2.signal.org", "13.248.212.111"),
    "messenger": ("rupload.facebook.com", "157.240.20.19"),
    "viber": ("share.cdn.viber.com", "52.0.252.31"),
}


def voice_message(
    app: str = "whatsapp", *, subscriber: str | None = None, start_us: int = T0, seed: int = 0
) -> CraftedCall:
    """A recorded voice note sent: a TLS upload burst of 20-120 KB to the app's media host."""
    app = _ALIASES.get(app, app)
    rng, wire = _trap_wire(f"voice_message:{app}", seed, subscriber)
    host, ip = _MEDIA_HOSTS[app]
    _tls_exchange(
        rng, wire, host, ip, start_us, rng.randint(20_000, 120_000), rng.randint(300, 800)
    )
    return wire.done(app, "voice_message")


def keepalive_udp(
    app: str = "viber",
    *,
    subscriber: str | None = None,
    start_us: int = T0,
    duration_s: float = 300.0,
    seed: int = 0,
) -> CraftedCall:
    """An idle app's UDP keep-alive every 20-30 s (Viber type 3/9 pings, an IMO one-byte
    echo, a Telegram reflector ping), answered each time."""
    app = _ALIASES.get(app, app)
    rng, wire = _trap_wire(f"keepalive:{app}", seed, subscriber)
    if app == "viber":
        leg = _Leg(wire, _port(rng), "52.0.252.10", 7985)
        up = lambda: _viber_message(rng, 3, 8)  # noqa: E731
        down = lambda: _viber_message(rng, 9, 16)  # noqa: E731
    elif app == "imo":
        leg = _Leg(wire, _port(rng), "169.136.136.10", 10000)
        byte = bytes([rng.randint(0, 255)])
        up = down = lambda: byte
    elif app == "telegram":
        leg = _Leg(wire, _port(rng), "91.108.56.130", 596)
        tg = _Telegram(rng)
        up = lambda: tg.special(rng, -2, rng.randbytes(8))  # noqa: E731
        down = lambda: tg.special(rng, -4, rng.randbytes(24))  # noqa: E731
    else:
        raise ValueError(f"no UDP keep-alive crafted for {app!r}")
    t, end = start_us, start_us + int(duration_s * S)
    while t < end:
        leg.up(t, up())
        leg.down(t + rng.randint(30, 120) * MS, down())
        t += rng.randint(20, 30) * S
    return wire.done(app, "keepalive_udp")


TRAPS = (
    "quic_video",
    "quic_app",
    "dns",
    "ntp",
    "wireguard",
    "game_stream",
    "chat_tls",
    "voice_message",
    "keepalive_udp",
    "missed_call",
)


def _trap(kind: str, rng: random.Random, seed: int, subscriber: str, start_us: int) -> CraftedCall:
    kw = {"subscriber": subscriber, "start_us": start_us, "seed": seed}
    if kind == "quic_video":
        return quic_video(duration_s=rng.uniform(5, 20), **kw)
    if kind == "quic_app":
        return quic_app(rng.choice(("whatsapp", "messenger")), **kw)
    if kind == "dns":
        return dns_burst(**kw)
    if kind == "ntp":
        return ntp(polls=3, **kw)
    if kind == "wireguard":
        return wireguard_tunnel(duration_s=rng.uniform(5, 20), **kw)
    if kind == "game_stream":
        return game_stream(duration_s=rng.uniform(3, 8), **kw)
    if kind == "chat_tls":
        return chat_tls(rng.choice(sorted(_CHAT_HOSTS)), **kw)
    if kind == "voice_message":
        return voice_message(rng.choice(sorted(_MEDIA_HOSTS)), **kw)
    if kind == "keepalive_udp":
        return keepalive_udp(rng.choice(("viber", "imo", "telegram")), duration_s=120, **kw)
    return missed_call(rng.choice(APPS), **kw)


def mix(
    seed: int = 0,
    *,
    calls: int = 14,
    traps: int = 10,
    start_us: int = T0,
    spread_s: float = 60.0,
    duration_s: tuple[float, float] = (8.0, 20.0),
) -> tuple[list[Frame], list[CraftedCall]]:
    """One capture interleaving ``calls`` calls (every app in turn, with relay, p2p and
    muted variants) and ``traps`` traps (every kind in turn), each by its own subscriber,
    starting within ``spread_s``. Returns the merged frames and every `CraftedCall`
    (test `CraftedCall.is_call` to tell calls from traps)."""
    rng = random.Random(f"mix:{seed}")
    crafted: list[CraftedCall] = []
    used: set[str] = set()

    def subscriber() -> str:
        while True:
            ip = f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            if ip not in used:
                used.add(ip)
                return ip

    for n in range(calls):
        app = APPS[n % len(APPS)]
        variant = (n // len(APPS)) % 4
        crafted.append(
            app_call(
                app,
                subscriber=subscriber(),
                start_us=start_us + int(rng.uniform(0, spread_s) * S),
                duration_s=rng.uniform(*duration_s),
                relay=variant != 2,
                p2p_switch=variant == 1,
                ipv6=variant == 3 and app in _IPV6_APPS,
                muted=variant == 3 and app not in _IPV6_APPS,
                seed=seed * 1000 + n,
            )
        )
    for n in range(traps):
        start = start_us + int(rng.uniform(0, spread_s) * S)
        crafted.append(_trap(TRAPS[n % len(TRAPS)], rng, seed * 1000 + n, subscriber(), start))
    frames = [frame for c in crafted for frame in c.frames]
    frames.sort(key=lambda f: f[0])
    return frames, crafted


def write_pcap(path: str | os.PathLike[str], frames: list[Frame]) -> list[int]:
    """Write Ethernet frames as a microsecond pcap file."""
    return pcapwriter.write_pcap(path, frames)
