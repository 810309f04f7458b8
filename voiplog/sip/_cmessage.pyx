# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled `parse_message`: the common SIP message read at C speed, anything else
handed to the pure-Python reference (`voiplog/sip/_message.py`).

Strategy: the fast path takes the messages that make up nearly all traffic: no
leading keep-alive CRLFs, a head in ASCII ending in CRLF CRLF, no folded lines,
and nothing wrong with it. It scans the head's bytes once, line by line: the
start line is split and checked in C, each header name is lower-cased into a small
buffer and looked up in the reference's own role table, values are stripped of
the same whitespace as ``str.strip()`` strips. The few checks that are not
byte-level (Request-URI, From/To name-addrs, a body that is not ``Content-Length:
0``) call the reference's own functions.

Whenever the fast path meets something it does not take (non-ASCII, bare LF,
folding, a header name longer than 64 bytes) or something the reference would
refuse, it gives up and the reference parses the message from the start: errors
are always raised by the reference, so their text and kind are its own, and an
accepted message gives a `SipMessage` equal to the reference's, field by field
(`tests/sip/test_message_equivalence.py` checks both).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.string cimport memchr, memcmp, memcpy

from voiplog._cslots cimport filled, slot_setters
from voiplog.sip._errors import SipParseError
from voiplog.sip._framing import _body
from voiplog.sip._message import _LIST, _PLAIN, _ROLES, _SINGLE, _VIA, SipMessage
from voiplog.sip._message import parse_message as _reference_parse
from voiplog.sip._uri import NameAddr, check_request_uri, parse_name_addr, split_quoted


cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)
    int PyUnicode_KIND(object text)
    int PyUnicode_1BYTE_KIND
    const unsigned char *PyUnicode_1BYTE_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    bint PyUnicode_IS_ASCII(object text)


# Messages and From/To made as their dataclasses' `__init__` makes them.
cdef tuple _MESSAGE_SLOTS = slot_setters(SipMessage)
cdef tuple _NAME_ADDR_SLOTS = slot_setters(NameAddr)

cdef int _ROLE_PLAIN = _PLAIN
cdef int _ROLE_LIST = _LIST
cdef int _ROLE_SINGLE = _SINGLE
cdef int _ROLE_VIA = _VIA
cdef dict _roles = _ROLES
cdef unsigned long long _MAX_CSEQ = 0xFFFFFFFF
cdef Py_ssize_t _MAX_NAME = 64
cdef object _TAG = "tag"


# Header names met, lower-cased, with their role in `_ROLES` (or as a plain header
# when unknown): most lines then need neither a new string nor a dict look-up.
# Indexed by a hash of the name; a collision replaces the entry.
cdef struct _NameEntry:
    Py_ssize_t length
    unsigned char name[64]
    PyObject *role

cdef _NameEntry _names[256]

# ASCII characters that str.strip() and str.split() take for whitespace.
cdef bint _SPACE[256]
# RFC 3261 token characters (the reference's _TOKEN_RE).
cdef bint _TOKEN[256]


cdef void _init_tables():
    cdef int i
    for i in range(256):
        _SPACE[i] = (9 <= i <= 13) or (28 <= i <= 32)
        _TOKEN[i] = (
            (48 <= i <= 57) or (65 <= i <= 90) or (97 <= i <= 122) or chr(i) in "-.!%*_+`'~"
        )


_init_tables()


cdef inline unsigned char _upper(unsigned char c):
    return c - 32 if 97 <= c <= 122 else c


cdef inline unsigned char _lower(unsigned char c):
    return c + 32 if 65 <= c <= 90 else c


cdef inline Py_ssize_t _past_space(const unsigned char *p, Py_ssize_t i, Py_ssize_t end):
    """The first index from `i` that is not blank (or `end`)."""
    while i < end and _SPACE[p[i]]:
        i += 1
    return i


cdef inline Py_ssize_t _past_word(const unsigned char *p, Py_ssize_t i, Py_ssize_t end):
    """The first blank from `i` (or `end`)."""
    while i < end and not _SPACE[p[i]]:
        i += 1
    return i


cdef inline str _text(const unsigned char *p, Py_ssize_t start, Py_ssize_t end):
    return PyUnicode_DecodeASCII(<const char *>p + start, end - start, NULL)


cdef inline bint _is_sip20(const unsigned char *p, Py_ssize_t start, Py_ssize_t end):
    """Whether p[start:end], upper-cased, reads SIP/2.0."""
    return (
        end - start == 7
        and _upper(p[start]) == ord("S")
        and _upper(p[start + 1]) == ord("I")
        and _upper(p[start + 2]) == ord("P")
        and p[start + 3] == ord("/")
        and p[start + 4] == ord("2")
        and p[start + 5] == ord(".")
        and p[start + 6] == ord("0")
    )


cdef inline const unsigned char *_ascii(str text):
    """The characters of `text` as bytes, or NULL unless it is one byte a character."""
    if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
        return NULL
    return PyUnicode_1BYTE_DATA(text)


cdef object _role(const unsigned char *name, Py_ssize_t length, unsigned int slot):
    """(canonical name, role) of the lower-cased header name, or None if it is not a
    token (a header line the reference refuses)."""
    cdef _NameEntry *entry = &_names[slot]
    cdef Py_ssize_t i
    if entry.role != NULL and entry.length == length and memcmp(entry.name, name, length) == 0:
        return <object>entry.role
    key = PyUnicode_DecodeASCII(<const char *>name, length, NULL)
    cdef PyObject *found = PyDict_GetItem(_roles, key)
    if found != NULL:
        role = <object>found
    else:
        if length == 0:
            return None
        for i in range(length):
            if not _TOKEN[name[i]]:
                return None
        role = (key, _ROLE_PLAIN)
    Py_INCREF(role)
    if entry.role != NULL:
        Py_DECREF(<object>entry.role)
    entry.role = <PyObject *>role
    entry.length = length
    memcpy(entry.name, name, length)
    return role


cdef object _request_uri_oddity(str uri):
    """`check_request_uri` for a plain ``sip:user@host[:port][;params]``, else the
    reference's own answer (which raises SipParseError on a bad one)."""
    cdef const unsigned char *p = _ascii(uri)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(uri)
    cdef Py_ssize_t i, start, end, colon = -1, port_length
    cdef long port = 0
    if p == NULL or size < 4 or memcmp(p, b"sip:", 4) != 0:
        return check_request_uri(uri)
    start = 4
    for i in range(4, size):
        if p[i] == ord("@"):
            start = i + 1
            break
    end = size
    for i in range(start, size):
        if p[i] == ord("?"):
            return check_request_uri(uri)
        if p[i] == ord(";") and end == size:
            end = i
    for i in range(start, end):
        if p[i] == ord(":"):
            if colon >= 0:
                return check_request_uri(uri)  # IPv6 without brackets
            colon = i
        elif p[i] == ord("["):
            return check_request_uri(uri)
    if colon < 0:
        if end == start:
            return check_request_uri(uri)
        return None
    port_length = end - colon - 1
    if colon == start or port_length == 0 or port_length > 5:
        return check_request_uri(uri)
    for i in range(colon + 1, end):
        if not (48 <= p[i] <= 57):
            return check_request_uri(uri)
        port = port * 10 + (p[i] - 48)
    if port > 65535:
        return check_request_uri(uri)
    return None


cdef object _name_addr(str value):
    """`parse_name_addr` for ``["display"|display] <uri>[;tag=x]``, the usual From and
    To; anything else goes to the reference (which raises on a bad one)."""
    cdef const unsigned char *p = _ascii(value)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(value)
    cdef Py_ssize_t i, lt, gt, end, tag_start, tag_end
    if p == NULL or size == 0 or _SPACE[p[0]] or _SPACE[p[size - 1]]:
        return parse_name_addr(value)
    if p[0] == ord('"'):
        end = -1
        for i in range(1, size):
            if p[i] == ord("\\"):
                return parse_name_addr(value)  # escapes inside the display name
            if p[i] == ord('"'):
                end = i
                break
        if end < 0:
            return parse_name_addr(value)
        display = value[1:end] or None
        lt = end + 1
        while lt < size and _SPACE[p[lt]]:
            lt += 1
        if lt == size or p[lt] != ord("<"):
            return parse_name_addr(value)
    else:
        lt = -1
        for i in range(size):
            if p[i] == ord("<"):
                lt = i
                break
        if lt < 0:
            return parse_name_addr(value)  # an addr-spec
        end = lt
        while end > 0 and _SPACE[p[end - 1]]:
            end -= 1
        display = value[:end] if end > 0 else None
    gt = -1
    for i in range(lt + 1, size):
        if p[i] == ord(">"):
            gt = i
            break
        if p[i] == 32 or p[i] == 9:
            return parse_name_addr(value)  # a blank inside the URI
    if gt < 0 or gt == lt + 1:
        return parse_name_addr(value)
    uri = value[lt + 1 : gt]
    i = gt + 1
    while i < size and _SPACE[p[i]]:
        i += 1
    if i == size:
        return filled(NameAddr, _NAME_ADDR_SLOTS, (display, uri, (), None))
    # A lone tag parameter, as `_params_and_tag` takes it without parsing.
    if size - i < 5 or memcmp(p + i, b";tag=", 5) != 0:
        return parse_name_addr(value)
    tag_start = i + 5
    for i in range(tag_start, size):
        if p[i] == ord(";") or p[i] == ord('"'):
            return parse_name_addr(value)
    while tag_start < size and _SPACE[p[tag_start]]:
        tag_start += 1
    tag_end = size  # the value is stripped already
    tag = value[tag_start:tag_end]
    return filled(NameAddr, _NAME_ADDR_SLOTS, (display, uri, ((_TAG, tag),), tag))


cdef long long _number(str value, Py_ssize_t start, Py_ssize_t end, Py_ssize_t most):
    """The number that ``value[start:end]`` writes, or -1 unless that is ASCII digits
    only, at least one, and at most `most` (at most 18) once leading zeros are gone:
    ``s.isascii() and s.isdigit() and len(s.lstrip("0")) <= most``, then ``int(s)``."""
    cdef const unsigned char *p
    cdef long long number = 0
    cdef Py_ssize_t i, significant = 0
    if not PyUnicode_IS_ASCII(value) or start >= end:
        return -1
    p = PyUnicode_1BYTE_DATA(value)
    for i in range(start, end):
        if not 48 <= p[i] <= 57:
            return -1
        if number or p[i] != 48:
            significant += 1
            if significant > most:
                return -1
        number = number * 10 + (p[i] - 48)
    return number


cdef inline long long _plain_length(str value):
    """A Content-Length `_body` takes as it is (ASCII digits, at most nine once
    leading zeros are gone): its number, else -1."""
    return _number(value, 0, PyUnicode_GET_LENGTH(value), 9)


cdef bint _via_ok(str value):
    """The reference's `_check_via`, as a test."""
    cdef const unsigned char *p = _ascii(value)
    cdef Py_ssize_t size = PyUnicode_GET_LENGTH(value)
    cdef Py_ssize_t i = 0
    cdef bint seen = False
    if p == NULL:
        return _via_ok_text(value)
    # protocol-name "/" protocol-version "/", each with something in it
    while i < size and p[i] != ord("/"):
        seen = seen or not _SPACE[p[i]]
        i += 1
    if i == size or not seen:
        return False
    i += 1
    seen = False
    while i < size and p[i] != ord("/"):
        seen = seen or not _SPACE[p[i]]
        i += 1
    if i == size or not seen:
        return False
    i += 1
    # transport, blanks, then a sent-by that does not start with ";" or ","
    while i < size and _SPACE[p[i]]:
        i += 1
    if i == size:
        return False
    while i < size and not _SPACE[p[i]]:
        i += 1
    while i < size and _SPACE[p[i]]:
        i += 1
    return i < size and p[i] != ord(";") and p[i] != ord(",")


cdef list _split_items(str value):
    """The reference's `_split_list`."""
    if '"' in value or "<" in value:
        pieces = split_quoted(value, ",", True)
    else:
        pieces = value.split(",")
    cdef list items = []
    for piece in pieces:
        piece = piece.strip()
        if piece:
            items.append(piece)
    return items


cdef bint _via_ok_text(str value):
    """The reference's `_check_via`, as a test, on any string."""
    parts = value.split("/", 2)
    if len(parts) == 3 and parts[0].strip() and parts[1].strip():
        transport_and_host = parts[2].split(None, 1)
        if len(transport_and_host) == 2 and transport_and_host[1][:1] not in (";", ","):
            return True
    return False


def parse_message(data):
    """Parse one SIP message; raise SipParseError (with a stable `kind`) if unreadable.

    The same function as `voiplog.sip._message.parse_message`, compiled.
    """
    if type(data) is bytes:
        message = _fast(<bytes>data)
        if message is not None:
            return message
    return _reference_parse(data)


def fast_path(bytes data):
    """The message as the fast path reads it, or None where it hands over to the
    reference (for the tests, which check it takes what it should)."""
    return _fast(data)


cdef object _fast(bytes data):
    """The message as the reference reads it, or None when the reference must read it."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t i, head_end, body_start, line_end, start_end
    cdef Py_ssize_t t0, t0e, t1, t1e, t2, t2e, t3
    cdef Py_ssize_t pos, colon, name_end, value_start, value_end, length
    cdef const unsigned char *p_cseq
    cdef Py_ssize_t cseq_size, number_start, number_end, method_start, method_end
    cdef long long cseq_num
    cdef const unsigned char *found
    cdef unsigned char c
    cdef unsigned char name[64]
    cdef unsigned int slot
    cdef int role_kind
    cdef bint tab
    cdef int code

    if size == 0 or p[0] == 13 or p[0] == 10:
        return None  # keep-alives in front: the reference strips them

    # Head: up to the first CRLF CRLF, when the first line ends in CRLF.
    head_end = -1
    i = 0
    while i + 3 < size:
        found = <const unsigned char *>memchr(p + i, 13, size - 3 - i)
        if found == NULL:
            break
        i = found - p
        if p[i + 1] == 10 and p[i + 2] == 13 and p[i + 3] == 10:
            head_end = i
            break
        i += 1
    if head_end < 0:
        return None
    found = <const unsigned char *>memchr(p, 10, head_end + 2)
    start_end = found - p  # found cannot be NULL: p[head_end + 1] is LF
    if start_end == 0 or p[start_end - 1] != 13:
        return None
    body_start = head_end + 4
    for i in range(head_end):
        if p[i] >= 128:
            return None  # decoded with replacement characters by the reference

    # Start line, without its trailing CRs.
    line_end = start_end
    while start_end > 0 and p[start_end - 1] == 13:
        start_end -= 1
    method = request_uri = reason = None
    status = None
    anomalies = []
    if (
        start_end >= 4
        and _upper(p[0]) == ord("S")
        and _upper(p[1]) == ord("I")
        and _upper(p[2]) == ord("P")
        and p[3] == ord("/")
    ):
        t0e = _past_word(p, 0, start_end)
        if not _is_sip20(p, 0, t0e):
            return None
        t1 = _past_space(p, t0e, start_end)
        t1e = _past_word(p, t1, start_end)
        if t1e - t1 != 3 or p[t1] == ord("0"):
            return None
        code = 0
        for i in range(t1, t1e):
            if not (48 <= p[i] <= 57):
                return None
            code = code * 10 + (p[i] - 48)
        if code > 699:
            return None
        status = code
        t2 = _past_space(p, t1e, start_end)
        t2e = start_end
        while t2e > t2 and _SPACE[p[t2e - 1]]:
            t2e -= 1
        reason = _text(p, t2, t2e)
    else:
        # Exactly three blank-separated words.
        t0 = _past_space(p, 0, start_end)
        t0e = _past_word(p, t0, start_end)
        t1 = _past_space(p, t0e, start_end)
        t1e = _past_word(p, t1, start_end)
        t2 = _past_space(p, t1e, start_end)
        t2e = _past_word(p, t2, start_end)
        t3 = _past_space(p, t2e, start_end)
        if t0e == t0 or t1e == t1 or t2e == t2 or t3 != start_end:
            return None
        if not _is_sip20(p, t2, t2e):
            return None
        for i in range(t0, t0e):
            if not _TOKEN[p[i]]:
                return None
        method = _text(p, t0, t0e)
        request_uri = _text(p, t1, t1e)
        try:
            oddity = _request_uri_oddity(request_uri)
        except SipParseError:
            return None
        if oddity is not None:
            anomalies.append(oddity)
        tab = False
        for i in range(start_end):
            if p[i] == 9:
                tab = True
                break
        if start_end != (t0e - t0) + (t1e - t1) + (t2e - t2) + 2 or tab:
            anomalies.append("sip.start_line_whitespace")

    # Headers, one line at a time.
    headers = []
    first = {}
    vias = []
    content_lengths = []
    pos = line_end + 1
    while pos <= head_end:
        found = <const unsigned char *>memchr(p + pos, 10, head_end - pos)
        line_end = head_end if found == NULL else found - p
        if line_end > pos and (p[pos] == 32 or p[pos] == 9):
            return None  # a folded line: the reference unfolds
        found = <const unsigned char *>memchr(p + pos, 58, line_end - pos)
        if found == NULL:
            for i in range(pos, line_end):
                if not _SPACE[p[i]]:
                    return None  # not a header line
            pos = line_end + 1
            continue
        colon = found - p
        name_end = colon
        while name_end > pos and _SPACE[p[name_end - 1]]:
            name_end -= 1
        length = name_end - pos
        if length > _MAX_NAME:
            return None
        slot = <unsigned int>length
        for i in range(length):
            c = _lower(p[pos + i])
            name[i] = c
            slot = (slot * 31 + c) & 255
        value_start = colon + 1
        value_end = line_end
        while value_start < value_end and _SPACE[p[value_start]]:
            value_start += 1
        while value_end > value_start and _SPACE[p[value_end - 1]]:
            value_end -= 1
        value = _text(p, value_start, value_end)
        pos = line_end + 1

        role = _role(name, length, slot)
        if role is None:
            return None
        header = role[0]
        role_kind = role[1]
        if role_kind == _ROLE_PLAIN:
            headers.append((header, value))
        elif role_kind == _ROLE_LIST:
            if "," in value:
                for item in _split_items(value):
                    headers.append((header, item))
            else:
                headers.append((header, value))
        elif role_kind == _ROLE_SINGLE:
            if header in first:
                anomalies.append("sip.duplicate_" + header.replace("-", "_"))
            else:
                first[header] = value
            headers.append((header, value))
        elif role_kind == _ROLE_VIA:
            items = _split_items(value) if "," in value else [value]
            for item in items:
                headers.append((header, item))
            if items:
                vias += items
                if "via" not in first:
                    first["via"] = items[0]
        else:
            content_lengths.append(value)
            headers.append((header, value))

    if len(first) != 5:
        return None  # a required header is missing
    for via in vias:
        if not _via_ok(via):
            return None

    # ``first["cseq"].split()``: two words, a number of at most ten digits (leading
    # zeros aside) and the method.
    cseq = first["cseq"]
    if not PyUnicode_IS_ASCII(cseq):
        return None  # the reference's, whose split knows Unicode's blanks
    p_cseq = PyUnicode_1BYTE_DATA(cseq)
    cseq_size = PyUnicode_GET_LENGTH(cseq)
    number_start = _past_space(p_cseq, 0, cseq_size)
    number_end = _past_word(p_cseq, number_start, cseq_size)
    method_start = _past_space(p_cseq, number_end, cseq_size)
    method_end = _past_word(p_cseq, method_start, cseq_size)
    if _past_space(p_cseq, method_end, cseq_size) != cseq_size or method_start == method_end:
        return None  # not two words
    cseq_num = _number(cseq, number_start, number_end, 10)
    if cseq_num < 0:
        return None
    cseq_method = cseq[method_start:method_end]
    if cseq_num > _MAX_CSEQ:
        return None
    if method is not None and cseq_method != method:
        return None
    try:
        from_ = _name_addr(first["from"])
        to = _name_addr(first["to"])
    except SipParseError:
        return None

    # Body.
    length = _plain_length(content_lengths[0]) if len(content_lengths) == 1 else -1
    if length >= 0:
        # One Content-Length, a number: `_body`'s own steps for it.
        if length > size - body_start:
            return None  # the reference refuses it, with its message
        if length == size - body_start:
            body = data[body_start:]
        else:
            body = data[body_start : body_start + length]
            for i in range(body_start + length, size):
                c = p[i]
                if not (c == 32 or 9 <= c <= 13):  # what bytes.strip() strips
                    anomalies.append("sip.trailing_octets")
                    break
    else:
        try:
            body = _body(data, body_start, size - body_start, content_lengths, anomalies)
        except SipParseError:
            return None

    return filled(SipMessage, _MESSAGE_SLOTS, (
        method,
        request_uri,
        status,
        reason,
        tuple(headers),
        body,
        first["call-id"],
        cseq_num,
        cseq_method,
        from_,
        to,
        tuple(anomalies),
    ))
