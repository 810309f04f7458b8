# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled HEP v3 decoding: `_decode_v3` of `voiplog/packet/hep.py`, its chunks read
in C.

The chunk walk is the reference's, check for check. Whatever the reference would
refuse, and a compressed payload (chunk 16, rare and dominated by zlib anyway), is
handed to the reference, which decodes the packet from the start: errors are
always its own, and an accepted packet gives a `HepMessage` equal to the
reference's (`tests/packet/test_hep_equivalence.py` checks both).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from voiplog._cslots cimport filled, slot_setters
from voiplog.packet.hep import HEP_SIP, HepMessage
from voiplog.packet.hep import _decode_v3 as _reference_decode


# Made as the dataclass's `__init__` makes it.
cdef tuple _MESSAGE_SLOTS = slot_setters(HepMessage)


def decode_v3(data):
    """Decode one HEP v3 packet (starting with ``HEP3``); raises `HepError` when it
    cannot be read. The same function as the reference, compiled."""
    if type(data) is bytes:
        message = _fast(<bytes>data)
        if message is not None:
            return message
    return _reference_decode(data)


def fast_path(bytes data):
    """The message as the fast path reads it, or None where it hands over to the
    reference (for the tests, which check it takes what it should)."""
    return _fast(data)


cdef inline unsigned int _u16(const unsigned char *p):
    return (p[0] << 8) | p[1]


cdef inline unsigned long _u32(const unsigned char *p):
    return (<unsigned long>p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]


cdef object _fast(bytes data):
    """The message as the reference reads it, or None when the reference must read it."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t total, off, end, body, n
    cdef unsigned int vendor, ctype, length
    cdef int family = -1, proto = -1, payload_type = -1
    cdef long sport = -1, dport = -1
    cdef unsigned long seconds = 0, micros = 0
    cdef long unknown = 0
    cdef Py_ssize_t src_at = -1, src_len = 0, dst_at = -1, dst_len = 0
    cdef Py_ssize_t payload_at = -1, payload_end = 0, auth_at = -1, auth_end = 0
    cdef Py_ssize_t corr_at = -1, corr_end = 0
    node = None
    if size < 6:
        return None
    total = _u16(p + 4)
    if total < 6 or total > size:
        return None
    off = 6
    while off < total:
        if total - off < 6:
            return None
        vendor = _u16(p + off)
        ctype = _u16(p + off + 2)
        length = _u16(p + off + 4)
        end = off + length
        if length < 6 or end > total:
            return None
        body = off + 6
        n = length - 6
        off = end
        if vendor != 0:
            unknown += 1
            continue
        if ctype == 15:
            payload_at, payload_end = body, end
        elif ctype == 3 or ctype == 5:
            if n != (16 if ctype == 5 else 4):
                return None
            src_at, src_len = body, n
        elif ctype == 4 or ctype == 6:
            if n != (16 if ctype == 6 else 4):
                return None
            dst_at, dst_len = body, n
        elif ctype == 7:
            if n != 2:
                return None
            sport = _u16(p + body)
        elif ctype == 8:
            if n != 2:
                return None
            dport = _u16(p + body)
        elif ctype == 9:
            if n != 4:
                return None
            seconds = _u32(p + body)
        elif ctype == 10:
            if n != 4:
                return None
            micros = _u32(p + body)
        elif ctype == 1 or ctype == 2 or ctype == 11:
            if n != 1:
                return None
            if ctype == 1:
                family = p[body]
            elif ctype == 2:
                proto = p[body]
            else:
                payload_type = p[body]
        elif ctype == 12:
            if n == 4:
                node = _u32(p + body)
            elif n == 2:
                node = _u16(p + body)
            else:
                return None
        elif ctype == 14:
            auth_at, auth_end = body, end
        elif ctype == 16:
            return None  # compressed: the reference inflates it
        elif ctype == 17:
            corr_at, corr_end = body, end
        elif 13 <= ctype <= 26:
            pass
        else:
            unknown += 1
    if payload_at < 0 or src_at < 0 or dst_at < 0 or sport < 0 or dport < 0:
        return None
    if src_len != dst_len:
        return None
    if family >= 0 and family != 2 and family != 10:
        return None
    if micros >= 1_000_000:
        return None
    return filled(HepMessage, _MESSAGE_SLOTS, (
        3,
        17 if proto < 0 else proto,
        data[src_at : src_at + src_len],
        sport,
        data[dst_at : dst_at + dst_len],
        dport,
        <long long>seconds * 1_000_000 + <long long>micros,
        HEP_SIP if payload_type < 0 else payload_type,
        data[payload_at:payload_end],
        node,
        data[auth_at:auth_end] if auth_at >= 0 else None,
        data[corr_at:corr_end].decode("utf-8", "replace") if corr_at >= 0 else None,
        unknown,
    ))
