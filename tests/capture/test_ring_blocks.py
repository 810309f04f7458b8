"""Frames of TPACKET_V3 ring blocks: the compiled loop (frames read in place) against
the reference.

Blocks are laid out in an anonymous mapping as the kernel writes them (block
descriptor, then frames with their tpacket3 headers), with and without the
802.1Q tag the NIC took off, cooked (SLL) and Ethernet, and frames cut short
by the block's end; both loops must give the same frames and counters, and
hand every block back to the kernel.
"""

from __future__ import annotations

import mmap
import random
import struct

import pytest

from voiplog.capture import live
from voiplog.capture.bpf import LINKTYPE_ETHERNET, LINKTYPE_RAW

BLOCK = 4096
BLOCKS = 4
HEADER = 48  # block descriptor: the first frame starts here
TP_STATUS_USER = 1


def _frame_header(nxt, sec, nsec, caplen, status, mac, net, tci=0, tpid=0) -> bytes:
    head = struct.pack("<IIIIIIHH", nxt, sec, nsec, caplen, caplen, status, mac, net)
    return head + struct.pack("<IIH", 0, tci, tpid) + bytes(2)  # hv1: rxhash, tci, tpid


def _ring(rng: random.Random, ethernet: bool, cut: bool) -> tuple[mmap.mmap, int]:
    ring = mmap.mmap(-1, BLOCK * BLOCKS)
    frames = 0
    for b in range(BLOCKS - 1):  # the last block stays the kernel's
        base, offset, count = b * BLOCK, HEADER, 0
        while True:
            caplen = rng.choice([14, 42, 60, 214, 400])
            mac = 64
            nxt = (mac + caplen + 15) & ~15
            if offset + nxt > BLOCK - 64:
                break
            status = rng.choice([0, 1 << 4, (1 << 4) | (1 << 6)]) if ethernet else 0
            header = _frame_header(
                nxt, 1_700_000_000 + b, rng.randrange(10**9), caplen, status, mac, mac,
                tci=rng.randrange(1 << 16), tpid=rng.choice([0x8100, 0x88A8]),
            )  # fmt: skip
            ring[base + offset : base + offset + len(header)] = header
            body = bytes(rng.randrange(256) for _ in range(caplen))
            ring[base + offset + mac : base + offset + mac + caplen] = body
            offset += nxt
            count += 1
        length = offset
        if cut and b == 1:
            length -= 100  # the block says it ends inside its last frame
        ring[base + 8 : base + 24] = struct.pack("<IIII", TP_STATUS_USER, count, HEADER, length)
        frames += count
    return ring, frames


def _interface(ring: mmap.mmap, linktype: int) -> live._Interface:
    interface = live._Interface.__new__(live._Interface)
    interface.ring = ring
    interface.block_bytes = BLOCK
    interface.blocks = BLOCKS
    interface.next_block = 0
    interface.linktype = linktype
    interface.counters = live.InterfaceCounters("test0", linktype)
    return interface


def _read(seed: int, ethernet: bool, cut: bool) -> tuple:
    """What the reference block loop reads of a ring made from `seed`."""
    ring, frames = _ring(random.Random(seed), ethernet, cut)
    interface = _interface(ring, LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW)
    out: list = []
    try:
        done = interface.read_blocks(out, 8)
    except struct.error:  # a header past the block's end, as unpacking says
        done = "struct.error"
    statuses = [struct.unpack_from("<I", ring, b * BLOCK + 8)[0] for b in range(BLOCKS)]
    counters = interface.counters
    return done, out, frames, statuses, counters.frames, counters.bytes, interface.next_block


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ethernet", [True, False], ids=["ethernet", "cooked"])
def test_the_reference_block_loop_reads_every_frame_and_hands_every_block_back(seed, ethernet):
    done, out, frames, statuses, *_ = _read(seed, ethernet, False)
    assert done == BLOCKS - 1 and len(out) == frames
    assert statuses == [0] * BLOCKS  # every block read went back to the kernel


def test_a_retagged_frame_has_its_tag_back_where_it_was():
    ring = mmap.mmap(-1, BLOCK * BLOCKS)
    frame = bytes(range(12)) + b"\x08\x00" + b"payload"
    header = _frame_header(
        128, 1, 2000, len(frame), (1 << 4) | (1 << 6), 64, 64, tci=0x1234, tpid=0x88A8
    )
    ring[HEADER : HEADER + len(header)] = header
    ring[HEADER + 64 : HEADER + 64 + len(frame)] = frame
    ring[8:24] = struct.pack("<IIII", TP_STATUS_USER, 1, HEADER, HEADER + 128)
    out: list = []
    _interface(ring, LINKTYPE_ETHERNET).read_blocks(out, 8)
    assert out == [(1_000_002, LINKTYPE_ETHERNET, frame[:12] + b"\x88\xa8\x12\x34" + frame[12:])]


# -- frames read in place ---------------------------------------------------------------
#
# With the compiled ring loop, `LiveCapture.read` hands out the blocks themselves
# (`_cring.RingFrames`), which the compiled fast path reads in the ring. Iterated,
# they must give the reference's frames; every block must go back to the kernel.

IN_PLACE = pytest.mark.skipif(live._cring is None, reason="compiled extensions not built")


def _taken(interface: live._Interface) -> list:
    blocks: list = []
    interface.take_blocks(blocks, 8)
    return blocks


def _statuses(ring: mmap.mmap) -> list[int]:
    return [struct.unpack_from("<I", ring, b * BLOCK + 8)[0] for b in range(BLOCKS)]


@IN_PLACE
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ethernet", [True, False], ids=["ethernet", "cooked"])
@pytest.mark.parametrize("cut", [False, True], ids=["whole", "cut-short"])
def test_frames_read_in_place_are_the_reference_frames(seed, ethernet, cut):
    done, reference, frames, _, ref_frames, ref_bytes, ref_next = _read(seed, ethernet, cut)
    ring, _ = _ring(random.Random(seed), ethernet, cut)
    interface = _interface(ring, LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW)
    blocks = _taken(interface)
    assert interface.next_block == len(blocks) == BLOCKS - 1
    in_place = live._cring.RingFrames(blocks)
    assert len(in_place) == sum(block[5] for block in blocks)
    got: list = []
    try:
        got.extend(in_place)
        error = None
    except struct.error as exc:
        error = exc
    if done == "struct.error":
        # The reference stops at the damaged block; so does the iteration, the
        # block handed back, and the blocks after it go back when released.
        assert error is not None
        assert got == reference  # the same frames before the damage
        damaged = ref_next - 1
        assert _statuses(ring)[: damaged + 1] == [0] * (damaged + 1)
        in_place.release()
        assert _statuses(ring) == [0] * BLOCKS
    else:
        assert ref_next == len(blocks)
        assert _statuses(ring) == [0] * BLOCKS  # every block back to the kernel
        assert error is None
        assert got == reference and len(got) == frames
        assert (interface.counters.frames, interface.counters.bytes) == (ref_frames, ref_bytes)
    assert list(in_place) == []


@IN_PLACE
def test_frames_not_read_go_back_to_the_kernel_on_release():
    ring, _ = _ring(random.Random(7), True, False)
    interface = _interface(ring, LINKTYPE_ETHERNET)
    in_place = live._cring.RingFrames(_taken(interface))
    first = next(in_place)  # the first block is open, the others not yet
    assert first[1] == LINKTYPE_ETHERNET
    assert _statuses(ring)[: BLOCKS - 1] == [TP_STATUS_USER] * (BLOCKS - 1)
    in_place.release()
    assert _statuses(ring) == [0] * BLOCKS
    assert list(in_place) == []
    assert interface.counters.frames == 0  # frames handed on count once a block is read


@IN_PLACE
def test_a_retagged_frame_read_in_place_has_its_tag_back():
    ring = mmap.mmap(-1, BLOCK * BLOCKS)
    frames = [bytes(range(12)) + b"\x08\x00" + b"x" * n for n in (7, 300, 20)]
    offset = HEADER
    for frame in frames:
        header = _frame_header(
            512, 1, 2000, len(frame), (1 << 4) | (1 << 6), 64, 64, tci=0x1234, tpid=0x88A8
        )
        ring[offset : offset + len(header)] = header
        ring[offset + 64 : offset + 64 + len(frame)] = frame
        offset += 512
    ring[8:24] = struct.pack("<IIII", TP_STATUS_USER, len(frames), HEADER, offset)
    interface = _interface(ring, LINKTYPE_ETHERNET)
    got = list(live._cring.RingFrames(_taken(interface)))
    tag = b"\x88\xa8\x12\x34"
    assert got == [(1_000_002, LINKTYPE_ETHERNET, f[:12] + tag + f[12:]) for f in frames]
