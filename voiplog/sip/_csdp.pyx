# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled `parse_sdp`: the ordinary SDP body read at C speed, anything else handed
to the pure-Python reference (`voiplog/sip/_sdp.py`).

Strategy: the fast path takes an ASCII body (lines ending in CRLF or bare LF) and
scans its bytes once, line by line, with the reference's rules: each line stripped
of what ``str.strip()`` strips, blank and unknown lines skipped, an attribute name
stripped and lower-cased before it is looked up. Only the values a record keeps
become Python strings. The attributes that matter are read in C (``a=rtpmap``
exactly as the reference's regular expression matches it, ``a=rtcp``, ``a=ptime``,
``a=setup``, the directions, the flags), ICE candidates with the reference's own
``str.split`` logic. The frozen records are filled in field by field, as their
dataclass ``__init__`` fills them, without the cost of calling it (which would be
more than half of the fast path's time).

Whenever the fast path meets something it does not take (a byte outside ASCII,
which the reference decodes with replacement characters) or something the
reference refuses (no ``v=`` first, a malformed ``m=`` or ``c=`` line, an empty
body), it gives up and the reference parses the body from the start: errors are
always raised by the reference, so their text and kind are its own, and an
accepted body gives a `SessionDescription` equal to the reference's, field by
field (`tests/sip/test_sdp_equivalence.py` checks both).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp

from voiplog._cslots cimport filled, slot_setters

from voiplog.sip._sdp import (
    IceCandidate,
    MediaDescription,
    Origin,
    SessionDescription,
)
from voiplog.sip._sdp import parse_sdp as _reference_parse


cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)


# ASCII characters that str.strip(), str.split() and the regular expression's \s
# take for whitespace.
cdef bint _SPACE[256]


cdef void _init_tables():
    cdef int i
    for i in range(256):
        _SPACE[i] = (9 <= i <= 13) or (28 <= i <= 32)


_init_tables()

# The records, made as their generated ``__init__`` makes them (see `_cslots`).
cdef tuple _CANDIDATE_SLOTS = slot_setters(IceCandidate)
cdef tuple _ORIGIN_SLOTS = slot_setters(Origin)
cdef tuple _MEDIA_SLOTS = slot_setters(MediaDescription)
cdef tuple _SESSION_SLOTS = slot_setters(SessionDescription)


cdef object _SENDRECV = "sendrecv"
cdef object _SENDONLY = "sendonly"
cdef object _RECVONLY = "recvonly"
cdef object _INACTIVE = "inactive"
cdef object _TYP = "typ"
cdef object _SPACE_TEXT = " "


cdef inline str _text(const unsigned char *p, Py_ssize_t start, Py_ssize_t end):
    return PyUnicode_DecodeASCII(<const char *>p + start, end - start, NULL)


cdef inline bint _is_digit(unsigned char c):
    return 48 <= c <= 57


cdef inline bint _blank(unsigned char c):
    """What the reference's ``[ \\t]`` matches."""
    return c == 32 or c == 9


cdef inline long _port_of(const unsigned char *p, Py_ssize_t start, Py_ssize_t end):
    """The reference's `_port` on p[start:end]: the port, or -1 for None."""
    cdef Py_ssize_t i
    cdef long port = 0
    if end <= start or end - start > 5:
        return -1
    for i in range(start, end):
        if not _is_digit(p[i]):
            return -1
        port = port * 10 + (p[i] - 48)
    return port if port <= 65535 else -1


cdef object _port_text(str text):
    """The reference's `_port` on a string."""
    cdef bytes data
    if not text.isascii():
        return None
    data = text.encode("ascii")
    cdef long port = _port_of(<const unsigned char *>PyBytes_AS_STRING(data), 0, len(data))
    return None if port < 0 else port


cdef class _Section:
    """One media section (or the session level) while its lines are read."""

    cdef object connection
    cdef object direction
    cdef dict rtpmap
    cdef long rtcp_port  # -1: none
    cdef bint rtcp_mux
    cdef long ptime  # -1: none
    cdef bint crypto
    cdef bint fingerprint
    cdef object setup
    cdef list candidates
    cdef object media
    cdef long port
    cdef long port_count
    cdef object proto
    cdef tuple formats

    def __cinit__(self):
        self.connection = None
        self.direction = None
        self.rtpmap = {}
        self.rtcp_port = -1
        self.ptime = -1
        self.setup = None
        self.candidates = []
        self.media = ""
        self.port = 0
        self.port_count = 1
        self.proto = ""
        self.formats = ()


cdef void _rtpmap(const unsigned char *p, Py_ssize_t i, Py_ssize_t end, _Section section):
    """The reference's `_rtpmap`: its regular expression matched in C,

        [ \\t]*([0-9]{1,3})[ \\t]+([^/\\s]+)[ \\t]*/[ \\t]*([0-9]{1,9})(?:/[ \\t]*(\\S+))?

    where no backtracking ever finds another match: each group ends where the next
    one cannot start."""
    cdef Py_ssize_t start, name_start, name_end, clock_start, clock_end
    cdef long payload_type = 0, clock = 0
    while i < end and _blank(p[i]):
        i += 1
    start = i
    while i < end and _is_digit(p[i]):
        payload_type = payload_type * 10 + (p[i] - 48)
        i += 1
    if i == start or i - start > 3:
        return
    start = i
    while i < end and _blank(p[i]):
        i += 1
    if i == start:
        return
    name_start = i
    while i < end and p[i] != 47 and not _SPACE[p[i]]:
        i += 1
    name_end = i
    if name_end == name_start:
        return
    while i < end and _blank(p[i]):
        i += 1
    if i == end or p[i] != 47:
        return
    i += 1
    while i < end and _blank(p[i]):
        i += 1
    clock_start = i
    while i < end and i - clock_start < 9 and _is_digit(p[i]):
        clock = clock * 10 + (p[i] - 48)
        i += 1
    clock_end = i
    if clock_end == clock_start:
        return
    if payload_type > 127 or payload_type in section.rtpmap:
        return
    channels = None
    if i < end and p[i] == 47:
        i += 1
        while i < end and _blank(p[i]):
            i += 1
        start = i
        while i < end and not _SPACE[p[i]]:
            i += 1
        if i > start:
            channels = _text(p, start, i)
    section.rtpmap[payload_type] = (_text(p, name_start, name_end), clock, channels)


cdef void _candidate(str arg, _Section section):
    """The reference's `_candidate`."""
    fields = arg.split()
    if len(fields) >= 8 and fields[6] == _TYP:
        component = _port_text(fields[1])
        port = _port_text(fields[5])
        if component is not None and port is not None:
            section.candidates.append(
                filled(
                    IceCandidate,
                    _CANDIDATE_SLOTS,
                    (component, fields[2].lower(), fields[4], port, fields[7]),
                )
            )


cdef void _attribute(const unsigned char *p, Py_ssize_t start, Py_ssize_t end, _Section section):
    """The reference's `_attribute` on the value p[start:end] of an ``a=`` line."""
    cdef const unsigned char *found = <const unsigned char *>memchr(p + start, 58, end - start)
    cdef Py_ssize_t name_end = end if found == NULL else found - p
    cdef Py_ssize_t arg = end if found == NULL else name_end + 1
    cdef Py_ssize_t i, length
    cdef unsigned char name[12]
    cdef unsigned char c
    cdef long number
    while start < name_end and _SPACE[p[start]]:
        start += 1
    while name_end > start and _SPACE[p[name_end - 1]]:
        name_end -= 1
    length = name_end - start
    if length < 4 or length > 11:
        return  # no attribute that matters has such a name
    for i in range(length):
        c = p[start + i]
        name[i] = c + 32 if 65 <= c <= 90 else c
    if length == 6 and memcmp(name, b"rtpmap", 6) == 0:
        _rtpmap(p, arg, end, section)
    elif length == 5 and memcmp(name, b"ptime", 5) == 0:
        while arg < end and _SPACE[p[arg]]:
            arg += 1
        if end - arg > 6:
            return
        number = 0
        for i in range(arg, end):
            if not _is_digit(p[i]):
                return
            number = number * 10 + (p[i] - 48)
        if end > arg:
            section.ptime = number
    elif length == 8 and memcmp(name, b"sendrecv", 8) == 0:
        section.direction = _SENDRECV
    elif length == 8 and memcmp(name, b"sendonly", 8) == 0:
        section.direction = _SENDONLY
    elif length == 8 and memcmp(name, b"recvonly", 8) == 0:
        section.direction = _RECVONLY
    elif length == 8 and memcmp(name, b"inactive", 8) == 0:
        section.direction = _INACTIVE
    elif length == 4 and memcmp(name, b"rtcp", 4) == 0:
        while arg < end and _SPACE[p[arg]]:
            arg += 1
        i = arg
        while i < end and not _SPACE[p[i]]:
            i += 1
        section.rtcp_port = _port_of(p, arg, i)
    elif length == 8 and memcmp(name, b"rtcp-mux", 8) == 0:
        section.rtcp_mux = True
    elif length == 6 and memcmp(name, b"crypto", 6) == 0:
        section.crypto = True
    elif length == 11 and memcmp(name, b"fingerprint", 11) == 0:
        section.fingerprint = True
    elif length == 5 and memcmp(name, b"setup", 5) == 0:
        while arg < end and _SPACE[p[arg]]:
            arg += 1
        section.setup = _text(p, arg, end).lower() if end > arg else None
    elif length == 9 and memcmp(name, b"candidate", 9) == 0:
        _candidate(_text(p, arg, end), section)


cdef Py_ssize_t _word(
    const unsigned char *p, Py_ssize_t i, Py_ssize_t end, Py_ssize_t *word_end
):
    """The start of the next blank-separated word from `i` (`end` if none); its end
    goes to `word_end`."""
    while i < end and _SPACE[p[i]]:
        i += 1
    cdef Py_ssize_t j = i
    while j < end and not _SPACE[p[j]]:
        j += 1
    word_end[0] = j
    return i


cdef bint _connection(const unsigned char *p, Py_ssize_t i, Py_ssize_t end, _Section section):
    """The reference's `_connection`; False where it raises."""
    cdef Py_ssize_t word_end, address_end
    i = _word(p, i, end, &word_end)
    i = _word(p, word_end, end, &word_end)
    i = _word(p, word_end, end, &word_end)
    if i == end:
        return False
    address_end = i
    while address_end < word_end and p[address_end] != 47:
        address_end += 1
    if address_end == i:
        return False
    section.connection = _text(p, i, address_end)
    return True


cdef bint _media_line(str value, _Section section):
    """The reference's `_media_line`; False where it raises."""
    fields = value.split()
    if len(fields) < 3:
        return False
    port_text, _, count_text = fields[1].partition("/")
    port = _port_text(port_text)
    count = _port_text(count_text) if count_text else 1
    if port is None or not count:
        return False
    section.media = fields[0]
    section.port = port
    section.port_count = count
    section.proto = fields[2]
    section.formats = tuple(fields[3:])
    return True


def parse_sdp(body):
    """Parse an SDP body; raise SdpParseError (with a stable `kind`) if unreadable.

    The same function as `voiplog.sip._sdp.parse_sdp`, compiled.
    """
    if type(body) is bytes:
        description = _fast(<bytes>body)
        if description is not None:
            return description
    return _reference_parse(body)


def fast_path(bytes body):
    """The description as the fast path reads it, or None where it hands over to the
    reference (for the tests, which check it takes what it should)."""
    return _fast(body)


cdef object _fast(bytes body):
    """The description as the reference reads it, or None when the reference must."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(body)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
    cdef Py_ssize_t i, pos, start, end, line_end
    cdef const unsigned char *found
    cdef unsigned char kind
    cdef bint seen_version = False
    cdef _Section session = _Section()
    cdef _Section current = session
    cdef _Section section
    cdef list sections = []
    cdef Py_ssize_t count

    for i in range(size):
        if p[i] >= 128:
            return None  # decoded with replacement characters by the reference
    origin = None
    session_name = None
    pos = 0
    while pos <= size:
        found = <const unsigned char *>memchr(p + pos, 10, size - pos)
        line_end = size if found == NULL else found - p
        start = pos
        end = line_end
        pos = line_end + 1
        while start < end and _SPACE[p[start]]:
            start += 1
        while end > start and _SPACE[p[end - 1]]:
            end -= 1
        if start == end:
            continue
        if not seen_version:
            if end - start < 2 or p[start] != 118 or p[start + 1] != 61:
                return None  # not SDP: the reference says so
            seen_version = True
            continue
        if end - start < 2 or p[start + 1] != 61:
            continue
        kind = p[start]
        if kind == 97:  # a=
            _attribute(p, start + 2, end, current)
        elif kind == 99:  # c=
            if not _connection(p, start + 2, end, current):
                return None
        elif kind == 109:  # m=
            current = _Section()
            if not _media_line(_text(p, start + 2, end), current):
                return None
            sections.append(current)
        elif kind == 111 and current is session:  # o=
            fields = _text(p, start + 2, end).split()
            # Some gateways put spaces in the user name (see the reference).
            count = len(fields)
            if count >= 6:
                username = fields[0] if count == 6 else _SPACE_TEXT.join(fields[: count - 5])
                origin = filled(
                    Origin,
                    _ORIGIN_SLOTS,
                    (
                        username,
                        fields[count - 5],
                        fields[count - 4],
                        fields[count - 3],
                        fields[count - 2],
                        fields[count - 1],
                    ),
                )
        elif kind == 115 and current is session:  # s=
            session_name = _text(p, start + 2, end)
    if not seen_version:
        return None  # empty: the reference says so

    direction = session.direction or _SENDRECV
    session_ptime = None if session.ptime < 0 else session.ptime
    media = []
    for section in sections:
        values = (
            section.media,
            section.port,
            section.port_count,
            section.proto,
            section.formats,
            section.connection or session.connection,
            section.rtpmap,
            section.direction or direction,
            None if section.rtcp_port < 0 else section.rtcp_port,
            section.rtcp_mux,
            session_ptime if section.ptime < 0 else section.ptime,
            section.crypto,
            section.fingerprint or session.fingerprint,
            section.setup or session.setup,
            tuple(section.candidates),
        )
        media.append(filled(MediaDescription, _MEDIA_SLOTS, values))
    values = (origin, session_name, session.connection, direction, tuple(media))
    return filled(SessionDescription, _SESSION_SLOTS, values)
