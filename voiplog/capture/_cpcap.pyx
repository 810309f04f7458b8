# cython: language_level=3, boundscheck=False, wraparound=False
"""pcap and pcapng records cut from the mapped file, compiled: the record loops
of `CaptureReader` (`_pcap_records`, `_pcapng_records`), the reference, as
iterators.

They yield the same ``(ts_us, linktype, frame)`` tuples, set the reader's
`bytes_read` as the reference does, and hand the rare events back to the
reader's own methods: releasing pages already read (`_release`), damaged pcap
records (`_pcap_recover`, which counts, reports and finds where to go on) and
every pcapng block but a well-formed enhanced packet block (`_pcapng_block`).
Each holds the mapping's buffer while it runs: `release()` gives it back (the
reader calls it before closing the mapping), after which it yields nothing.

The compiled fast path (`voiplog/_cpipeline.pyx`) reads them in place instead,
through `next_raw` (declared in `_cpcap.pxd`): a record's time, link type and
frame where it lies in the mapping, without making an object.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc

__all__ = ["PcapRecords", "PcapngRecords"]

# Packet times a record can carry, in microseconds: from the epoch to the end of
# 9999 (`voiplog.capture.files.TS_LIMIT_US`, whose rule this repeats).
cdef long long TS_LIMIT_US = 253_402_300_800_000_000
cdef long long _INT64_MAX = 0x7FFFFFFFFFFFFFFF


cdef inline unsigned long long _u32(const unsigned char *p, bint little) noexcept nogil:
    if little:
        return <unsigned long long>p[0] | (<unsigned long long>p[1] << 8) | (
            <unsigned long long>p[2] << 16) | (<unsigned long long>p[3] << 24)
    return (<unsigned long long>p[0] << 24) | (<unsigned long long>p[1] << 16) | (
        <unsigned long long>p[2] << 8) | <unsigned long long>p[3]


cdef class InPlaceRecords:
    """What both record loops share: the mapping held, a stop, iteration over
    `next_raw`."""

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def release(self):
        """Give the mapping back; nothing more is yielded."""
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False

    def stop(self):
        """End the records here, between two of them: `next_raw` (and iteration) has
        none left. The bytes read and the mapping stay as they are."""
        self.stopped = True

    def __iter__(self):
        return self

    def __next__(self):
        cdef long long ts
        cdef const unsigned char *frame
        cdef Py_ssize_t caplen
        cdef int linktype
        cdef int got = self.next_raw(&ts, &frame, &caplen, &linktype)
        if got == 1:
            return (ts, linktype, PyBytes_FromStringAndSize(<const char *>frame, caplen))
        if got == 2:
            record, self.pending = self.pending, None
            return record
        raise StopIteration

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen, int *linktype
    ) except -1:
        """The next record: 1 with its time (microseconds), its frame's first byte
        and length (valid until the next call) and its link type; 2 when it is a
        record the reader made in Python, then in `pending` as a ``(ts_us,
        linktype, frame)`` tuple; 0 when there is none (at the end, the mapping is
        given back, as iteration ends)."""
        raise NotImplementedError


cdef class PcapRecords(InPlaceRecords):
    """The records of a pcap mapping from byte `start` to `end`, as the reader's
    reference loop yields them."""

    def __cinit__(
        self,
        reader,
        buf,
        Py_ssize_t start,
        Py_ssize_t end,
        unsigned long long max_caplen,
        bint nanosecond,
        bint little,
        int linktype,
        Py_ssize_t release_every,
    ):
        PyObject_GetBuffer(buf, &self.view, PyBUF_SIMPLE)
        self.held = True
        self.stopped = False
        self.reader = reader
        self.linktype = linktype
        self.off = start
        self.end = min(end, self.view.len)
        self.release_at = release_every
        self.max_caplen = max_caplen
        self.nanosecond = nanosecond
        self.little = little
        self.last_sec = -1  # no record read yet

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen, int *linktype
    ) except -1:
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
                    linktype[0] = self.linktype
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


cdef class PcapngRecords(InPlaceRecords):
    """The records of a pcapng mapping, as the reader's reference loop
    (`CaptureReader._pcapng_records`) yields them: enhanced packet blocks here,
    every other block (and damage) by the reader's `_pcapng_block`."""

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
        self.stopped = False
        self.reader = reader
        self.off = 0
        self.end = min(end, self.view.len)
        self.release_at = release_every
        self.layout = layout
        self.little_layout = little_layout
        self.little = layout is little_layout
        self.interfaces = []
        self.fast = NULL
        self.fast_count = 0
        self.ts = 0
        self.new_section = new_section

    def __dealloc__(self):
        PyMem_Free(self.fast)

    cdef _refresh(self):
        """The interfaces as the loop reads them, again (after an interface block):
        their time conversion in C where its figures fit (else mul 0: in Python)."""
        cdef Py_ssize_t count = len(self.interfaces)
        cdef Interface *fast = <Interface *>PyMem_Malloc(max(count, 1) * sizeof(Interface))
        if fast == NULL:
            raise MemoryError()
        PyMem_Free(self.fast)
        self.fast = fast
        self.fast_count = count
        for i, (linktype, mul, div, offset_us, _, _) in enumerate(self.interfaces):
            safe = (
                0 < mul < 0x80000000
                and 0 < div < 0x4000000000000000
                and -0x4000000000000000 < offset_us < 0x4000000000000000
            )
            fast[i].linktype = linktype
            fast[i].mul = mul if safe else 0
            fast[i].div = div if safe else 1
            fast[i].offset_us = offset_us if safe else 0

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen, int *linktype
    ) except -1:
        cdef const unsigned char *p
        cdef unsigned long long btype, blen, ifid, raw, length
        cdef long long t
        cdef Interface *interface
        cdef Py_ssize_t off, nxt
        cdef bint timed, computed
        if self.stopped:
            return 0
        while self.held and self.off < self.end:
            off = self.off
            if self.end - off >= 28:
                p = <const unsigned char *>self.view.buf + off
                btype = _u32(p, self.little)
                blen = _u32(p + 4, self.little)
                ifid = _u32(p + 8, self.little)
                length = _u32(p + 20, self.little)
                if (
                    btype == 6
                    and blen >= 32
                    and blen <= <unsigned long long>(self.end - off)
                    and not blen & 3
                    and _u32(p + blen - 4, self.little) == blen
                    and ifid < <unsigned long long>len(self.interfaces)
                    and length <= blen - 32
                ):
                    if self.fast_count != len(self.interfaces):
                        self._refresh()
                    interface = &self.fast[ifid]
                    raw = (_u32(p + 12, self.little) << 32) | _u32(p + 16, self.little)
                    timed = computed = False
                    if interface.mul and raw <= <unsigned long long>(_INT64_MAX // interface.mul):
                        # The reference's arithmetic in 64 bits, where it fits (the
                        # offset is under 2**62 either way).
                        t = <long long>(raw * <unsigned long long>interface.mul
                                        // <unsigned long long>interface.div)
                        if t < TS_LIMIT_US:
                            t += interface.offset_us
                            timed = 0 <= t < TS_LIMIT_US
                            computed = True
                    if not computed:
                        _, pymul, pydiv, offset_us, _, _ = self.interfaces[ifid]
                        exact = (<object>raw) * pymul // pydiv + offset_us
                        if 0 <= exact < TS_LIMIT_US:
                            t = exact
                            timed = True
                    # A time out of bounds leaves the block to `_pcapng_block`,
                    # which reports it as the reference does.
                    if timed:
                        nxt = off + <Py_ssize_t>blen
                        self.ts = t
                        self.reader.bytes_read = nxt
                        if nxt > self.release_at:
                            self.release_at = self.reader._release(off)
                            if not self.held:
                                break
                            p = <const unsigned char *>self.view.buf + off
                        ts[0] = t
                        frame[0] = p + 28
                        caplen[0] = <Py_ssize_t>length
                        linktype[0] = interface.linktype
                        self.off = nxt
                        return 1
            step = self.reader._pcapng_block(off, self.layout, self.interfaces, self.ts)
            if step is None:
                break
            self.off, record, self.layout = step
            self.reader.bytes_read = self.off
            if record is self.new_section:
                self.interfaces = []
                self.fast_count = 0
                self.little = self.layout is self.little_layout
            elif record is not None:
                self.ts = record[0]
                self.pending = record
                return 2
        if self.held:
            self.reader.bytes_read = self.end
            self.release()
        return 0
