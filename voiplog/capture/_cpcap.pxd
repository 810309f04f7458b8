"""The compiled record loops' fields and C entry, for the compiled fast path
(`voiplog/_cpipeline.pyx`), which reads records in place rather than as tuples."""

from cpython.buffer cimport Py_buffer


cdef struct Interface:
    # A pcapng interface's time conversion, where C can do it (mul 0: it cannot).
    int linktype
    long long mul
    long long div
    long long offset_us


cdef class InPlaceRecords:
    cdef object reader
    cdef Py_buffer view
    cdef bint held
    cdef bint stopped
    cdef Py_ssize_t off
    cdef Py_ssize_t end
    cdef Py_ssize_t release_at
    cdef object pending  # a record the reader made in Python, not yet handed on

    cdef int next_raw(
        self, long long *ts, const unsigned char **frame, Py_ssize_t *caplen, int *linktype
    ) except -1


cdef class PcapRecords(InPlaceRecords):
    cdef int linktype
    cdef unsigned long long max_caplen
    cdef bint nanosecond
    cdef bint little
    cdef long long last_sec


cdef class PcapngRecords(InPlaceRecords):
    cdef object layout
    cdef object little_layout
    cdef bint little
    cdef list interfaces
    cdef Interface *fast
    cdef Py_ssize_t fast_count
    cdef long long ts
    cdef object new_section

    cdef _refresh(self)
