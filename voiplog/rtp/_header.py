"""Cheap recognition of RTP and RTCP packets in a UDP payload.

Strategy: check only what RFC 3550 says every valid packet satisfies (version,
header lengths that fit, RTCP lengths that add up), in that order, with integer
reads on the bytes and no copies. These run on every UDP datagram the tracker
has not yet classified, so they must answer fast and never raise, whatever the
input.

RTP and RTCP share ports under RFC 5761 multiplexing; they are told apart by the
second byte, since RTCP packet types 200-207 read as RTP marker bit plus payload
types 72-79, which is why RFC 5761 section 4 keeps 64-95 out of RTP use. RTP is
refused for 72-76 (SR, RR, SDES, BYE, APP); a feedback or XR packet (205-207)
can pass both tests, so a caller that may see either asks `looks_like_rtcp`
first, whose exact length check is by far the stricter.

A single datagram proves little: about one random 172-byte payload in eleven
passes `looks_like_rtp` (a DNS or NetBIOS transaction id starting with binary 10
is enough). Heuristic stream discovery should want several packets of one SSRC
with consecutive sequence numbers, as RFC 3550 appendix A.1 does.
"""

from __future__ import annotations

_RTCP_FIRST_TYPE = 200  # SR
_RTCP_LAST_TYPE = 207  # XR; 205 and 206 are the RFC 4585 feedback messages


def is_rtp_of_flow(first: int, second: int) -> bool:
    """True if a datagram of a flow known to carry RTP is RTP, by its first two bytes.

    Version 2, and not RTCP multiplexed on the RTP port (RFC 5761): RTCP packet
    types 200-207 read as payload types 72-79, so those are refused, marker bit or
    not. The test for RTP of a flow that SDP announced; unlike `looks_like_rtp` it
    trusts the flow and checks nothing of the header's length.
    """
    return first & 0xC0 == 0x80 and not 72 <= second & 0x7F <= 79


# `is_rtp_of_flow` of every pair of first two bytes, indexed by ``first << 8 | second``:
# the same test for the pipeline's per-packet fast path, as one index instead of a call.
# The test is one of the first byte and one of the second, so the table is built a
# row of 256 at a time (at import: a call per entry would cost 5 ms of start-up).
_ROW = bytes(is_rtp_of_flow(0x80, second) for second in range(0x100))
RTP_OF_FLOW = b"".join(_ROW if is_rtp_of_flow(first, 0) else bytes(0x100) for first in range(0x100))


def looks_like_rtp(payload: bytes) -> bool:
    """True if ``payload`` can be an RTP packet (RFC 3550 section 5.1)."""
    size = len(payload)
    if size < 12:
        return False
    first = payload[0]
    if first >> 6 != 2:
        return False
    if 72 <= payload[1] & 0x7F <= 76:
        return False
    header = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if header + 4 > size:
            return False
        header += 4 + 4 * ((payload[header + 2] << 8) | payload[header + 3])
    if header > size:
        return False
    if first & 0x20:
        # The last octet counts the padding, itself included (section 5.1).
        padding = payload[-1]
        if padding == 0 or header + padding > size:
            return False
    return True


def looks_like_rtcp(payload: bytes) -> bool:
    """True if ``payload`` is a plain (unencrypted) RTCP compound packet.

    The first packet must be one of types 200-207; every packet must have
    version 2, and their length fields must add up to the datagram size exactly
    (the validity check of RFC 3550 appendix A.2). SRTCP fails the last test,
    because everything after the first header is ciphertext followed by the
    SRTCP index and tag.
    """
    size = len(payload)
    if size < 8:
        return False
    if payload[0] >> 6 != 2 or not _RTCP_FIRST_TYPE <= payload[1] <= _RTCP_LAST_TYPE:
        return False
    offset = 0
    while offset + 4 <= size:
        if payload[offset] >> 6 != 2:
            return False
        offset += 4 + 4 * ((payload[offset + 2] << 8) | payload[offset + 3])
    return offset == size
