"""The compiled `RtpStream`'s fields and C methods, so that the compiled fast path
(`voiplog/_cpipeline.pyx`) can hand it a packet without a Python call."""


cdef class RtpStream:
    cdef public double _count
    cdef public long long _cycles
    cdef public long long _fast_hi
    cdef public long long _fast_lo
    cdef public long long _first_ts
    cdef public double _jitter
    cdef public double _jitter_max
    cdef public double _jitter_mean
    cdef public double _nominal
    cdef public long long _pt
    cdef public bint _pt_counts
    cdef public object _rtpmap
    cdef public long long _start_seq
    cdef public long long _stop_word
    cdef public long long _time_us
    cdef public long long _ts_base
    cdef public bint _under
    cdef public double _us_per_tick
    cdef public object clock_rate
    cdef public object codec
    cdef public object dst_ip
    cdef public object dst_port
    cdef public long long first_us
    cdef public long long last_us
    cdef public long long payload_type
    cdef public object payload_types
    cdef public object src_ip
    cdef public object src_port
    cdef public object ssrc

    cdef void add_at(self, long long ts_us, const unsigned char *p)
    cdef void _add_words(self, long long ts_us, long long word, long long ts)
    cdef void _add(self, long long ts_us, long long word, long long ts)
    cdef void _arm(self, long long word, long long ts)
    cdef void _start(self, long long ts_us, long long word, long long ts)
    cdef bint _switch(self, long long pt) except? -1
