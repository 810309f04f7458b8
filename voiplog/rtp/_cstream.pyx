# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""`RtpStream` compiled: the same rules as `voiplog.rtp._stream`, the reference.

Every statement follows the reference's, in the same order and with the same
floating-point operations (C doubles are the IEEE 754 doubles Python floats
are, and the module is built without floating-point contraction), so that
both give the same bits; `tests/rtp/test_stream_equivalence.py` runs on both.
Integers that Python keeps unbounded are 64-bit here: arrival times in epoch
microseconds and 32-bit RTP fields fit with room to spare.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from voiplog.rtp._codecs import COMFORT_NOISE_TYPES, codec_for
from voiplog.rtp._stream import STATE_FIELDS, _unpack_words, _us_per_tick

__all__ = ["STATE_FIELDS", "RtpStream"]

cdef long long _SEQ_MOD = 0x10000


cdef class RtpStream:
    """Statistics of one RTP stream; see `voiplog.rtp._stream.RtpStream`. Its fields
    are declared in `_cstream.pxd`, for the compiled fast path's direct calls."""

    def __init__(
        self,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        ssrc,
        payload_type,
        codec,
        clock_rate,
        rtpmap=None,
    ):
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.payload_types = [payload_type]
        self.codec = codec
        self.clock_rate = clock_rate
        self._rtpmap = rtpmap
        self._count = 0.0
        self.first_us = 0
        self.last_us = 0
        self._pt = payload_type
        self._pt_counts = payload_type not in COMFORT_NOISE_TYPES
        self._us_per_tick = _us_per_tick(codec, clock_rate)
        self._first_ts = 0
        self._start_seq = 0
        self._stop_word = 0
        self._cycles = 0
        self._under = False
        self._time_us = 0
        self._nominal = 0.0
        self._jitter = 0.0
        self._jitter_max = 0.0
        self._jitter_mean = 0.0
        self._fast_lo = 0
        self._fast_hi = 0
        self._ts_base = 0

    def add(self, ts_us, payload, offset=0):
        """Account for one RTP packet of this stream that arrived at ``ts_us``; the RTP
        header starts at ``offset`` of ``payload``."""
        cdef long long t = ts_us
        cdef Py_ssize_t at = offset
        if type(payload) is bytes and 0 <= at and at + 8 <= PyBytes_GET_SIZE(payload):
            self.add_at(t, <const unsigned char *>PyBytes_AS_STRING(payload) + at)
        else:
            # Any other buffer, or too short (struct.error, as the reference).
            word, ts = _unpack_words(payload, offset)
            self._add_words(t, word, ts)

    cdef void add_at(self, long long ts_us, const unsigned char *p):
        """`add` for an RTP header at `p` (its first 8 bytes readable): what the
        compiled fast path calls, without making Python objects."""
        self._add_words(
            ts_us,
            (<long long>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3],
            (<long long>p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7],
        )

    cdef void _add_words(self, long long ts_us, long long word, long long ts):
        cdef long long elapsed
        cdef double nominal, jitter, n, d
        if self._fast_lo < word < self._fast_hi:
            elapsed = ts - self._ts_base
            if 0 <= elapsed < 0x80000000:
                nominal = self._us_per_tick * <double>elapsed
                d = self._nominal - (nominal - <double>(ts_us - self.last_us))
                if d < 0:
                    d = -d
                jitter = (15.0 * self._jitter + d) * 0.0625
                self._jitter = jitter
                self._nominal = nominal
                if jitter > self._jitter_max:
                    self._jitter_max = jitter
                n = self._count
                self._jitter_mean = (self._jitter_mean * (n - 1.0) + jitter) / n
                self._count = n + 1.0
                self.last_us = ts_us
                self._stop_word = word
                return
        self._add(ts_us, word, ts)

    cdef void _add(self, long long ts_us, long long word, long long ts):
        cdef long long n, second, seq, first_ts, elapsed, start, pt
        cdef bint in_time, counts
        cdef double us_per_tick, nominal, diff, jitter
        if self._fast_hi:
            self._time_us = self.last_us
        n = <long long>self._count
        if not n:
            self._start(ts_us, word, ts)
            self._arm(word, ts)
            return
        second = word >> 16 & 0xFF
        seq = word & 0xFFFF
        first_ts = self._first_ts
        elapsed = (ts - first_ts) & 0xFFFFFFFF
        in_time = elapsed < 0x80000000 or (elapsed == 0x80000000 and ts < first_ts)

        start = self._start_seq
        if seq > start:
            if self._under and in_time:
                self._under = False
        elif seq < start:
            if in_time and not self._under:
                self._cycles += 1
                self._under = True
        elif seq == 0 and self._stop_word & 0xFFFF == 0xFFFF and in_time and not self._under:
            self._cycles += 1
            self._under = True

        pt = second & 0x7F
        counts = self._pt_counts if pt == self._pt else self._switch(pt)

        if in_time:
            us_per_tick = self._us_per_tick
            if us_per_tick:
                nominal = <double>elapsed * us_per_tick
                diff = <double>(ts_us - self._time_us) - nominal + self._nominal
                if diff < 0:
                    diff = -diff
                jitter = (15.0 * self._jitter + diff) / 16.0
                self._jitter = jitter
                self._nominal = nominal
                if counts and not second & 0x80:
                    if jitter > self._jitter_max:
                        self._jitter_max = jitter
                    self._jitter_mean = (self._jitter_mean * <double>(n - 1) + jitter) / <double>n
            self._time_us = ts_us
        self._stop_word = word
        self._count = <double>(n + 1)
        self.last_us = ts_us
        self._arm(word, ts)

    cdef void _arm(self, long long word, long long ts):
        cdef long long base, first_ts
        if self._pt_counts and self._us_per_tick and self._time_us == self.last_us:
            base = word & 0xFF000000 | self._pt << 16
            if self._under:
                self._fast_lo = base - 1
                self._fast_hi = base | self._start_seq
            else:
                self._fast_lo = base | self._start_seq
                self._fast_hi = base + 0x10000
            first_ts = self._first_ts
            self._ts_base = first_ts if ts >= first_ts else first_ts - 0x100000000
        else:
            self._fast_lo = 0
            self._fast_hi = 0

    cdef void _start(self, long long ts_us, long long word, long long ts):
        cdef long long pt = word >> 16 & 0x7F
        if pt != self.payload_type:
            self.payload_type = pt
            self.payload_types = [pt]
            self.codec, self.clock_rate = codec_for(pt, self._rtpmap)
            self._pt = pt
            self._pt_counts = pt not in COMFORT_NOISE_TYPES
            self._us_per_tick = _us_per_tick(self.codec, self.clock_rate)
        self._first_ts = ts
        self._start_seq = word & 0xFFFF
        self._stop_word = word
        self._time_us = ts_us
        self.first_us = ts_us
        self.last_us = ts_us
        self._count = 1.0

    cdef bint _switch(self, long long pt) except? -1:
        cdef bint counts = pt not in COMFORT_NOISE_TYPES
        cdef bint follows_noise = self._pt in COMFORT_NOISE_TYPES
        self._pt = pt
        self._pt_counts = counts
        if pt == self.payload_type:
            codec, clock_rate = self.codec, self.clock_rate
        else:
            codec, clock_rate = codec_for(pt, self._rtpmap)
            if pt not in self.payload_types:
                self.payload_types.append(pt)
                self.payload_types.sort()
        self._us_per_tick = _us_per_tick(codec, clock_rate)
        return counts and not follows_noise

    @property
    def packets(self):
        """Packets added."""
        return <long long>self._count

    @property
    def lost(self):
        """Expected minus received packets, as Wireshark counts them."""
        cdef long long packets = <long long>self._count
        if not packets:
            return 0
        stop_seq = self._stop_word & 0xFFFF
        expected = stop_seq + self._cycles * _SEQ_MOD - self._start_seq + 1
        return expected - packets

    @property
    def jitter_max_ms(self):
        """Highest interarrival jitter over the counted packets, in ms."""
        return round(float(self._jitter_max / 1000.0), 3)

    @property
    def jitter_mean_ms(self):
        """Wireshark's "Mean Jitter", in ms."""
        return round(float(self._jitter_mean / 1000.0), 3)

    def summary(self):
        """The stream as a CDR ``media`` object (times still in epoch µs)."""
        return {
            "src_ip": self.src_ip,
            "src_port": self.src_port,
            "dst_ip": self.dst_ip,
            "dst_port": self.dst_port,
            "ssrc": self.ssrc,
            "payload_type": self.payload_type,
            "payload_types": list(self.payload_types),
            "codec": self.codec,
            "clock_rate": self.clock_rate,
            "packets": self.packets,
            "lost": self.lost,
            "jitter_max_ms": self.jitter_max_ms,
            "jitter_mean_ms": self.jitter_mean_ms,
            "first_us": self.first_us,
            "last_us": self.last_us,
        }
