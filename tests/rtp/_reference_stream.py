"""`RtpStream` in its plain form: every rule applied to every packet, no fast path.

`test_stream_equivalence.py` feeds the same packets to this class and to
`voiplog.rtp.RtpStream` and expects identical results, down to the last bit of
the unrounded jitter. Change it only together with the counting rules.
"""

from __future__ import annotations

import struct

from voiplog.rtp._codecs import COMFORT_NOISE_TYPES, codec_for, is_telephone_event

# Second byte (marker, payload type), sequence number and timestamp.
_FIELDS = struct.Struct(">xBHI")
_unpack_fields = _FIELDS.unpack_from

_SEQ_MOD = 0x10000


def _us_per_tick(codec: str | None, clock_rate: int | None) -> float:
    """Microseconds per timestamp unit, or 0.0 when jitter cannot be computed."""
    if not clock_rate or clock_rate <= 0 or is_telephone_event(codec):
        return 0.0
    return 1_000_000 / clock_rate


class ReferenceRtpStream:
    """Statistics of one RTP stream, by the rules of `voiplog.rtp._stream`.

    Results: `packets`, `lost`, `jitter_max_ms`, `jitter_mean_ms`, `first_us`,
    `last_us`, `payload_type` (the first one seen) and `payload_types` (every
    type seen, ascending, as Wireshark lists them), and `summary()`.
    """

    __slots__ = (
        "_cycles",
        "_first_ts",
        "_jitter",
        "_jitter_max",
        "_jitter_mean",
        "_nominal",
        "_pt",
        "_pt_counts",
        "_rtpmap",
        "_start_seq",
        "_stop_seq",
        "_time_us",
        "_under",
        "_us_per_tick",
        "clock_rate",
        "codec",
        "dst_ip",
        "dst_port",
        "first_us",
        "last_us",
        "packets",
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
        self.packets = 0
        self.first_us = 0
        self.last_us = 0
        self._pt = payload_type
        self._pt_counts = payload_type not in COMFORT_NOISE_TYPES
        self._us_per_tick = _us_per_tick(codec, clock_rate)
        self._first_ts = 0
        self._start_seq = 0
        self._stop_seq = 0
        self._cycles = 0
        self._under = False
        self._time_us = 0
        self._nominal = 0.0
        self._jitter = 0.0
        self._jitter_max = 0.0
        self._jitter_mean = 0.0

    def add(self, ts_us: int, payload: bytes, offset: int = 0) -> None:
        """Account for one RTP packet of this stream that arrived at ``ts_us``.

        The RTP header starts at ``offset`` of ``payload`` (the UDP payload, or
        the whole frame on the pipeline's fast path).
        """
        second, seq, ts = _unpack_fields(payload, offset)
        n = self.packets
        if not n:
            self._start(ts_us, second, seq, ts)
            return
        first_ts = self._first_ts
        # "In time sequence": at most 2**31 ticks after the first timestamp.
        # Wireshark's test takes exactly 2**31 as in time only across a wrap.
        # Literals rather than module constants, as this runs for every packet.
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
        elif seq == 0 and self._stop_seq == 0xFFFF and in_time and not self._under:
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
        self._stop_seq = seq
        self.packets = n + 1
        self.last_us = ts_us

    def _start(self, ts_us: int, second: int, seq: int, ts: int) -> None:
        pt = second & 0x7F
        if pt != self.payload_type:
            # The packet, not the caller's guess, says what the first type is.
            self.payload_type = pt
            self.payload_types = [pt]
            self.codec, self.clock_rate = codec_for(pt, self._rtpmap)
            self._pt = pt
            self._pt_counts = pt not in COMFORT_NOISE_TYPES
            self._us_per_tick = _us_per_tick(self.codec, self.clock_rate)
        self._first_ts = ts
        self._start_seq = seq
        self._stop_seq = seq
        self._time_us = ts_us
        self.first_us = ts_us
        self.last_us = ts_us
        self.packets = 1

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
    def lost(self) -> int:
        """Expected minus received packets, as Wireshark counts them."""
        if not self.packets:
            return 0
        expected = self._stop_seq + self._cycles * _SEQ_MOD - self._start_seq + 1
        return expected - self.packets

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
