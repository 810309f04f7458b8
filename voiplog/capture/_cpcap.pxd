"""The compiled pcap record loop's fields and C entry, for the compiled fast path
(`voiplog/_cpipeline.pyx`), which reads records in place rather than as tuples."""

from cpython.buffer cimport Py_buffer


cdef class PcapRecords:
    cdef object reader
    cdef object linktype
    cdef int c_linktype
    cdef Py_buffer view
    cdef bint held
    cdef bint stopped
    cdef Py_ssize_t off
    cdef Py_ssize_t end
    cdef Py_ssize_t release_at
    cdef unsigned long long max_caplen
    cdef bint nanosecond
    cdef bint little
    cdef long long last_sec

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen
    ) except -1
