"""Finding RTP that no SDP announced, and telling SRTCP from RTCP.

Strategy: one datagram proves nothing (about one random payload in eleven
passes `looks_like_rtp`), so a stream is believed only after several packets of
one SSRC on one flow behave as voice or video RTP does:

* version 2, a payload type that RFC 3551 assigns to audio or video (0-34) or
  the dynamic range (96-127): never 35-95, where RTCP and nothing else lives;
* sequence numbers that advance by small steps (a few lost or late packets are
  tolerated, a jump starts the count again);
* a media position that advances with arrival time at a media clock rate
  between 4 and 100 kHz (8 kHz narrowband to 90 kHz video). The position is
  the RTP timestamp, plus the duration field for an RFC 4733 event packet
  (4-byte payload, timestamp held for the whole event), so a stream of DTMF
  alone still moves;
* `min_packets` such packets in sequence.

An RTCP sender report from the same SSRC confirms a stream after two packets.
Until then only the first eight header bytes and the arrival time of each
packet are kept, so that once the stream is believed its statistics can be
computed from its very first packet, as Wireshark's heuristic does.
"""

from __future__ import annotations

from voiplog.rtp import looks_like_rtcp

MAX_SEQ_STEP = 100  # a larger jump forward restarts the count
MAX_REORDER = 32  # a packet this far behind is late, not a restart
MAX_TICKS_PER_STEP = 20_000  # media clock ticks per sequence step (0.22 s at 90 kHz)
MIN_CLOCK_HZ = 4_000
MAX_CLOCK_HZ = 100_000
MAX_PENDING = 256  # headers kept while a candidate is unproven
_TICKS_WRAP = 1 << 32


def plausible_payload_type(pt: int) -> bool:
    """RFC 3551 audio/video types and the dynamic range; not the RTCP-reserved 35-95."""
    return pt <= 34 or pt >= 96


def media_position(payload: bytes) -> int:
    """The media clock position of an RTP packet (see the module docstring).

    ``payload`` has passed `looks_like_rtp`, so its header lengths fit.
    """
    first = payload[0]
    ts = int.from_bytes(payload[4:8], "big")
    header = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        header += 4 + 4 * (payload[header + 2] << 8 | payload[header + 3])
    body = len(payload) - header - (payload[-1] if first & 0x20 else 0)
    if body == 4:
        ts = (ts + (payload[header + 2] << 8 | payload[header + 3])) % _TICKS_WRAP
    return ts


class RtpCandidate:
    """One SSRC on one flow direction that may be an RTP stream."""

    __slots__ = ("anchor_pos", "anchor_us", "in_sequence", "last_pos", "last_seq", "pending")

    def __init__(self, ts_us: int, payload: bytes) -> None:
        self._restart(ts_us, payload)

    def _restart(self, ts_us: int, payload: bytes) -> None:
        self.anchor_us = ts_us
        self.anchor_pos = self.last_pos = media_position(payload)
        self.last_seq = payload[2] << 8 | payload[3]
        self.in_sequence = 0
        self.pending: list[tuple[int, bytes]] = [(ts_us, payload[:8])]

    def offer(self, ts_us: int, payload: bytes) -> None:
        """Account for one more packet of this SSRC (which passed `looks_like_rtp`)."""
        seq = payload[2] << 8 | payload[3]
        step = (seq - self.last_seq) & 0xFFFF
        if 1 <= step <= MAX_SEQ_STEP:
            pos = media_position(payload)
            ticks = (pos - self.last_pos) % _TICKS_WRAP
            if ticks > step * MAX_TICKS_PER_STEP:
                self._restart(ts_us, payload)
                return
            self.last_seq = seq
            self.last_pos = pos
            self.in_sequence += 1
        elif step != 0 and step < 0x10000 - MAX_REORDER:
            self._restart(ts_us, payload)
            return
        # A duplicate (an event's end packet is sent three times) or a late
        # packet: kept for the statistics, proves nothing.
        if len(self.pending) >= MAX_PENDING:
            self._restart(ts_us, payload)
            return
        self.pending.append((ts_us, payload[:8]))

    def proven(self, min_packets: int, confirmed_by_rtcp: bool = False) -> bool:
        """Whether the packets so far make a believable RTP stream."""
        needed = 1 if confirmed_by_rtcp else min_packets - 1
        if self.in_sequence < needed:
            return False
        elapsed_us = self.pending[-1][0] - self.anchor_us
        if elapsed_us <= 0:
            return False
        ticks = (self.last_pos - self.anchor_pos) % _TICKS_WRAP
        rate = ticks * 1_000_000 / elapsed_us
        return MIN_CLOCK_HZ <= rate <= MAX_CLOCK_HZ or (confirmed_by_rtcp and rate < MAX_CLOCK_HZ)


def rtcp_sender_ssrcs(payload: bytes) -> tuple[int, ...]:
    """SSRCs of the sender reports in a plain RTCP compound packet (validated first)."""
    if not looks_like_rtcp(payload):
        return ()
    found = []
    offset = 0
    size = len(payload)
    while offset + 8 <= size:
        if payload[offset + 1] == 200:
            found.append(int.from_bytes(payload[offset + 4 : offset + 8], "big"))
        offset += 4 + 4 * (payload[offset + 2] << 8 | payload[offset + 3])
    return tuple(found)


# Authentication tags SRTCP is deployed with (RFC 3711 HMAC-SHA1-80 and -32),
# optionally preceded by a 4-byte MKI.
_SRTCP_TRAILERS = (4 + 10, 4 + 4, 4 + 4 + 10, 4 + 4 + 4)


def looks_like_srtcp(payload: bytes) -> bool:
    """True if ``payload`` reads as SRTCP: a clear first RTCP header, then ciphertext.

    RFC 3711 leaves the first 8 bytes (header and sender SSRC) in clear and
    appends the E flag with a 31-bit SRTCP index, an optional MKI and the
    tag. So: not valid plain RTCP, a sender or receiver report first whose own
    length leaves room for that trailer, and at the index position (for one of
    the usual trailers) the E bit set with a small index, since the index
    counts RTCP packets from zero.
    """
    size = len(payload)
    if size < 8 + 14 or payload[0] >> 6 != 2 or payload[1] not in (200, 201):
        return False
    first_len = 4 + 4 * (payload[2] << 8 | payload[3])
    if first_len + 8 > size or looks_like_rtcp(payload):
        return False
    for trailer in _SRTCP_TRAILERS:
        at = size - trailer
        if at < first_len:
            continue
        word = int.from_bytes(payload[at : at + 4], "big")
        if word & 0x80000000 and word & 0x7FFFFFFF < 0x100000:
            return True
    return False
