"""Where a SIP message's parts end: the head (whatever the line endings), the body
(as its Content-Length values delimit it, RFC 4475's cases included), the SDP in
the body (nested multipart), and whole messages in a stream transport's bytes
(TCP, TLS, WebSocket), all by the same rules.
"""

from __future__ import annotations

import re

from voiplog.sip._errors import SipParseError
from voiplog.sip._uri import parse_params


def _head_end(data: bytes, start: int = 0) -> tuple[int, int]:
    """(end of head, start of body) from `start`; both len(data) without an empty line."""
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        # A message whose first line ends in CRLF uses CRLF throughout in
        # practice; it needs none of the searches below.
        first_newline = data.find(b"\n", start, end + 2)
        if first_newline > start and data[first_newline - 1] == 13:
            return end, end + 4
    skip = 4
    limit = end if end >= 0 else len(data)
    # Bare-LF and mixed line endings; the window overlaps `end` by up to 2 bytes so
    # that "\n\r\n\r\n" (LF header line, CRLF empty line) is found at its start.
    lflf = data.find(b"\n\n", start, limit + 3)
    if lflf >= 0 and (end < 0 or lflf < end):
        end, skip, limit = lflf, 2, lflf
    lfcrlf = data.find(b"\n\r\n", start, limit + 3)
    if lfcrlf >= 0 and (end < 0 or lfcrlf < end):
        end, skip = lfcrlf, 3
    if end < 0:
        return len(data), len(data)
    return end, end + skip


def _body(
    data: bytes, body_start: int, available: int, content_lengths: list[str], anomalies: list[str]
) -> bytes:
    """The body as the Content-Length values (as sent) delimit it."""
    if content_lengths:
        for value in content_lengths:
            if value.startswith("-") or len(value.lstrip("0")) > 9:
                # RFC 4475 ncl: a negative (or absurd) length is refused.
                raise SipParseError(f"bad Content-Length {value[:40]!r}", "sip.content_length")
        if not all(value.isascii() and value.isdigit() for value in content_lengths):
            # Text where a number belongs: endpoints seen going on with such
            # messages (answering them) treat the datagram as the body, so does
            # voiplog rather than lose the call.
            anomalies.append("sip.content_length_not_a_number")
            content_lengths = [v for v in content_lengths if v.isascii() and v.isdigit()]
    if content_lengths:
        lengths = {int(value) for value in content_lengths}
        if len(lengths) > 1:
            # RFC 4475 mcl01: no way to know which is right; a datagram is its own
            # boundary, so the whole remainder is the most faithful body.
            anomalies.append("sip.content_length_conflict")
            body = data[body_start:]
        else:
            length = lengths.pop()
            if length > available:
                raise SipParseError(
                    f"Content-Length {length} exceeds the {available} body bytes present",
                    "sip.content_length",
                )
            if length == available:
                body = data[body_start:]
            else:
                body = data[body_start : body_start + length]
                if data[body_start + length :].strip():
                    anomalies.append("sip.trailing_octets")
    else:
        body = data[body_start:]
    return body


def _find_sdp(body: bytes, content_type: str, depth: int) -> bytes | None:
    """The application/sdp part of `body`, searching nested multipart bodies."""
    media_type, _, params_text = content_type.partition(";")
    media_type = media_type.strip().lower()
    if media_type == "application/sdp":
        return body
    if not media_type.startswith("multipart/") or depth >= 3:
        return None
    boundary = None
    for key, value in parse_params(";" + params_text):
        if key == "boundary" and value:
            boundary = value.strip('"')
            break
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    for part in body.split(delimiter)[1:]:
        if part[:2] == b"--":
            break
        # The delimiter line ends with CRLF; the CRLF before the next delimiter
        # belongs to that delimiter, not to this part.
        newline = part.find(b"\n")
        if newline < 0:
            continue
        part = part[newline + 1 :]
        if part.endswith(b"\r\n"):
            part = part[:-2]
        elif part.endswith(b"\n"):
            part = part[:-1]
        head_end, body_start = _head_end(part)
        part_type = "text/plain"
        for line in part[:head_end].decode("utf-8", "replace").split("\n"):
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() in ("content-type", "c"):
                part_type = value.strip()
        found = _find_sdp(part[body_start:], part_type, depth + 1)
        if found:
            return found
    return None


_CONTENT_LENGTH_RE = re.compile(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)")


def split_stream(buffer: bytes, max_head: int = 65536) -> tuple[list[bytes], int]:
    """Frame SIP messages out of a stream transport's bytes (TCP, TLS payload).

    Returns the complete messages at the start of `buffer` and the number of bytes
    they (and any keep-alive CRLFs) took; the caller keeps ``buffer[consumed:]``
    for the next segment. RFC 3261 §18.3 makes Content-Length mandatory on
    streams, so a missing one means an empty body. Raises SipParseError
    (``sip.content_length`` or ``sip.stream_head_too_long``) when the stream cannot
    be framed any further and should be dropped.
    """
    messages: list[bytes] = []
    pos = 0
    size = len(buffer)
    while pos < size:
        while pos < size and buffer[pos] in (13, 10):
            pos += 1
        if pos >= size:
            break
        head_end, body_start = _head_end(buffer, pos)
        if head_end == size:
            if size - pos > max_head:
                raise SipParseError(
                    f"no end of headers within {max_head} bytes", "sip.stream_head_too_long"
                )
            break
        values = {v.strip() for v in _CONTENT_LENGTH_RE.findall(buffer, pos, head_end)}
        length = 0
        if values:
            if len(values) > 1:
                raise SipParseError("conflicting Content-Length on a stream", "sip.content_length")
            value = values.pop()
            if not (value.isdigit() and len(value.lstrip(b"0")) <= 9):
                raise SipParseError(f"bad Content-Length {value[:40]!r}", "sip.content_length")
            length = int(value)
        end = body_start + length
        if end > size:
            break
        messages.append(buffer[pos:end])
        pos = end
    return messages, pos
