# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled `SourceCopies` of `voiplog/packet/mirror.py`: the reference's steps, one
for one, on the same tables and keys, without the interpreter in between (asked
once per SIP message). `tests/packet/test_mirror_equivalence.py` runs both on the
same sequences of messages, sources and times.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.object cimport PyObject

cdef object _BODY = "body"
cdef object _SOURCE = "source"
cdef object _ECHO = "echo"
cdef object _ZERO = 0


cdef class SourceCopies:
    """Passes on each message once per repetition, whichever sources gave it."""

    cdef dict _current
    cdef dict _previous
    cdef object _rotate_at  # None before the first message, else an int
    cdef readonly object window_us
    cdef readonly object max_entries
    cdef readonly object echo_us
    cdef Py_ssize_t _max

    def __init__(self, window_us, max_entries=100_000, echo_us=10_000):
        if window_us <= 0 or max_entries <= 0 or echo_us < 0:
            raise ValueError("source copies need a positive window and table size")
        self.window_us = window_us
        self.max_entries = max_entries
        self.echo_us = echo_us
        self._max = max_entries if max_entries < (1 << 62) else (1 << 62)
        self._current = {}
        self._previous = {}
        self._rotate_at = None

    def __len__(self):
        return len(self._current) + len(self._previous)

    def copy(self, key, body, source, ts_us):
        """As the reference's `copy`: "source", "echo", or None (to be passed on)."""
        cdef dict current = self._current
        cdef dict previous
        cdef PyObject *found
        rotate_at = self._rotate_at
        if rotate_at is None or ts_us >= rotate_at or len(current) >= self._max:
            if rotate_at is not None and ts_us >= rotate_at + self.window_us:
                current = {}  # a pause longer than the window: forget everything
            self._previous = current
            current = self._current = {}
            self._rotate_at = ts_us + self.window_us
        previous = self._previous
        message = hash(key)
        given = hash((message, source))
        found = PyDict_GetItem(current, given)
        if found == NULL or not <object>found:
            found = PyDict_GetItem(previous, given)
        times = _ZERO if found == NULL else <object>found
        found = PyDict_GetItem(current, message)
        if found == NULL or not <object>found:
            found = PyDict_GetItem(previous, message)
        passed = _ZERO if found == NULL else <object>found
        if times < passed:
            PyDict_SetItem(current, given, times + 1)
            return _SOURCE
        seen = hash((_BODY, hash(body)))
        found = PyDict_GetItem(current, seen)
        if found == NULL:
            found = PyDict_GetItem(previous, seen)
        if found != NULL and ts_us - <object>found < self.echo_us:
            return _ECHO
        PyDict_SetItem(current, given, times + 1)
        PyDict_SetItem(current, message, passed + 1)
        PyDict_SetItem(current, seen, ts_us)
        return None
