# cython: language_level=3, boundscheck=False, wraparound=False
"""The frames of a TPACKET_V3 ring block, compiled: `_Interface.read_blocks`'s loop
over one block, the reference, read straight from the ring.

The reference copies the block out of the ring, hands the block back to the
kernel, then cuts the frames from its copy. Here the frames are cut from the
ring itself before the caller hands the block back: the same bytes, one copy
fewer. Headers that run past the block raise `struct.error`, frames that do
are cut short, as the reference's slices and unpacks do.
"""

import struct

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

__all__ = ["block_frames"]

cdef unsigned int TP_STATUS_VLAN_VALID = 1 << 4
cdef unsigned int TP_STATUS_VLAN_TPID_VALID = 1 << 6


cdef inline unsigned long long _u32(const unsigned char *p) noexcept nogil:
    return <unsigned long long>p[0] | (<unsigned long long>p[1] << 8) | (
        <unsigned long long>p[2] << 16) | (<unsigned long long>p[3] << 24)


cdef inline unsigned int _u16(const unsigned char *p) noexcept nogil:
    return p[0] | (p[1] << 8)


def block_frames(
    ring,
    Py_ssize_t base,
    Py_ssize_t length,
    Py_ssize_t offset,
    unsigned long long count,
    linktype,
    bint ethernet,
    list out,
):
    """Append ``(ts_us, linktype, frame)`` for the `count` frames of the block at
    `base` (`length` bytes, the first frame at `offset`) to `out`; return the sum of
    their captured lengths."""
    cdef Py_buffer view
    cdef const unsigned char *block
    cdef const unsigned char *h
    cdef unsigned long long i, nxt, sec, nsec, caplen, pstatus, start, stop, have, head
    cdef unsigned long long nbytes = 0
    cdef unsigned int tci, tpid
    cdef char *dst
    cdef Py_ssize_t need = 26 if ethernet else 28  # the reference's header layouts
    PyObject_GetBuffer(ring, &view, PyBUF_SIMPLE)
    try:
        if base < 0 or base + length > view.len:
            raise ValueError("block outside the ring")
        block = <const unsigned char *>view.buf + base
        for i in range(count):
            if offset < 0 or offset + need > length:
                raise struct.error(f"frame header at {offset} runs past the {length}-byte block")
            h = block + offset
            nxt = _u32(h)
            sec = _u32(h + 4)
            nsec = _u32(h + 8)
            caplen = _u32(h + 12)
            pstatus = _u32(h + 20)
            start = offset + (_u16(h + 24) if ethernet else _u16(h + 26))
            stop = start + caplen
            if stop > <unsigned long long>length:
                stop = length
            have = stop - start if stop > start else 0
            ts = <long long>(sec * 1000000 + nsec // 1000)
            if ethernet and pstatus & TP_STATUS_VLAN_VALID:
                # The NIC took the 802.1Q tag off; put it back where it was on the wire.
                if offset + 38 > length:
                    raise struct.error(f"VLAN fields at {offset} run past the {length}-byte block")
                tci = <unsigned int>(_u32(h + 32) & 0xFFFF)
                tpid = _u16(h + 36) if pstatus & TP_STATUS_VLAN_TPID_VALID else 0x8100
                frame = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(have + 4))
                dst = PyBytes_AS_STRING(frame)
                head = have if have < 12 else 12
                memcpy(dst, block + start, head)
                dst[head] = <char>(tpid >> 8)
                dst[head + 1] = <char>(tpid & 0xFF)
                dst[head + 2] = <char>(tci >> 8)
                dst[head + 3] = <char>(tci & 0xFF)
                memcpy(dst + head + 4, block + start + head, have - head)
            else:
                frame = PyBytes_FromStringAndSize(<const char *>(block + start), <Py_ssize_t>have)
            out.append((ts, linktype, frame))
            nbytes += caplen
            offset += <Py_ssize_t>nxt
    finally:
        PyBuffer_Release(&view)
    return nbytes
