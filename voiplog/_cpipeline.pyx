# cython: language_level=3, boundscheck=False, wraparound=False
"""The pipeline's fast path compiled: `voiplog._fastpath.fast_path`, the reference,
as an iterator.

Statement for statement the reference: the same frames are taken (RTP of a flow
attached to a call, or of a believed media session, in Ethernet/IPv4/UDP), by the
same tests, with the same calls into the flows and streams, and every other frame
is returned for the general path with the same ``(ts, linktype, frame, udp)``; the
counters go to the pipeline when the frames run out, as the reference's do. Only
the header fields are read in C rather than with `struct`. A frame that is not
`bytes` (the readers give bytes) is left to the general path.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE

from voiplog.packet.datagram import VXLAN_PORT as _VXLAN_PORT
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
    cdef object on_progress
    cdef object stats
    cdef object flows
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
        cdef const unsigned char *f
        cdef Py_ssize_t size, ip, udp
        # Signed, so that `total - 20` goes below zero as in Python.
        cdef long long ethertype, ver_ihl, total, fragment, proto, dport, length, head
        cdef long long ts
        if self.finished:
            raise StopIteration
        pipeline = self.pipeline
        flows = self.flows
        for item in self.frames:
            ts_obj, linktype, frame = item
            ts = ts_obj
            self.ts = ts
            if ts >= self.next_expire:
                if ts > self.now:
                    self.now = ts
                pipeline._now_us = self.now
                pipeline._expire(self.now)
                self.next_expire = self.now + EXPIRE_EVERY_US
                if self.on_progress is not None:
                    self.on_progress()
            udp = 0
            head = 0
            if linktype == 1 and type(frame) is bytes:
                size = PyBytes_GET_SIZE(frame)
                f = <const unsigned char *>PyBytes_AS_STRING(frame)
                if size >= 44:
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
                    if (
                        ethertype == 0x0800
                        and ver_ihl == 0x45
                        and proto == 17
                        and not fragment & 0x3FFF
                        and 20 <= length <= total - 20
                        and total <= size - ip
                        and dport != VXLAN_PORT
                    ):
                        udp = ip + 20
                if udp and self.rtp_of_flow[head]:
                    key = frame[udp - 8 : udp + 4]
                    flow = flows.get(key)
                    if flow is not None:
                        if self.dedup is not None and self.dedup.seen(
                            key + frame[udp + 8 : udp + (_u16(f + udp + 4))], ts_obj
                        ):
                            self.copies += 1
                            continue
                        stream = flow.streams.get(frame[udp + 16 : udp + 20])
                        if stream is None:
                            flow.add_rtp(ts_obj, frame, udp + 8)
                        else:
                            stream.add(ts_obj, frame, udp + 8)
                        self.fast += 1
                        continue
                    entry = self.session_keys.get(key)
                    if (
                        entry is not None
                        and self.unmatched.get(key) == self.media.generation
                        and self.take_rtp(ts_obj, entry, frame, udp + 8, _u16(f + udp + 4) - 8)
                    ):
                        self.media_fast += 1
                        continue
            self.slow += 1
            pipeline._number = (
                self.stats.packets + self.fast + self.media_fast + self.slow + self.copies
            )
            if ts > self.now:
                self.now = ts
            return ts_obj, linktype, frame, udp
        self._finish()
        raise StopIteration

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
