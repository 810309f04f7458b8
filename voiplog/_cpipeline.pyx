# cython: language_level=3, boundscheck=False, wraparound=False
"""The pipeline's fast path compiled: `voiplog._fastpath.fast_path`, the reference,
as an iterator.

Statement for statement the reference: the same frames are taken (RTP of a flow
attached to a call, or of a believed media session, in Ethernet/IPv4/UDP), by the
same tests, with the same calls into the flows and streams, and every other frame
is returned for the general path with the same ``(ts, linktype, frame, udp)``; the
counters go to the pipeline when the frames run out, as the reference's do. The
header fields are read in C rather than with `struct`, and the compiled
`RtpStream` is fed through C (`add_at`) rather than by a Python call. A frame that
is not `bytes` (the readers give bytes) is left to the general path.

Given a compiled record loop (pcap or pcapng, `voiplog.capture._cpcap`) rather
than tuples, it reads each record where it lies in the mapped file: a frame it
takes never becomes an object. Only what it hands on, or hands to Python code (the
first packet of an SSRC, a media session's RTP, a mirror check), is made into bytes
and an int. `tests/test_pipeline_fast_path.py` holds both ways of reading to the
same frames taken and handed on.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.exc cimport PyErr_CheckSignals

from voiplog.packet.datagram import VXLAN_PORT as _VXLAN_PORT
from voiplog.capture._cpcap cimport InPlaceRecords
from voiplog.rtp._cstream cimport RtpStream
from voiplog.rtp import RTP_OF_FLOW as _RTP_OF_FLOW

__all__ = ["FastPath", "udp_fields"]

cdef long long EXPIRE_EVERY_US = 1_000_000
cdef unsigned int VXLAN_PORT = _VXLAN_PORT
cdef bytes RTP_OF_FLOW = _RTP_OF_FLOW


cdef inline unsigned int _u16(const unsigned char *p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef class FastPath:
    """The frames of `frames` that the general path must see, the rest taken."""

    cdef object pipeline
    cdef object frames
    cdef InPlaceRecords records  # `frames`, when it is a compiled record loop
    cdef long long read
    cdef object on_progress
    cdef object stats
    cdef dict flows
    cdef object media
    cdef object unmatched
    cdef object session_keys
    cdef object take_rtp
    cdef object dedup
    cdef const unsigned char *rtp_of_flow
    cdef long long next_expire
    cdef long long now
    cdef long long ts
    cdef long long fast
    cdef long long media_fast
    cdef long long slow
    cdef long long copies
    cdef bint finished

    def __cinit__(self, pipeline, frames, on_progress):
        self.pipeline = pipeline
        self.frames = iter(frames)
        if isinstance(self.frames, InPlaceRecords):
            self.records = self.frames
        self.read = 0
        self.on_progress = on_progress
        self.stats = pipeline.stats
        self.flows = pipeline.tracker.flows
        self.media = pipeline.tracker.media
        self.unmatched = pipeline._unmatched
        classifier = pipeline.classifier
        if classifier is not None:
            self.session_keys = classifier.session_keys
            self.take_rtp = classifier.take_rtp
        else:
            self.session_keys = {}
            self.take_rtp = None
        self.dedup = pipeline._dedup
        self.rtp_of_flow = <const unsigned char *>PyBytes_AS_STRING(RTP_OF_FLOW)
        self.next_expire = pipeline._next_expire_us
        self.now = pipeline._now_us
        self.ts = self.now
        self.fast = 0
        self.media_fast = 0
        self.slow = 0
        self.copies = 0
        self.finished = False

    def __iter__(self):
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        if self.records is not None:
            return self._next_in_place()
        for item in self.frames:
            handed = self._tuple(item)
            if handed is not None:
                return handed
        self._finish()
        raise StopIteration

    cdef _tuple(self, item):
        """A ``(ts, linktype, frame)`` taken (None), or handed on with its UDP offset."""
        cdef long long ts
        cdef Py_ssize_t udp = 0
        ts_obj, linktype, frame = item
        ts = ts_obj
        self._clock(ts)
        if linktype == 1 and type(frame) is bytes:
            udp = self._take(
                ts,
                <const unsigned char *>PyBytes_AS_STRING(frame),
                PyBytes_GET_SIZE(frame),
                frame,
                ts_obj,
            )
            if udp < 0:
                return None
        self._slow(ts)
        return ts_obj, linktype, frame, udp

    cdef _next_in_place(self):
        """`__next__` over a compiled record loop: records are read where they lie,
        and only those handed on become objects. Signals are looked at every 1,024
        records, a stop (`stop()` of the loop) ending them between two records."""
        cdef InPlaceRecords records = self.records
        cdef long long ts
        cdef const unsigned char *f
        cdef Py_ssize_t size, udp
        cdef int linktype, got
        while True:
            got = records.next_raw(&ts, &f, &size, &linktype)
            if not got:
                break
            self.read += 1
            if not self.read & 1023:
                PyErr_CheckSignals()
            if got == 2:  # a record the reader made in Python
                item, records.pending = records.pending, None
                handed = self._tuple(item)
                if handed is not None:
                    return handed
                continue
            self._clock(ts)
            udp = 0
            if linktype == 1:
                udp = self._take(ts, f, size, None, None)
                if udp < 0:
                    continue
            self._slow(ts)
            return ts, linktype, PyBytes_FromStringAndSize(<const char *>f, size), udp
        self._finish()
        raise StopIteration

    cdef inline void _clock(self, long long ts) except *:
        """The packet's time: expiry once per second of it, and progress."""
        self.ts = ts
        if ts >= self.next_expire:
            if ts > self.now:
                self.now = ts
            self.pipeline._now_us = self.now
            self.pipeline._expire(self.now)
            self.next_expire = self.now + EXPIRE_EVERY_US
            if self.on_progress is not None:
                self.on_progress()

    cdef inline void _slow(self, long long ts) except *:
        """A frame handed to the general path: counted, and its number set."""
        self.slow += 1
        self.pipeline._number = (
            self.stats.packets + self.fast + self.media_fast + self.slow + self.copies
        )
        if ts > self.now:
            self.now = ts

    cdef Py_ssize_t _take(
        self, long long ts, const unsigned char *f, Py_ssize_t size, object frame, object ts_obj
    ) except -2:
        """-1 when the fast path takes the Ethernet frame at `f` (`size` bytes), else
        the offset of the UDP header it read there (0: none), for the general path.
        `frame` and `ts_obj` are the frame as bytes and its time as an int, or None:
        they are then made, from `f` and `ts`, only where they are handed on."""
        cdef Py_ssize_t ip, udp
        # Signed, so that `total - 20` goes below zero as in Python.
        cdef long long ethertype, ver_ihl, total, fragment, proto, dport, length, head
        if size < 44:
            return 0
        ip = 14
        ethertype = _u16(f + 12)
        if ethertype == 0x8100 and size >= 48:
            ip = 18
            ethertype = _u16(f + 16)
        ver_ihl = f[ip]
        total = _u16(f + ip + 2)
        fragment = _u16(f + ip + 6)
        proto = f[ip + 9]
        dport = _u16(f + ip + 22)
        length = _u16(f + ip + 24)
        head = _u16(f + ip + 28)
        if not (
            ethertype == 0x0800
            and ver_ihl == 0x45
            and proto == 17
            and not fragment & 0x3FFF
            and 20 <= length <= total - 20
            and total <= size - ip
            and dport != VXLAN_PORT
        ):
            return 0
        udp = ip + 20
        if not self.rtp_of_flow[head]:
            return udp
        # The slices of the reference, made without slice objects: the tests above
        # keep them inside the frame.
        key = PyBytes_FromStringAndSize(<const char *>f + udp - 8, 12)
        flow = self.flows.get(key)
        if flow is not None:
            if self.dedup is not None and self.dedup.seen(
                key + PyBytes_FromStringAndSize(<const char *>f + udp + 8, length - 8),
                ts if ts_obj is None else ts_obj,
            ):
                self.copies += 1
                return -1
            stream = (<dict?>flow.streams).get(
                PyBytes_FromStringAndSize(<const char *>f + udp + 16, 4)
            )
            if type(stream) is RtpStream:
                # `stream.add(ts, frame, udp + 8)`, called in C.
                (<RtpStream>stream).add_at(ts, f + udp + 8)
            else:
                if frame is None:
                    frame = PyBytes_FromStringAndSize(<const char *>f, size)
                    ts_obj = ts
                if stream is None:
                    flow.add_rtp(ts_obj, frame, udp + 8)
                else:
                    stream.add(ts_obj, frame, udp + 8)
            self.fast += 1
            return -1
        entry = self.session_keys.get(key)
        if entry is not None and self.unmatched.get(key) == self.media.generation:
            if frame is None:
                frame = PyBytes_FromStringAndSize(<const char *>f, size)
                ts_obj = ts
            if self.take_rtp(ts_obj, entry, frame, udp + 8, length - 8):
                self.media_fast += 1
                return -1
        return udp

    cdef _finish(self):
        """The reference's work after its loop: the counters, and the clock."""
        self.finished = True
        if self.ts > self.now:
            self.now = self.ts
        stats = self.stats
        stats.packets += self.fast + self.media_fast + self.slow + self.copies
        stats.mirror_duplicates += self.copies
        stats.rtp_packets += self.fast
        stats.udp += self.fast + self.media_fast
        stats.media_session_packets += self.media_fast
        self.pipeline._now_us = self.now
        self.pipeline._next_expire_us = self.next_expire


def udp_fields(bytes frame, Py_ssize_t udp):
    """The reference's `udp_fields`, for a frame the fast path read (refused, with
    ValueError, when its UDP header and payload are not all in it)."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
    cdef const unsigned char *f = <const unsigned char *>PyBytes_AS_STRING(frame)
    cdef Py_ssize_t length
    if udp < 8 or udp + 8 > size:
        raise ValueError(f"no UDP header at offset {udp} of a {size}-byte frame")
    length = _u16(f + udp + 4)
    if length < 8 or udp + length > size:
        raise ValueError(f"UDP length {length} at offset {udp} beyond a {size}-byte frame")
    return (
        PyBytes_FromStringAndSize(<const char *>f + udp - 8, 4),
        _u16(f + udp),
        PyBytes_FromStringAndSize(<const char *>f + udp - 4, 4),
        _u16(f + udp + 2),
        PyBytes_FromStringAndSize(<const char *>f + udp + 8, length - 8),
        PyBytes_FromStringAndSize(<const char *>f + udp - 8, 12),
    )
