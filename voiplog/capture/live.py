"""Live capture: AF_PACKET sockets with a TPACKET_V3 ring, several interfaces at once.

Strategy: one packet socket per interface, each with a memory-mapped receive ring
of blocks (TPACKET_V3). The kernel fills a block with many frames and hands it
over whole, when it is full or after `block_timeout_ms`; a block is copied out in
one go, handed back at once, and cut into ``(ts_us, linktype, frame)`` tuples,
exactly what a capture file yields. So the cost per packet in Python is one
header unpack and one slice, and the kernel never waits for Python on a packet.

A kernel BPF filter (`voiplog.capture.bpf`) is attached before the socket is
bound, so that unwanted traffic is dropped in the kernel from the first packet.
It can be swapped on the open socket (configuration reload) without losing
packets.

Drop counters: the socket's PACKET_STATISTICS reset when read, so they are
accumulated here; the interface's own counters (/sys/class/net) are read too.
Only Linux has any of this.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import select
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from voiplog._extensions import compiled
from voiplog.capture.bpf import LINKTYPE_ETHERNET, LINKTYPE_RAW, Program, pack
from voiplog.errors import UsageError

SOL_PACKET = 263
SOL_SOCKET = 1
SO_ATTACH_FILTER = 26
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
ETH_P_ALL = 0x0003

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6

_ARPHRD_ETHER = 1
_ARPHRD_LOOPBACK = 772

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status, num_pkts, offset_to_first_pkt, blk_len.
_BLOCK_HEADER = struct.Struct("<8xIIII")
_BLOCK_STATUS = struct.Struct("<I")
# struct tpacket3_hdr: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len,
# tp_status, tp_mac, tp_net, then hv1: tp_rxhash, tp_vlan_tci, tp_vlan_tpid.
# What the reader takes of it: tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_status
# and where the frame starts (tp_mac with a link header, tp_net without).
_PACKET_HEADER_MAC = struct.Struct("<IIII4xIH")
_PACKET_HEADER_NET = struct.Struct("<IIII4xI2xH")
_VLAN_FIELDS = struct.Struct("<IH")  # tp_vlan_tci, tp_vlan_tpid at offset 32
_REQ3 = struct.Struct("IIIIIII")
_STATS3 = struct.Struct("III")
_MREQ = struct.Struct("iHH8s")
_FPROG = struct.Struct("HxxxxxxQ")
_VLAN_TAG = struct.Struct(">HH")

# Blocks read per interface per call of `read`, so that a flooded interface does
# not starve the others or the daemon's main loop.
# The ring block loop compiled (`_cring.pyx`: frames read in place), or None: `read`
# then copies them out of the ring with `read_blocks`, the reference.
_cring = compiled("voiplog.capture._cring")
_MAX_BLOCKS_PER_READ = 8


class CaptureError(Exception):
    """An interface that cannot be captured on (missing, no permission, no memory)."""


class NoSuchInterface(CaptureError, UsageError):
    """An interface name the system does not know: a configuration error."""


@dataclass(frozen=True, slots=True)
class RingSettings:
    """Size and timing of each interface's receive ring."""

    snaplen: int = 65535
    ring_bytes: int = 64 << 20
    block_bytes: int = 1 << 20
    block_timeout_ms: int = 50
    promiscuous: bool = True

    def request(self) -> bytes:
        block = self.block_bytes
        if block % mmap.PAGESIZE or block & (block - 1):
            raise CaptureError(
                f"ring block size {block} must be a power of two and a multiple of the "
                f"page size ({mmap.PAGESIZE})"
            )
        if self.snaplen + 128 > block:
            raise CaptureError(f"snaplen {self.snaplen} does not fit a {block}-byte ring block")
        blocks = max(2, self.ring_bytes // block)
        frame = 2048
        return _REQ3.pack(
            block, blocks, frame, blocks * (block // frame), self.block_timeout_ms, 0, 0
        )


@dataclass
class InterfaceCounters:
    """What an interface's socket and the interface itself said so far (accumulated)."""

    name: str
    linktype: int
    received: int = 0  # packets the filter accepted and the ring took
    dropped: int = 0  # packets the filter accepted that the ring had no room for
    frames: int = 0  # frames handed to the caller
    bytes: int = 0  # their captured bytes
    if_rx_dropped: int = 0  # interface counters since capture started
    if_rx_missed: int = 0


def _interface_type(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip())
    except FileNotFoundError:
        raise NoSuchInterface(f"capture.interfaces: no such interface: {name}") from None
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{name}: cannot read the interface type: {exc}") from None


def _read_counter(name: str, counter: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/statistics/{counter}") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


class _Interface:
    """One interface: its socket, its mapped ring and where reading stands."""

    def __init__(self, name: str, ring: RingSettings, filter_for: Callable[[int], Program]):
        hwtype = _interface_type(name)
        cooked = hwtype not in (_ARPHRD_ETHER, _ARPHRD_LOOPBACK)
        self.name = name
        self.linktype = LINKTYPE_RAW if cooked else LINKTYPE_ETHERNET
        self.counters = InterfaceCounters(name, self.linktype)
        # Protocol 0: nothing is queued before the filter and the ring are in place.
        self.sock = socket.socket(
            socket.AF_PACKET, socket.SOCK_DGRAM if cooked else socket.SOCK_RAW, 0
        )
        try:
            self._setup(ring, filter_for)
        except OSError as exc:
            self.sock.close()
            if exc.errno == errno.ENODEV:
                raise NoSuchInterface(f"capture.interfaces: no such interface: {name}") from None
            raise CaptureError(f"{name}: cannot capture: {exc.strerror}") from None
        except BaseException:
            self.sock.close()
            raise

    def _setup(self, ring: RingSettings, filter_for: Callable[[int], Program]) -> None:
        sock = self.sock
        self.set_filter(filter_for(self.linktype))
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        request = ring.request()
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        block_bytes, blocks = _REQ3.unpack(request)[:2]
        self.block_bytes = block_bytes
        self.blocks = blocks
        self.ring = mmap.mmap(
            sock.fileno(), block_bytes * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.next_block = 0
        if self.linktype == LINKTYPE_ETHERNET and _interface_type(self.name) == _ARPHRD_LOOPBACK:
            # Loopback shows each packet going out and coming in: keep one copy.
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.bind((self.name, ETH_P_ALL))
        if ring.promiscuous:
            index = socket.if_nametoindex(self.name)
            sock.setsockopt(
                SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(index, PACKET_MR_PROMISC, 0, b"")
            )
        self._if_base = (
            _read_counter(self.name, "rx_dropped"),
            _read_counter(self.name, "rx_missed_errors")
            + _read_counter(self.name, "rx_fifo_errors"),
        )
        self._drain_stats()  # counters start now

    def set_filter(self, program: Program) -> None:
        code = pack(program)
        buffer = ctypes.create_string_buffer(code, len(code))
        fprog = _FPROG.pack(len(program), ctypes.addressof(buffer))
        self.sock.setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def _drain_stats(self) -> tuple[int, int]:
        packets, drops, _ = _STATS3.unpack(
            self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
        )
        return packets, drops  # tp_packets already includes the drops

    def update_counters(self, interface: bool) -> int:
        """Accumulate the socket's counters (which reset when read) and, when
        `interface`, the interface's own; returns the drops new since last time."""
        packets, drops = self._drain_stats()
        c = self.counters
        c.received += packets - drops
        c.dropped += drops
        if not interface:
            return drops
        dropped0, missed0 = self._if_base
        c.if_rx_dropped = _read_counter(self.name, "rx_dropped") - dropped0
        missed = (
            _read_counter(self.name, "rx_missed_errors")
            + _read_counter(self.name, "rx_fifo_errors")
            - missed0
        )
        new_missed = max(0, missed - c.if_rx_missed)
        c.if_rx_missed = missed
        return drops + new_missed

    def block_ready(self) -> bool:
        base = self.next_block * self.block_bytes
        return bool(_BLOCK_STATUS.unpack_from(self.ring, base + 8)[0] & TP_STATUS_USER)

    def take_blocks(self, out: list, max_blocks: int) -> int:
        """Append up to `max_blocks` ready blocks to `out` as ``(interface, ring, base,
        length, offset, count)``, for `_cring.RingFrames` to read in place: they stay
        the reader's until it hands them back."""
        done = 0
        while done < max_blocks and (block := self._ready_block()) is not None:
            base, count, offset, length = block
            out.append((self, self.ring, base, length, offset, count))
            self.next_block = (self.next_block + 1) % self.blocks
            done += 1
        return done

    def _ready_block(self) -> tuple[int, int, int, int] | None:
        """``(base, count, offset, length)`` of the next block if the kernel handed it
        over, its length bounded by the block's size."""
        base = self.next_block * self.block_bytes
        status, count, offset, length = _BLOCK_HEADER.unpack_from(self.ring, base)
        if not status & TP_STATUS_USER:
            return None
        if not offset <= length <= self.block_bytes:
            length = self.block_bytes
        return base, count, offset, length

    def read_blocks(self, out: list, max_blocks: int) -> int:
        """Append the frames of up to `max_blocks` ready blocks to `out`, as copies:
        the reference of `_cring.RingFrames`, which reads them in the ring."""
        ring = self.ring
        linktype = self.linktype
        ethernet = linktype == LINKTYPE_ETHERNET
        unpack = _PACKET_HEADER_MAC.unpack_from
        unpack_net = _PACKET_HEADER_NET.unpack_from
        append = out.append
        done = 0
        frames = 0
        nbytes = 0
        while done < max_blocks and (block := self._ready_block()) is not None:
            base, count, offset, length = block
            data = ring[base : base + length]
            _BLOCK_STATUS.pack_into(ring, base + 8, TP_STATUS_KERNEL)  # hand it back
            self.next_block = (self.next_block + 1) % self.blocks
            done += 1
            frames += count
            if ethernet:
                for _ in range(count):
                    nxt, sec, nsec, caplen, pstatus, start = unpack(data, offset)
                    start += offset
                    if pstatus & TP_STATUS_VLAN_VALID:
                        frame = self._retag(data, offset, start, caplen, pstatus)
                    else:
                        frame = data[start : start + caplen]
                    append((sec * 1_000_000 + nsec // 1000, linktype, frame))
                    nbytes += caplen
                    offset += nxt
            else:
                for _ in range(count):
                    nxt, sec, nsec, caplen, _status, start = unpack_net(data, offset)
                    start += offset
                    append((sec * 1_000_000 + nsec // 1000, linktype, data[start : start + caplen]))
                    nbytes += caplen
                    offset += nxt
        c = self.counters
        c.frames += frames
        c.bytes += nbytes
        return done

    @staticmethod
    def _retag(data: bytes, offset: int, start: int, caplen: int, pstatus: int) -> bytes:
        # The NIC took the 802.1Q tag off; put it back where it was on the wire.
        tci, tpid = _VLAN_FIELDS.unpack_from(data, offset + 32)
        if not pstatus & TP_STATUS_VLAN_TPID_VALID:
            tpid = 0x8100
        frame = data[start : start + caplen]
        return frame[:12] + _VLAN_TAG.pack(tpid, tci & 0xFFFF) + frame[12:]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ring.close()
        self.sock.close()


class LiveCapture:
    """Frames from several interfaces, read in batches.

    `filter_for(linktype)` gives the BPF program for an interface of that link
    type. `wakeup_fd`, when given, is polled too: a byte written to it (by a
    signal handler) makes `read` return at once. With no interface, only that
    and the `watch`ed descriptors are polled (a daemon fed by HEP alone).
    """

    def __init__(
        self,
        interfaces: Sequence[str],
        ring: RingSettings,
        filter_for: Callable[[int], Program],
        wakeup_fd: int | None = None,
    ) -> None:
        self._interfaces: list[_Interface] = []
        self._reading = None  # the frames last read in place, until read again
        try:
            for name in dict.fromkeys(interfaces):
                self._interfaces.append(_Interface(name, ring, filter_for))
        except BaseException:
            self.close()
            raise
        self._poll = select.poll()
        self._by_fd = {}
        for iface in self._interfaces:
            self._poll.register(iface.sock.fileno(), select.POLLIN | select.POLLERR)
            self._by_fd[iface.sock.fileno()] = iface
        self._wakeup_fd = wakeup_fd
        if wakeup_fd is not None:
            self._poll.register(wakeup_fd, select.POLLIN)
        self._watched: set[int] = set()

    def watch(self, fds: Iterable[int]) -> None:
        """Poll these descriptors too (replacing the last set given): one readable
        makes `read` return, for its owner to read (the HEP listener's sockets)."""
        fds = set(fds)
        for fd in self._watched - fds:
            with contextlib.suppress(KeyError, ValueError):
                self._poll.unregister(fd)
        for fd in fds - self._watched:
            self._poll.register(fd, select.POLLIN)
        self._watched = fds

    @property
    def counters(self) -> list[InterfaceCounters]:
        return [iface.counters for iface in self._interfaces]

    def read(self, timeout_s: float) -> Iterable[tuple[int, int, bytes]]:
        """Frames of the blocks ready now; waits up to `timeout_s` when none is.

        With the compiled ring loop, the frames are read in place
        (`_cring.RingFrames`, which the compiled fast path reads without copying
        them): the blocks go back to the kernel as their frames are read, and those
        not read by the next call go back then. Else a list of copies."""
        if self._reading is not None:
            self._reading.release()
            self._reading = None
        out: list = []
        take = self._take
        for iface in self._interfaces:
            take(iface, out)
        if out:
            return self._frames(out)
        try:
            events = self._poll.poll(int(timeout_s * 1000))
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            return out
        for fd, _ in events:
            if fd == self._wakeup_fd:
                with contextlib.suppress(OSError):
                    os.read(fd, 4096)
                continue
            iface = self._by_fd.get(fd)
            if iface is not None:  # else a watched descriptor, its owner reads it
                take(iface, out)
        return self._frames(out)

    @staticmethod
    def _take(iface: _Interface, out: list) -> None:
        if _cring is not None:
            iface.take_blocks(out, _MAX_BLOCKS_PER_READ)
        else:
            iface.read_blocks(out, _MAX_BLOCKS_PER_READ)

    def _frames(self, out: list) -> Iterable[tuple[int, int, bytes]]:
        if _cring is None or not out:
            return out
        self._reading = _cring.RingFrames(out)
        return self._reading

    def update_counters(self, interface: bool = True) -> dict[str, int]:
        """Accumulate drop counters; returns the drops new since the last call, by
        interface. The socket counters cost one system call per interface; the
        interface counters (`interface`) a few file reads more."""
        return {iface.name: iface.update_counters(interface) for iface in self._interfaces}

    def set_filter(self, filter_for: Callable[[int], Program]) -> None:
        """Swap every socket's kernel filter in place (no packet is lost)."""
        for iface in self._interfaces:
            iface.set_filter(filter_for(iface.linktype))

    def close(self) -> None:
        if self._reading is not None:
            self._reading.release()
            self._reading = None
        for iface in self._interfaces:
            iface.close()
        self._interfaces = []

    def __enter__(self) -> LiveCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
