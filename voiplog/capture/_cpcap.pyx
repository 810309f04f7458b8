# cython: language_level=3, boundscheck=False, wraparound=False
"""pcap records cut from the mapped file, compiled: `CaptureReader._pcap_records`'s
loop, the reference, as an iterator.

It yields the same ``(ts_us, linktype, frame)`` tuples, sets the reader's
`bytes_read` as the reference does, and hands the rare events back to the
reader's own methods: releasing pages already read (`_release`) and damaged
records (`_pcap_recover`, which counts, reports and finds where to go on).
It holds the mapping's buffer while it runs: `release()` gives it back (the
reader calls it before closing the mapping), after which it yields nothing.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize

__all__ = ["PcapRecords"]


cdef inline unsigned long long _u32(const unsigned char *p, bint little) noexcept nogil:
    if little:
        return <unsigned long long>p[0] | (<unsigned long long>p[1] << 8) | (
            <unsigned long long>p[2] << 16) | (<unsigned long long>p[3] << 24)
    return (<unsigned long long>p[0] << 24) | (<unsigned long long>p[1] << 16) | (
        <unsigned long long>p[2] << 8) | <unsigned long long>p[3]


cdef class PcapRecords:
    """The records of a pcap mapping from byte `start` to `end`, as the reader's
    reference loop yields them. Its fields are declared in `_cpcap.pxd`: the
    compiled fast path reads the records in place with `next_raw`."""

    def __cinit__(
        self,
        reader,
        buf,
        Py_ssize_t start,
        Py_ssize_t end,
        unsigned long long max_caplen,
        bint nanosecond,
        bint little,
        linktype,
        Py_ssize_t release_every,
    ):
        PyObject_GetBuffer(buf, &self.view, PyBUF_SIMPLE)
        self.held = True
        self.reader = reader
        self.linktype = linktype
        self.off = start
        self.end = min(end, self.view.len)
        self.release_at = release_every
        self.max_caplen = max_caplen
        self.nanosecond = nanosecond
        self.little = little
        self.last_sec = -1  # no record read yet
        self.stopped = False
        self.c_linktype = linktype

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def release(self):
        """Give the mapping back; nothing more is yielded."""
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def __iter__(self):
        return self

    def stop(self):
        """End the records here, between two of them: `next_raw` (and iteration) has
        none left. The bytes read and the mapping stay as they are."""
        self.stopped = True

    def __next__(self):
        cdef long long ts
        cdef const unsigned char *frame
        cdef Py_ssize_t caplen
        if self.next_raw(&ts, &frame, &caplen):
            return (ts, self.linktype, PyBytes_FromStringAndSize(<const char *>frame, caplen))
        raise StopIteration

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen
    ) except -1:
        """The next record, in place: 1 with its time (microseconds), its frame's
        first byte and length (valid until the next call), or 0 when there is none
        (the end: the mapping is then given back, as iteration ends)."""
        cdef const unsigned char *p
        cdef unsigned long long sec, frac, length
        cdef Py_ssize_t off, nxt
        if self.stopped:
            return 0
        while self.held and self.off < self.end:
            off = self.off
            if self.end - off >= 16:
                p = <const unsigned char *>self.view.buf + off
                length = _u32(p + 8, self.little)
                if length <= self.max_caplen and <unsigned long long>(self.end - off - 16) >= length:
                    nxt = off + 16 + <Py_ssize_t>length
                    sec = _u32(p, self.little)
                    frac = _u32(p + 4, self.little)
                    self.reader.bytes_read = nxt
                    self.last_sec = sec
                    if nxt > self.release_at:
                        self.release_at = self.reader._release(off)
                        if not self.held:
                            break
                        p = <const unsigned char *>self.view.buf + off
                    if self.nanosecond:
                        ts[0] = <long long>(sec * 1000000 + frac // 1000)
                    else:
                        ts[0] = <long long>(sec * 1000000 + frac)
                    frame[0] = p + 16
                    caplen[0] = <Py_ssize_t>length
                    self.off = nxt
                    return 1
            resume = self.reader._pcap_recover(off, self.last_sec if self.last_sec >= 0 else None)
            if resume is None:
                break
            self.off = resume
        if self.held:
            self.reader.bytes_read = self.end
            self.release()
        return 0


cdef class PcapngRecords:
    """The records of a pcapng mapping, as the reader's reference loop
    (`CaptureReader._pcapng_records`) yields them: enhanced packet blocks here,
    every other block (and damage) by the reader's `_pcapng_block`."""

    cdef object reader
    cdef Py_buffer view
    cdef bint held
    cdef Py_ssize_t off
    cdef Py_ssize_t end
    cdef Py_ssize_t release_at
    cdef object layout
    cdef object little_layout
    cdef bint little
    cdef list interfaces
    cdef list fast  # per interface: (linktype, mul, div, offset_us), mul 0 where C cannot
    cdef object ts
    cdef object new_section

    def __cinit__(
        self,
        reader,
        buf,
        Py_ssize_t end,
        layout,
        little_layout,
        new_section,
        Py_ssize_t release_every,
    ):
        PyObject_GetBuffer(buf, &self.view, PyBUF_SIMPLE)
        self.held = True
        self.reader = reader
        self.off = 0
        self.end = min(end, self.view.len)
        self.release_at = release_every
        self.layout = layout
        self.little_layout = little_layout
        self.little = layout is little_layout
        self.interfaces = []
        self.fast = []
        self.ts = 0
        self.new_section = new_section

    cdef _refresh(self):
        """The interfaces as the loop reads them, again (after an interface block)."""
        self.fast = []
        for linktype, mul, div, offset_us, _ in self.interfaces:
            safe = 0 < mul < 0x80000000 and 0 < div < 0x4000000000000000
            self.fast.append((linktype, mul if safe else 0, div if safe else 1, offset_us))

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def release(self):
        """Give the mapping back; nothing more is yielded."""
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def __iter__(self):
        return self

    def __next__(self):
        cdef const unsigned char *p
        cdef unsigned long long btype, blen, ifid, raw, caplen, mul, div
        cdef Py_ssize_t off, nxt
        while self.held and self.off < self.end:
            off = self.off
            if self.end - off >= 28:
                p = <const unsigned char *>self.view.buf + off
                btype = _u32(p, self.little)
                blen = _u32(p + 4, self.little)
                ifid = _u32(p + 8, self.little)
                caplen = _u32(p + 20, self.little)
                if (
                    btype == 6
                    and blen >= 32
                    and blen <= <unsigned long long>(self.end - off)
                    and not blen & 3
                    and _u32(p + blen - 4, self.little) == blen
                    and ifid < <unsigned long long>len(self.interfaces)
                    and caplen <= blen - 32
                ):
                    nxt = off + <Py_ssize_t>blen
                    if len(self.fast) != len(self.interfaces):
                        self._refresh()
                    linktype, pymul, pydiv, offset_us = self.fast[ifid]
                    raw = (_u32(p + 12, self.little) << 32) | _u32(p + 16, self.little)
                    mul = pymul
                    div = pydiv
                    if mul and raw <= 0x7FFFFFFFFFFFFFFF // mul:
                        # The reference's arithmetic in 64 bits, where it fits.
                        ts = <long long>(raw * mul // div) + offset_us
                    else:
                        linktype, pymul, pydiv, offset_us, _ = self.interfaces[ifid]
                        ts = (<object>raw) * pymul // pydiv + offset_us
                    self.ts = ts
                    self.reader.bytes_read = nxt
                    if nxt > self.release_at:
                        self.release_at = self.reader._release(off)
                        if not self.held:
                            break
                        p = <const unsigned char *>self.view.buf + off
                    frame = PyBytes_FromStringAndSize(<const char *>(p + 28), <Py_ssize_t>caplen)
                    self.off = nxt
                    return (ts, linktype, frame)
            step = self.reader._pcapng_block(off, self.layout, self.interfaces, self.ts)
            if step is None:
                break
            self.off, record, self.layout = step
            self.reader.bytes_read = self.off
            if record is self.new_section:
                self.interfaces = []
                self.fast = []
                self.little = self.layout is self.little_layout
            elif record is not None:
                self.ts = record[0]
                return record
        if self.held:
            self.reader.bytes_read = self.end
            self.release()
        raise StopIteration
