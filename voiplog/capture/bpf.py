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

An operator's own expression (tcpdump syntax) can widen it: it is compiled with
libpcap through ctypes when libpcap is installed, and ORed with the built-in
program (`either`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from voiplog.errors import UsageError

# Instruction classes, sizes, modes and operations of classic BPF (linux/filter.h).
_LD, _LDX, _ALU, _JMP, _RET = 0x00, 0x01, 0x04, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_IMM, _ABS, _IND, _MSH = 0x00, 0x20, 0x40, 0xA0
_AND, _RSH = 0x50, 0x70
_JA, _JEQ, _JSET = 0x00, 0x10, 0x40
_K = 0x00

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

_INSN = struct.Struct("=HBBI")

# IP protocols passed whole: tunnels whose inner packets the decoder unwraps.
_TUNNEL_PROTOCOLS = (4, 41, 47)  # IPv4-in-IP, IPv6-in-IP, GRE
# IPv6 next headers that are extension headers: the transport header is further on.
_IPV6_EXTENSIONS = (0, 43, 44, 60, 51, 135)


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


def build_filter(
    *,
    link_header: int,
    sip_ports: Iterable[int],
    udp_ports: Iterable[int] = (),
    tcp_ports: Iterable[int] = (),
    snaplen: int = 65535,
) -> Program:
    """The built-in filter for frames whose IP header starts at `link_header` (14 on
    Ethernet, 0 on raw IP). Accepted packets are cut to `snaplen` bytes."""
    sip = sorted(set(sip_ports))
    udp = sorted(set(sip) | set(udp_ports))
    tcp = sorted(set(sip) | set(tcp_ports))
    base = link_header
    asm = _Assembler()
    if link_header == 14:
        asm.op(_LD | _H | _ABS, 12)  # EtherType
        asm.jump(_JMP | _JEQ | _K, 0x0800, "v4", None)
        asm.jump(_JMP | _JEQ | _K, 0x86DD, "v6", None)
        asm.jump(_JMP | _JEQ | _K, 0x0806, "drop", "accept")  # ARP: nothing for us
    elif link_header == 0:
        asm.op(_LD | _B | _ABS, 0)
        asm.op(_ALU | _AND | _K, 0xF0)
        asm.jump(_JMP | _JEQ | _K, 0x40, "v4", None)
        asm.jump(_JMP | _JEQ | _K, 0x60, "v6", "drop")
    else:
        raise FilterError(f"no built-in filter for a {link_header}-byte link header")

    asm.label("v4")
    asm.op(_LD | _H | _ABS, base + 6)  # flags and fragment offset
    asm.jump(_JMP | _JSET | _K, 0x3FFF, "accept", None)  # a fragment: reassembled later
    asm.op(_LD | _B | _ABS, base + 9)  # protocol
    asm.jump(_JMP | _JEQ | _K, 17, "udp4", None)
    asm.jump(_JMP | _JEQ | _K, 6, "tcp4", None)
    for proto in _TUNNEL_PROTOCOLS:
        asm.jump(_JMP | _JEQ | _K, proto, "accept", None)
    asm.goto("drop")
    asm.label("udp4")
    asm.op(_LDX | _B | _MSH, base)  # X = IPv4 header length
    asm.goto("udp")
    asm.label("tcp4")
    asm.op(_LDX | _B | _MSH, base)
    asm.goto("tcp")

    asm.label("v6")
    asm.op(_LD | _B | _ABS, base + 6)  # next header
    asm.jump(_JMP | _JEQ | _K, 17, "udp6", None)
    asm.jump(_JMP | _JEQ | _K, 6, "tcp6", None)
    for proto in (*_TUNNEL_PROTOCOLS, *_IPV6_EXTENSIONS):
        asm.jump(_JMP | _JEQ | _K, proto, "accept", None)
    asm.goto("drop")
    asm.label("udp6")
    asm.op(_LDX | _IMM, 40)
    asm.goto("udp")
    asm.label("tcp6")
    asm.op(_LDX | _IMM, 40)
    asm.goto("tcp")

    # X holds the offset of the transport header from the IP header.
    asm.label("udp")
    asm.op(_LD | _H | _IND, base)  # source port
    _port_checks(asm, udp, "accept")
    asm.op(_LD | _H | _IND, base + 2)  # destination port
    _port_checks(asm, udp, "accept")
    asm.op(_LD | _B | _IND, base + 8)  # first payload byte
    asm.op(_ALU | _AND | _K, 0xC0)
    asm.jump(_JMP | _JEQ | _K, 0x80, "accept", "drop")  # RTP/RTCP version 2

    asm.label("tcp")
    asm.op(_LD | _H | _IND, base)
    _port_checks(asm, tcp, "accept")
    asm.op(_LD | _H | _IND, base + 2)
    _port_checks(asm, tcp, "accept")
    asm.goto("drop")

    asm.label("accept")
    asm.op(_RET | _K, snaplen)
    asm.label("drop")
    asm.op(_RET | _K, 0)
    return asm.assemble()


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
            if op == _AND:
                a &= k
            elif op == _RSH:
                a >>= k
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
            elif op == 0x20:  # JGT
                taken = a > k
            elif op == 0x30:  # JGE
                taken = a >= k
            else:
                raise FilterError(f"interpreter: jump {op:#x} not supported")
            pc += insn.jt if taken else insn.jf
        elif cls == _RET:
            return min(k if code & 0x18 == _K else a, n)
        elif cls == 0x02:  # ST
            mem[k] = a
        elif cls == 0x03:  # STX
            mem[k] = x
        elif cls == 0x07:  # MISC: TAX / TXA
            if code & 0xF8 == 0x00:
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
