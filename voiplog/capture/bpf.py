"""Kernel packet filters (classic BPF) for live capture, built without tcpdump.

The built-in filter is assembled by hand from the configuration, so that live
capture needs no libpcap. It keeps what the pipeline can use and drops the rest
in the kernel, before it costs a copy:

- SIP: UDP and TCP to or from the SIP ports;
- RTP/RTCP: UDP whose first payload byte says version 2 (``0b10......``);
- other features' traffic: extra UDP and TCP ports (RADIUS accounting, STUN/TURN,
  VXLAN...);
- whatever cannot be judged at a fixed offset: IPv4 fragments, IPv6 extension
  headers, tunnels (GRE, IP-in-IP), and on Ethernet every frame that is not plain
  IPv4/IPv6 (802.1Q/QinQ tags the NIC did not strip, MPLS, PPPoE).

The app-call modes (`APP_CALL_FILTERS`) widen the UDP part for calls of messaging
apps, whose media is often not RTP-looking at a fixed offset. They first drop the
bulk that is never a call (`UDP_DROP_PORTS`: QUIC on 443, DNS, NTP...) unless SIP,
a configured port or the RTP rule already kept it; then ``signatures`` keeps STUN
with its magic cookie, TURN ChannelData whose length fits the datagram, DTLS 1.0-1.2
records, and UDP to or from the apps' published media ports (`APP_MEDIA_PORTS`),
while ``all-udp`` keeps every other datagram. Both look through up to two VLAN
tags, so that a tagged QUIC datagram is judged like an untagged one.

An operator's own expression (tcpdump syntax) can widen it: it is compiled with
libpcap through ctypes when libpcap is installed, and ORed with the built-in
program (`either`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from voiplog.errors import UsageError
from voiplog.settings import APP_CALL_FILTERS, AppCallFilter

# Instruction classes, sizes, modes and operations of classic BPF (linux/filter.h).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _RET, _MISC = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MEM, _MSH = 0x00, 0x20, 0x40, 0x60, 0xA0
_ADD, _SUB, _AND, _RSH = 0x00, 0x10, 0x50, 0x70
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_K, _X = 0x00, 0x08
_TAX, _TXA = 0x00, 0x80

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

_INSN = struct.Struct("=HBBI")

# IP protocols passed whole: tunnels whose inner packets the decoder unwraps.
_TUNNEL_PROTOCOLS = (4, 41, 47)  # IPv4-in-IP, IPv6-in-IP, GRE
# IPv6 next headers that are extension headers: the transport header is further on.
_IPV6_EXTENSIONS = (0, 43, 44, 60, 51, 135)
# 802.1Q and 802.1ad (QinQ outer) tag types, looked through in the app-call modes.
_VLAN_TYPES = (0x8100, 0x88A8)
_MAX_VLAN_TAGS = 2


# UDP ports never used by a call, dropped in the app-call modes unless SIP, a
# configured port or the RTP rule kept the datagram: on an edge link they carry
# most of the UDP (QUIC alone is most of it).
UDP_DROP_PORTS: tuple[int, ...] = (
    53,  # DNS
    67, 68,  # DHCP
    123,  # NTP
    137, 138,  # NetBIOS name and datagram services
    443,  # QUIC (HTTP/3)
    500, 4500,  # IPsec IKE and NAT traversal (ESP in UDP)
    853,  # DNS over QUIC
    1900,  # SSDP
    5353,  # mDNS
)  # fmt: skip

# UDP ports of calling apps' media servers and relays, by app, as (first, last)
# ranges. A datagram to or from one of them is kept in ``signatures`` mode whatever
# its payload looks like. Media that is RTP (SRTP) passes anyway on any port, so an
# app is listed for what is not: its relays' STUN-less framing, its own headers.
# IMO and Messenger publish no ports; their WebRTC calls show as STUN, DTLS and
# SRTP, which the signatures keep, and IMO's own datagrams need ``all-udp``.
APP_MEDIA_PORTS: Mapping[str, tuple[tuple[int, int], ...]] = MappingProxyType(
    {
        # STUN and TURN's registered ports (RFC 8489, RFC 8656: 3478; 5349 over DTLS),
        # where generic WebRTC relays (Signal's among them: its TURN URLs carry no
        # port) listen.
        "turn": ((3478, 3478), (5349, 5349)),
        # Zoom: client media to the Zoom cloud on UDP 3478, 3479 and 8801-8810 (Zoom
        # support, firewall rules for Zoom Rooms, Meeting Connector and Mesh).
        "zoom": ((3478, 3479), (8801, 8810)),
        # Microsoft Teams and Skype: transport relays on UDP 3478-3481 (Microsoft 365
        # endpoints, service area "Skype"); clients' own media ports 50000-50059 when
        # the tenant turns the client port range on (ClientAudioPort 50000, video
        # 50020, sharing 50040, 20 ports each).
        "teams": ((3478, 3481), (50000, 50059)),
        # Google Meet: outbound UDP 3478 and 19302-19309 (Google Workspace admin help,
        # "Prepare your network for Meet meetings").
        "meet": ((3478, 3478), (19302, 19309)),
        # WhatsApp: relays speak STUN on UDP 3478 (SonicWall application signatures);
        # 45395, 50318 and 59234 come from third-party firewall lists, not WhatsApp.
        "whatsapp": ((3478, 3478), (45395, 45395), (50318, 50318), (59234, 59234)),
        # Viber: nDPI's default UDP ports for Viber (ndpi_main.c: 7985, 7987, 5242,
        # 5243, 4244).
        "viber": ((4244, 4244), (5242, 5243), (7985, 7985), (7987, 7987)),
        # Telegram: call servers (STUN/TURN) on UDP 1400, as the API hands them out
        # (tdlib callServer entries); the older reflectors in 500-600, the range nDPI's
        # Telegram dissector watches (500 itself is IKE, dropped above).
        "telegram": ((501, 600), (1400, 1400)),
        # Discord: voice servers on Cloudflare use UDP 19294-19344 (reported by proxy
        # rule maintainers, 2025). Discord's own "50000-65535" is left out: it is the
        # ephemeral port range of most clients, and Discord voice is RTP anyway.
        "discord": ((19294, 19344),),
        # FaceTime: UDP 3478-3497, 16384-16387 and 16393-16402 (Apple support HT202078).
        "facetime": ((3478, 3497), (16384, 16387), (16393, 16402)),
    }
)

_DTLS_CONTENT_TYPES = (20, 25)  # change_cipher_spec .. heartbeat (first byte, RFC 7983)
_DTLS_VERSIONS = (0xFEFF, 0xFEFD, 0xFEFC)  # DTLS 1.0, 1.2, and 1.3's legacy record version
_CHANNEL_NUMBERS = (0x40, 0x4F)  # first byte of a TURN ChannelData message (RFC 8656 12)

# The STUN magic cookie (RFC 8489 section 5), at bytes 4-7 of every STUN message
# and so of every ICE check and TURN allocation; the flow classifier reads it
# too (tests/capture check that both are the same).
STUN_MAGIC_COOKIE = 0x2112A442


class FilterError(UsageError):
    """A capture filter that cannot be built or compiled."""


@dataclass(frozen=True, slots=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int


Program = tuple[Insn, ...]


def pack(program: Sequence[Insn]) -> bytes:
    """The program as the kernel's array of `struct sock_filter`."""
    return b"".join(_INSN.pack(i.code, i.jt, i.jf, i.k) for i in program)


class _Assembler:
    """Emits instructions with symbolic jump targets, resolved at the end."""

    def __init__(self) -> None:
        self._code: list[tuple[int, object, object, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def op(self, code: int, k: int = 0) -> None:
        self._code.append((code, 0, 0, k))

    def jump(self, code: int, k: int, jt: object, jf: object) -> None:
        """A conditional jump; targets are label names or None for the next instruction."""
        self._code.append((code, jt, jf, k))

    def goto(self, target: str) -> None:
        self._code.append((_JMP | _JA, target, None, 0))

    def assemble(self) -> Program:
        out = []
        for index, (code, jt, jf, k) in enumerate(self._code):
            if code == _JMP | _JA:
                out.append(Insn(code, 0, 0, self._offset(index, jt)))
                continue
            out.append(Insn(code, self._offset(index, jt), self._offset(index, jf), k))
        program = tuple(out)
        for insn in program:
            if insn.code & 0x07 == _JMP and insn.code != _JMP | _JA and max(insn.jt, insn.jf) > 255:
                raise FilterError(
                    "capture filter too long: a jump spans more than 255 instructions"
                )
        return program

    def _offset(self, index: int, target: object) -> int:
        if target is None or target == 0:
            return 0
        if isinstance(target, int):
            return target
        return self._labels[target] - index - 1


def _port_checks(asm: _Assembler, ports: Sequence[int], on_match: str) -> None:
    for port in ports:
        asm.jump(_JMP | _JEQ | _K, port, on_match, None)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, non-adjacent ranges covering `ranges`."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def _range_checks(asm: _Assembler, ranges: Sequence[tuple[int, int]], on_match: str) -> None:
    """Jump to `on_match` when A falls in one of `ranges`, else fall through.

    Highest range first: most ports a check sees are ephemeral ones above every
    listed range, and those are turned away by the first two instructions."""
    merged = _merge(ranges)[::-1]
    for index, (first, last) in enumerate(merged):
        below = 2 * (len(merged) - index - 1)  # instructions of the lower ranges
        # Under `first`: try the next lower range (or leave, after the last one).
        asm.jump(_JMP | _JGE | _K, first, None, 1)
        # Over `last`: above every lower range too, so leave the chain.
        asm.jump(_JMP | _JGT | _K, last, below, on_match)


def build_filter(
    *,
    link_header: int,
    sip_ports: Iterable[int],
    udp_ports: Iterable[int] = (),
    tcp_ports: Iterable[int] = (),
    snaplen: int = 65535,
    app_calls: AppCallFilter = "off",
    udp_drop_ports: Iterable[int] | None = None,
) -> Program:
    """The built-in filter for frames whose IP header starts at `link_header` (14 on
    Ethernet, 0 on raw IP). Accepted packets are cut to `snaplen` bytes.

    `app_calls` widens the UDP part for app calls (module doc); `udp_drop_ports`
    replaces `UDP_DROP_PORTS` there. With ``"off"`` the program is the one built
    before app calls existed, instruction for instruction."""
    if app_calls not in APP_CALL_FILTERS:
        raise FilterError(
            f"app-call filter {app_calls!r} is not one of {', '.join(APP_CALL_FILTERS)}"
        )
    apps = app_calls != "off"
    sip = sorted(set(sip_ports))
    udp = sorted(set(sip) | set(udp_ports))
    tcp = sorted(set(sip) | set(tcp_ports))
    drop = sorted(set(UDP_DROP_PORTS if udp_drop_ports is None else udp_drop_ports))
    base = link_header
    asm = _Assembler()
    # Each network header offset (a VLAN tag adds 4 bytes) gets its own short
    # prologue that leaves in X the transport header's offset from `base`; the
    # UDP and TCP checks that follow are shared.
    if link_header == 14:
        depths = range(_MAX_VLAN_TAGS + 1) if apps else range(1)
        for depth in depths:
            asm.label(f"l2_{depth}")
            asm.op(_LD | _H | _ABS, 12 + 4 * depth)  # EtherType
            asm.jump(_JMP | _JEQ | _K, 0x0800, f"v4_{depth}", None)
            asm.jump(_JMP | _JEQ | _K, 0x86DD, f"v6_{depth}", None)
            if depth < depths[-1]:
                for tag in _VLAN_TYPES:
                    asm.jump(_JMP | _JEQ | _K, tag, f"l2_{depth + 1}", None)
            asm.jump(_JMP | _JEQ | _K, 0x0806, "drop_early", "accept_early")  # ARP: nothing for us
    elif link_header == 0:
        depths = range(1)
        asm.op(_LD | _B | _ABS, 0)
        asm.op(_ALU | _AND | _K, 0xF0)
        asm.jump(_JMP | _JEQ | _K, 0x40, "v4_0", None)
        asm.jump(_JMP | _JEQ | _K, 0x60, "v6_0", "drop_early")
    else:
        raise FilterError(f"no built-in filter for a {link_header}-byte link header")

    for depth in depths:
        net = base + 4 * depth
        asm.label(f"v4_{depth}")
        asm.op(_LD | _H | _ABS, net + 6)  # flags and fragment offset
        asm.jump(_JMP | _JSET | _K, 0x3FFF, "accept_early", None)  # a fragment: reassembled later
        asm.op(_LD | _B | _ABS, net + 9)  # protocol
        asm.jump(_JMP | _JEQ | _K, 17, f"udp4_{depth}", None)
        asm.jump(_JMP | _JEQ | _K, 6, f"tcp4_{depth}", None)
        for proto in _TUNNEL_PROTOCOLS:
            asm.jump(_JMP | _JEQ | _K, proto, "accept_early", None)
        asm.goto("drop")
        for transport in ("udp", "tcp"):
            asm.label(f"{transport}4_{depth}")
            asm.op(_LDX | _B | _MSH, net)  # X = IPv4 header length
            if depth:
                asm.op(_MISC | _TXA)
                asm.op(_ALU | _ADD | _K, 4 * depth)
                asm.op(_MISC | _TAX)
            asm.goto(transport)

        asm.label(f"v6_{depth}")
        asm.op(_LD | _B | _ABS, net + 6)  # next header
        asm.jump(_JMP | _JEQ | _K, 17, f"udp6_{depth}", None)
        asm.jump(_JMP | _JEQ | _K, 6, f"tcp6_{depth}", None)
        for proto in (*_TUNNEL_PROTOCOLS, *_IPV6_EXTENSIONS):
            asm.jump(_JMP | _JEQ | _K, proto, "accept_early", None)
        asm.goto("drop")
        for transport in ("udp", "tcp"):
            asm.label(f"{transport}6_{depth}")
            asm.op(_LDX | _IMM, 40 + 4 * depth)
            asm.goto(transport)
    if apps:
        # Keep the prologues' jumps short, whatever the length of the port lists.
        asm.label("accept_early")
        asm.op(_RET | _K, snaplen)
        asm.label("drop_early")
        asm.op(_RET | _K, 0)

    # X holds the offset of the transport header from `base`.
    asm.label("udp")
    asm.op(_LD | _H | _IND, base)  # source port
    _port_checks(asm, udp, "accept")
    asm.op(_LD | _H | _IND, base + 2)  # destination port
    _port_checks(asm, udp, "accept")
    asm.op(_LD | _B | _IND, base + 8)  # first payload byte
    asm.op(_ALU | _AND | _K, 0xC0)
    asm.jump(_JMP | _JEQ | _K, 0x80, "accept", "app" if apps else "drop")  # RTP/RTCP version 2
    if apps:
        _app_call_checks(asm, base, app_calls, drop)

    asm.label("tcp")
    asm.op(_LD | _H | _IND, base)
    _port_checks(asm, tcp, "accept")
    asm.op(_LD | _H | _IND, base + 2)
    _port_checks(asm, tcp, "accept")
    asm.goto("drop")

    if not apps:
        asm.label("accept_early")
    asm.label("accept")
    asm.op(_RET | _K, snaplen)
    if not apps:
        asm.label("drop_early")
    asm.label("drop")
    asm.op(_RET | _K, 0)
    return asm.assemble()


def _app_call_checks(
    asm: _Assembler, base: int, app_calls: AppCallFilter, drop: Sequence[int]
) -> None:
    """The UDP checks of the app-call modes, after SIP, the configured ports and RTP
    turned the datagram down; X holds the transport header's offset from `base`."""
    asm.label("app")
    if drop:
        drop_ranges = [(port, port) for port in drop]
        asm.op(_LD | _H | _IND, base)
        _range_checks(asm, drop_ranges, "drop")
        asm.op(_LD | _H | _IND, base + 2)
        _range_checks(asm, drop_ranges, "drop")
    if app_calls == "all-udp":
        asm.goto("accept")
        return

    # Ports before payloads: a payload check that reads past a short datagram's end
    # rejects it, and an app's short keepalive on its own port must still pass.
    ranges = [r for app in APP_MEDIA_PORTS.values() for r in app]
    asm.op(_LD | _H | _IND, base)
    _range_checks(asm, ranges, "accept")
    asm.op(_LD | _H | _IND, base + 2)
    _range_checks(asm, ranges, "accept")

    asm.op(_LD | _B | _IND, base + 8)  # first payload byte
    asm.jump(_JMP | _JGE | _K, _CHANNEL_NUMBERS[0], "channel_data", None)
    # Below 0x40: STUN (two zero bits, then the magic cookie) or a DTLS record.
    asm.op(_LD | _W | _IND, base + 12)
    asm.jump(_JMP | _JEQ | _K, STUN_MAGIC_COOKIE, "accept", None)
    asm.op(_LD | _B | _IND, base + 8)
    asm.jump(_JMP | _JGE | _K, _DTLS_CONTENT_TYPES[0], None, "drop")
    asm.jump(_JMP | _JGT | _K, _DTLS_CONTENT_TYPES[1], "drop", None)
    asm.op(_LD | _H | _IND, base + 9)  # record version
    _port_checks(asm, _DTLS_VERSIONS, "accept")
    asm.goto("drop")

    # ChannelData: channel 0x4000-0x4FFF, then a length that leaves at most 3 bytes
    # of padding in the datagram (the flow classifier's own test), so that QUIC
    # short headers on other ports (first byte 0x40-0x7F) seldom pass.
    asm.label("channel_data")
    asm.jump(_JMP | _JGT | _K, _CHANNEL_NUMBERS[1], "drop", None)
    asm.op(_LD | _H | _IND, base + 10)  # ChannelData length
    asm.op(_ST, 0)
    asm.op(_LD | _H | _IND, base + 4)  # UDP length: header, 4-byte ChannelData header, data
    asm.op(_ALU | _SUB | _K, 8 + 4)
    asm.op(_LDX | _MEM, 0)
    asm.op(_ALU | _SUB | _X)  # the padding; wraps around to a huge number when negative
    asm.jump(_JMP | _JGT | _K, 3, "drop", "accept")


def either(first: Program, second: Program) -> Program:
    """A program accepting what either program accepts (`first`'s verdict wins when
    it accepts): every rejection of `first` becomes a jump to the start of `second`."""
    out = []
    for index, insn in enumerate(first):
        if insn.code == _RET | _K and insn.k == 0:
            out.append(Insn(_JMP | _JA, 0, 0, len(first) - index - 1))
        else:
            out.append(insn)
    return (*out, *second)


def run(program: Sequence[Insn], packet: bytes) -> int:
    """Interpret `program` on `packet` as the kernel would; returns the bytes kept.

    For tests and `voiplog` diagnostics only: the kernel runs the real thing. Loads
    beyond the packet end reject it, as in the kernel.
    """
    a = x = 0
    mem = [0] * 16
    pc = 0
    n = len(packet)
    while True:
        insn = program[pc]
        code, k = insn.code, insn.k
        cls = code & 0x07
        pc += 1
        if cls in (_LD, _LDX):
            mode, size = code & 0xE0, code & 0x18
            if mode == _IMM:
                value = k
            elif mode == _MSH:
                if k >= n:
                    return 0
                value = (packet[k] & 0x0F) * 4
            elif mode in (_ABS, _IND):
                offset = k + (x if mode == _IND else 0)
                width = {_W: 4, _H: 2, _B: 1}[size]
                if offset + width > n:
                    return 0
                value = int.from_bytes(packet[offset : offset + width], "big")
            else:
                value = mem[k]
            if cls == _LD:
                a = value
            else:
                x = value
        elif cls == _ALU:
            op = code & 0xF0
            operand = x if code & _X else k
            if op == _ADD:
                a = (a + operand) & 0xFFFFFFFF
            elif op == _SUB:
                a = (a - operand) & 0xFFFFFFFF
            elif op == _AND:
                a &= operand
            elif op == _RSH:
                a >>= operand
            else:
                raise FilterError(f"interpreter: ALU operation {op:#x} not supported")
        elif cls == _JMP:
            op = code & 0xF0
            if op == _JA:
                pc += k
                continue
            if op == _JEQ:
                taken = a == k
            elif op == _JSET:
                taken = bool(a & k)
            elif op == _JGT:
                taken = a > k
            elif op == _JGE:
                taken = a >= k
            else:
                raise FilterError(f"interpreter: jump {op:#x} not supported")
            pc += insn.jt if taken else insn.jf
        elif cls == _RET:
            return min(k if code & 0x18 == _K else a, n)
        elif cls == _ST:
            mem[k] = a
        elif cls == _STX:
            mem[k] = x
        elif cls == _MISC:
            if code & 0xF8 == _TAX:
                x = a
            else:
                a = x
        else:
            raise FilterError(f"interpreter: instruction class {cls:#x} not supported")


# -- operator expressions, compiled by libpcap when it is installed -----------


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


def compile_expression(expression: str, *, linktype: int, snaplen: int = 65535) -> Program:
    """Compile a tcpdump-style `expression` with libpcap (loaded through ctypes)."""
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise FilterError("compiling a filter expression needs libpcap (Debian: libpcap0.8)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(_BpfProgram),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise FilterError("libpcap: cannot open a compiler handle")
    try:
        prog = _BpfProgram()
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            reason = lib.pcap_geterr(handle).decode(errors="replace")
            raise FilterError(f"cannot compile {expression!r}: {reason}")
        try:
            return tuple(
                Insn(
                    prog.bf_insns[i].code,
                    prog.bf_insns[i].jt,
                    prog.bf_insns[i].jf,
                    prog.bf_insns[i].k,
                )
                for i in range(prog.bf_len)
            )
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
