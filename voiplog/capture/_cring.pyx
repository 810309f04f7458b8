# cython: language_level=3, boundscheck=False, wraparound=False
"""The frames of TPACKET_V3 ring blocks, compiled: `_Interface.read_blocks`'s loop,
the reference, read in the ring itself.

The reference copies each block out of the ring, hands it back to the kernel,
then cuts the frames from its copy into bytes. `RingFrames` holds the blocks
taken (`_Interface.take_blocks`) and gives each frame where it lies in the ring
(`next_raw`, for the compiled fast path, which makes bytes only of the frames it
hands on), a block going back to the kernel once its frames are read. Headers
that run past a block raise `struct.error`, frames that do are cut short, as the
reference's slices and unpacks do.
"""

import struct

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from voiplog.capture._cpcap cimport InPlaceRecords

__all__ = ["RingFrames"]

cdef int LINKTYPE_ETHERNET = 1

cdef unsigned int TP_STATUS_VLAN_VALID = 1 << 4
cdef unsigned int TP_STATUS_VLAN_TPID_VALID = 1 << 6


cdef inline unsigned long long _u32(const unsigned char *p) noexcept nogil:
    return <unsigned long long>p[0] | (<unsigned long long>p[1] << 8) | (
        <unsigned long long>p[2] << 16) | (<unsigned long long>p[3] << 24)


cdef inline void _hand_back(const Py_buffer *ring, Py_ssize_t base) noexcept nogil:
    """Give the block at `base` of the ring back to the kernel (TP_STATUS_KERNEL)."""
    cdef unsigned char *status = <unsigned char *>ring.buf + base + 8
    status[0] = status[1] = status[2] = status[3] = 0


cdef inline unsigned int _u16(const unsigned char *p) noexcept nogil:
    return p[0] | (p[1] << 8)


cdef class RingFrames(InPlaceRecords):
    """The frames of ring blocks the caller took (`_Interface.take_blocks`), read in
    place: the compiled fast path reads each frame in the ring itself, and each
    block goes back to the kernel once its frames are read; `release()` hands back
    those left (`LiveCapture.read` calls it before it reads again, and `close`).
    Iterated, it gives the ``(ts_us, linktype, frame)`` tuples the reference
    gives, with the same errors for headers that run past a block (that block
    handed back first); `len()` is the number of frames taken. Each interface's
    `counters` count a block's frames and bytes once they are read."""

    cdef list blocks  # (interface, ring, base, length, offset, count), in reading order
    cdef Py_ssize_t index  # the next block to open
    cdef Py_ssize_t total
    cdef object interface  # that of the open block
    cdef Py_ssize_t base
    cdef Py_ssize_t length
    cdef Py_ssize_t offset
    cdef unsigned long long count
    cdef unsigned long long left
    cdef unsigned long long nbytes
    cdef int linktype
    cdef bint ethernet
    cdef bytearray scratch  # a re-tagged frame

    def __cinit__(self, list blocks):
        self.blocks = blocks
        self.index = 0
        self.held = False
        self.stopped = False
        self.total = 0
        for block in blocks:
            self.total += block[5]
        self.scratch = bytearray(0)

    def __len__(self):
        return self.total

    def release(self):
        """Hand back to the kernel every block not read yet (the frames left are
        not read); nothing more is yielded."""
        self._hand_back_all()

    cdef void _hand_back_all(self) noexcept:
        cdef Py_buffer view
        if self.held:
            self._close_block(False)
        while self.index < len(self.blocks):
            ring, base = self.blocks[self.index][1], self.blocks[self.index][2]
            self.index += 1
            try:
                PyObject_GetBuffer(ring, &view, PyBUF_WRITABLE)
            except Exception:  # the ring was unmapped: nothing to hand back
                continue
            _hand_back(&view, base)
            PyBuffer_Release(&view)

    cdef int _open_block(self) except -1:
        interface, ring, base, length, offset, count = self.blocks[self.index]
        self.index += 1
        PyObject_GetBuffer(ring, &self.view, PyBUF_WRITABLE)
        self.held = True
        self.interface = interface
        self.base = base
        self.length = length
        self.offset = offset
        self.count = count
        self.left = count
        self.nbytes = 0
        self.linktype = interface.linktype
        self.ethernet = self.linktype == LINKTYPE_ETHERNET
        if self.base < 0 or self.base + self.length > self.view.len:
            self._close_block(False)
            raise ValueError("block outside the ring")
        return 0

    cdef void _close_block(self, bint read) noexcept:
        """Hand the open block back; count its frames and bytes when `read` whole."""
        _hand_back(&self.view, self.base)
        PyBuffer_Release(&self.view)
        self.held = False
        if read:
            try:
                counters = self.interface.counters
                counters.frames += self.count
                counters.bytes += self.nbytes
            except Exception:
                pass
        self.interface = None

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen, int *linktype
    ) except -1:
        cdef const unsigned char *block
        cdef const unsigned char *h
        cdef unsigned long long nxt, sec, nsec, length, pstatus, start, stop, have, head
        cdef unsigned int tci, tpid
        cdef unsigned char *dst
        cdef Py_ssize_t need, offset
        while True:
            if self.held and self.left:
                block = <const unsigned char *>self.view.buf + self.base
                offset = self.offset
                need = 26 if self.ethernet else 28  # the reference's header layouts
                if offset < 0 or offset + need > self.length:
                    where = f"frame header at {offset} runs past the {self.length}-byte block"
                    self._close_block(False)
                    raise struct.error(where)
                h = block + offset
                nxt = _u32(h)
                sec = _u32(h + 4)
                nsec = _u32(h + 8)
                length = _u32(h + 12)
                pstatus = _u32(h + 20)
                start = offset + (_u16(h + 24) if self.ethernet else _u16(h + 26))
                stop = start + length
                if stop > <unsigned long long>self.length:
                    stop = self.length
                have = stop - start if stop > start else 0
                if self.ethernet and pstatus & TP_STATUS_VLAN_VALID:
                    # The NIC took the 802.1Q tag off; put it back where it was.
                    if offset + 38 > self.length:
                        where = f"VLAN fields at {offset} run past the {self.length}-byte block"
                        self._close_block(False)
                        raise struct.error(where)
                    tci = <unsigned int>(_u32(h + 32) & 0xFFFF)
                    tpid = _u16(h + 36) if pstatus & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    if <unsigned long long>len(self.scratch) < have + 4:
                        self.scratch = bytearray(have + 4)
                    dst = <unsigned char *>PyByteArray_AS_STRING(self.scratch)
                    head = have if have < 12 else 12
                    memcpy(dst, block + start, head)
                    dst[head] = <unsigned char>(tpid >> 8)
                    dst[head + 1] = <unsigned char>(tpid & 0xFF)
                    dst[head + 2] = <unsigned char>(tci >> 8)
                    dst[head + 3] = <unsigned char>(tci & 0xFF)
                    memcpy(dst + head + 4, block + start + head, have - head)
                    frame[0] = dst
                    caplen[0] = <Py_ssize_t>(have + 4)
                else:
                    frame[0] = block + start
                    caplen[0] = <Py_ssize_t>have
                ts[0] = <long long>(sec * 1000000 + nsec // 1000)
                linktype[0] = self.linktype
                self.nbytes += length
                self.offset += <Py_ssize_t>nxt
                self.left -= 1
                return 1
            if self.held:
                self._close_block(True)
            if self.stopped or self.index >= len(self.blocks):
                return 0
            self._open_block()
