"""Per-stream RTP statistics: packets, loss and interarrival jitter.

One `RtpStream` is one SSRC sent from one source address:port to one
destination address:port, the way Wireshark's "RTP Streams" list splits traffic.
`RtpStream.add` runs once per RTP packet, so it reads the header's first two
32-bit words with one precompiled `struct` call, keeps no payload, and touches
only slot attributes. Most packets of a call are alike: same payload type, no
marker, timestamp in sequence, sequence number on the same side of the first
one. For them a chained comparison of the first header word against a range
prepared by the packet before selects a straight path that only updates the
jitter; any other packet takes the general path, which applies every rule below
and prepares the range again. The fast path's arithmetic is the general path's,
rearranged only in ways that IEEE 754 makes exact, so both give the same bits.

The numbers reproduce ``tshark -q -z rtp,streams`` of Wireshark 4.0, whose
``rtppacket_analyse()`` (ui/tap-rtp-analysis.c) feeds ``rtpstream_info_calculate()``
(ui/tap-rtp-common.c). What is copied from there, on purpose, quirks included:

* Loss is ``expected - received`` with ``expected = last seq + 65536 * cycles -
  first seq + 1``. "Last seq" is the sequence number of the packet added last,
  not the highest one, so a late packet arriving last lowers ``expected``, and
  duplicates make the loss negative. A wrap is counted when a packet whose
  timestamp is not before the first packet's has a sequence number below the
  first packet's (or is 0 right after 65535, for streams that began at 0); it
  is armed again once a sequence number above the first packet's is seen.
* Jitter is RFC 3550 section 6.4.1, ``J += (|D| - J) / 16``, in milliseconds,
  where ``D`` compares the arrival time difference with the RTP timestamp
  difference divided by the clock rate, both against the previous packet whose
  timestamp was "in sequence" (not before the first packet's timestamp, modulo
  2**31). Packets out of that sequence change neither jitter nor the reference.
* The first packet only sets the references. Jitter is still updated on marker
  packets, comfort noise (PT 13 and 19) and the packet after comfort noise, but
  those do not count towards the maximum and the mean.
* The clock rate follows the payload type of each packet, as `codec_for` gives
  it (Wireshark ignores the SDP for static types, which only matters when an
  SDP contradicts RFC 3551). With no known rate, and for RFC 4733
  telephone-event packets (whose timestamp stays at the start of the event),
  jitter is not updated; such a packet still moves the arrival-time reference
  but not the timestamp reference, so the packet after a DTMF burst shows a
  large ``D``. A stream with no known clock rate reports 0.0 jitter.
* "Mean jitter" is Wireshark's running value ``mean = (mean * (n - 1) + J) / n``
  where ``n`` counts every earlier packet of the stream, counted or not.

One departure: Wireshark converts timestamps to milliseconds by dividing by the
integer ``clock_rate / 1000``, so at 11025, 22050 and 44100 Hz every timestamp
difference comes out up to 0.25 % too long, and a perfectly regular 44.1 kHz
stream with 20 ms packets shows 0.045 ms of jitter. This module divides by the
exact rate; only streams at those rates can differ from tshark.
"""

from __future__ import annotations

import struct

from voiplog.rtp._codecs import COMFORT_NOISE_TYPES, codec_for, is_telephone_event

# The first header word (version and flags, marker and payload type, sequence
# number) and the timestamp.
_WORDS = struct.Struct(">II")
_unpack_words = _WORDS.unpack_from

_SEQ_MOD = 0x10000


def _us_per_tick(codec: str | None, clock_rate: int | None) -> float:
    """Microseconds per timestamp unit, or 0.0 when jitter cannot be computed."""
    if not clock_rate or clock_rate <= 0 or is_telephone_event(codec):
        return 0.0
    return 1_000_000 / clock_rate


class RtpStream:
    """Statistics of one RTP stream (see the module docstring for the rules).

    Results: `packets`, `lost`, `jitter_max_ms`, `jitter_mean_ms`, `first_us`,
    `last_us`, `payload_type` (the first one seen) and `payload_types` (every
    type seen, ascending, as Wireshark lists them), and `summary()`.
    """

    __slots__ = (
        "_count",
        "_cycles",
        "_fast_hi",
        "_fast_lo",
        "_first_ts",
        "_jitter",
        "_jitter_max",
        "_jitter_mean",
        "_nominal",
        "_pt",
        "_pt_counts",
        "_rtpmap",
        "_start_seq",
        "_stop_word",
        "_time_us",
        "_ts_base",
        "_under",
        "_us_per_tick",
        "clock_rate",
        "codec",
        "dst_ip",
        "dst_port",
        "first_us",
        "last_us",
        "payload_type",
        "payload_types",
        "src_ip",
        "src_port",
        "ssrc",
    )

    def __init__(
        self,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        ssrc: int,
        payload_type: int,
        codec: str | None,
        clock_rate: int | None,
        rtpmap: dict[int, tuple[str, int, str | None]] | None = None,
    ) -> None:
        """Start an empty stream.

        ``codec`` and ``clock_rate`` describe ``payload_type``; ``rtpmap`` (the
        SDP's, optional) describes the other payload types the stream may
        switch to, such as telephone-event.
        """
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.payload_types = [payload_type]
        self.codec = codec
        self.clock_rate = clock_rate
        self._rtpmap = rtpmap
        # The packet count as a float: the mean jitter needs it as one, and
        # converting an int there would cost more than keeping a float.
        self._count = 0.0
        self.first_us = 0
        self.last_us = 0
        self._pt = payload_type
        self._pt_counts = payload_type not in COMFORT_NOISE_TYPES
        self._us_per_tick = _us_per_tick(codec, clock_rate)
        self._first_ts = 0
        self._start_seq = 0
        self._stop_word = 0  # first header word of the last packet
        self._cycles = 0
        self._under = False
        self._time_us = 0
        self._nominal = 0.0
        self._jitter = 0.0
        self._jitter_max = 0.0
        self._jitter_mean = 0.0
        # No header word w satisfies _fast_lo < w < _fast_hi until `_arm`.
        self._fast_lo = 0
        self._fast_hi = 0
        self._ts_base = 0

    def add(self, ts_us: int, payload: bytes, offset: int = 0) -> None:
        """Account for one RTP packet of this stream that arrived at ``ts_us``.

        The RTP header starts at ``offset`` of ``payload`` (the UDP payload, or
        the whole frame on the pipeline's fast path).
        """
        word, ts = _unpack_words(payload, offset)
        # The common packet, as `_arm` describes it.
        if self._fast_lo < word < self._fast_hi:
            elapsed = ts - self._ts_base
            if 0 <= elapsed < 0x80000000:
                # `_add`'s arithmetic with the time reference in ``last_us``,
                # rearranged so that every operation starts from a float (the
                # interpreter then specializes it, or at least skips a failed
                # int attempt) without changing a bit. IEEE 754 rounding to
                # nearest is symmetric, so u * e == e * u and, with a the
                # arrival difference, n the nominal one and p the previous
                # nominal, p - (n - a) == (a - n) + p exactly (but for the sign
                # of a zero, which abs() drops). Multiplying by 0.0625, 2**-4,
                # is dividing by 16 exactly, and 15, 1 and the packet count
                # (a float here, an int there) are the same numbers as floats.
                nominal = self._us_per_tick * elapsed
                jitter = (
                    15.0 * self._jitter + abs(self._nominal - (nominal - (ts_us - self.last_us)))
                ) * 0.0625
                self._jitter = jitter
                self._nominal = nominal
                if jitter > self._jitter_max:
                    self._jitter_max = jitter
                n = self._count
                self._jitter_mean = (self._jitter_mean * (n - 1.0) + jitter) / n
                self._count = n + 1.0
                self.last_us = ts_us
                self._stop_word = word
                return
        self._add(ts_us, word, ts)

    def _add(self, ts_us: int, word: int, ts: int) -> None:
        """`add` for any packet, every rule applied."""
        if self._fast_hi:
            # Packets taken by the fast path left the reference in ``last_us``.
            self._time_us = self.last_us
        n = int(self._count)
        if not n:
            self._start(ts_us, word, ts)
            self._arm(word, ts)
            return
        second = word >> 16 & 0xFF
        seq = word & 0xFFFF
        first_ts = self._first_ts
        # "In time sequence": at most 2**31 ticks after the first timestamp.
        # Wireshark's test takes exactly 2**31 as in time only across a wrap.
        elapsed = (ts - first_ts) & 0xFFFFFFFF
        in_time = elapsed < 0x80000000 or (elapsed == 0x80000000 and ts < first_ts)

        # Wireshark's wrap detection: a cycle starts when the sequence number
        # drops below the first one, and may start again only after it has
        # risen above the first one.
        start = self._start_seq
        if seq > start:
            if self._under and in_time:
                self._under = False
        elif seq < start:
            if in_time and not self._under:
                self._cycles += 1
                self._under = True
        elif seq == 0 and self._stop_word & 0xFFFF == 0xFFFF and in_time and not self._under:
            self._cycles += 1
            self._under = True

        pt = second & 0x7F
        counts = self._pt_counts if pt == self._pt else self._switch(pt)

        if in_time:
            # Wireshark computes in ms; microseconds keep the arrival
            # difference an exact integer and give the same values.
            us_per_tick = self._us_per_tick
            if us_per_tick:
                nominal = elapsed * us_per_tick
                diff = ts_us - self._time_us - nominal + self._nominal
                if diff < 0:
                    diff = -diff
                jitter = (15 * self._jitter + diff) / 16
                self._jitter = jitter
                self._nominal = nominal
                if counts and not second & 0x80:
                    if jitter > self._jitter_max:
                        self._jitter_max = jitter
                    self._jitter_mean = (self._jitter_mean * (n - 1) + jitter) / n
            self._time_us = ts_us
        self._stop_word = word
        self._count = n + 1.0
        self.last_us = ts_us
        self._arm(word, ts)

    def _arm(self, word: int, ts: int) -> None:
        """Let `add` take the next packet by its fast path unless something rare happens.

        The fast path takes a packet when:

        * its first header word has the first byte of ``word``, the current
          payload type and no marker, so the type stays and the packet counts
          for the jitter;
        * its sequence number is on the side of the first one where the wrap
          detection stands (above it before a wrap, below it after one), so
          the wrap count stays;
        * its timestamp is less than 2**31 ticks after ``_ts_base``, the first
          timestamp (less 2**32 once timestamps have wrapped), so it is in
          time sequence and the difference is the general path's.

        The path is open only while the clock rate is known, the payload type
        is not comfort noise and the last packet was in time sequence, which
        makes ``last_us`` the arrival-time reference.
        """
        if self._pt_counts and self._us_per_tick and self._time_us == self.last_us:
            base = word & 0xFF000000 | self._pt << 16
            if self._under:
                self._fast_lo = base - 1
                self._fast_hi = base | self._start_seq
            else:
                self._fast_lo = base | self._start_seq
                self._fast_hi = base + 0x10000
            first_ts = self._first_ts
            self._ts_base = first_ts if ts >= first_ts else first_ts - 0x100000000
        else:
            self._fast_lo = self._fast_hi = 0

    def _start(self, ts_us: int, word: int, ts: int) -> None:
        pt = word >> 16 & 0x7F
        if pt != self.payload_type:
            # The packet, not the caller's guess, says what the first type is.
            self.payload_type = pt
            self.payload_types = [pt]
            self.codec, self.clock_rate = codec_for(pt, self._rtpmap)
            self._pt = pt
            self._pt_counts = pt not in COMFORT_NOISE_TYPES
            self._us_per_tick = _us_per_tick(self.codec, self.clock_rate)
        self._first_ts = ts
        self._start_seq = word & 0xFFFF
        self._stop_word = word
        self._time_us = ts_us
        self.first_us = ts_us
        self.last_us = ts_us
        self._count = 1.0

    def _switch(self, pt: int) -> bool:
        """Adopt payload type ``pt``; return whether this packet counts for jitter.

        Neither a comfort noise packet nor the packet after one counts.
        """
        counts = pt not in COMFORT_NOISE_TYPES
        follows_noise = self._pt in COMFORT_NOISE_TYPES
        self._pt = pt
        self._pt_counts = counts
        if pt == self.payload_type:
            codec, clock_rate = self.codec, self.clock_rate
        else:
            codec, clock_rate = codec_for(pt, self._rtpmap)
            if pt not in self.payload_types:
                self.payload_types.append(pt)
                self.payload_types.sort()
        self._us_per_tick = _us_per_tick(codec, clock_rate)
        return counts and not follows_noise

    @property
    def packets(self) -> int:
        """Packets added."""
        return int(self._count)

    @property
    def lost(self) -> int:
        """Expected minus received packets, as Wireshark counts them."""
        packets = int(self._count)
        if not packets:
            return 0
        stop_seq = self._stop_word & 0xFFFF
        expected = stop_seq + self._cycles * _SEQ_MOD - self._start_seq + 1
        return expected - packets

    @property
    def jitter_max_ms(self) -> float:
        """Highest interarrival jitter over the counted packets, in ms."""
        return round(self._jitter_max / 1000, 3)

    @property
    def jitter_mean_ms(self) -> float:
        """Wireshark's "Mean Jitter", in ms."""
        return round(self._jitter_mean / 1000, 3)

    def summary(self) -> dict:
        """The stream as a CDR ``media`` object (times still in epoch µs)."""
        return {
            "src_ip": self.src_ip,
            "src_port": self.src_port,
            "dst_ip": self.dst_ip,
            "dst_port": self.dst_port,
            "ssrc": self.ssrc,
            "payload_type": self.payload_type,
            "payload_types": list(self.payload_types),
            "codec": self.codec,
            "clock_rate": self.clock_rate,
            "packets": self.packets,
            "lost": self.lost,
            "jitter_max_ms": self.jitter_max_ms,
            "jitter_mean_ms": self.jitter_mean_ms,
            "first_us": self.first_us,
            "last_us": self.last_us,
        }


# What a stream's state is (`voiplog.rtp._state`): its slots, in both implementations.
STATE_FIELDS = RtpStream.__slots__
