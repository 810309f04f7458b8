"""RTP and RTCP: packet recognition, payload types and per-stream statistics.

Sans-IO like the rest of the protocol code: callers hand in UDP payloads and
capture timestamps (integer microseconds) and read results back; nothing here
touches sockets, files or clocks.
"""

from voiplog.rtp._codecs import STATIC_PAYLOAD_TYPES, codec_for
from voiplog.rtp._header import RTP_OF_FLOW, is_rtp_of_flow, looks_like_rtcp, looks_like_rtp
from voiplog.rtp._select import RtpStream
from voiplog.rtp._state import stream_from_state, stream_state

__all__ = [
    "RTP_OF_FLOW",
    "STATIC_PAYLOAD_TYPES",
    "RtpStream",
    "codec_for",
    "is_rtp_of_flow",
    "looks_like_rtcp",
    "looks_like_rtp",
    "stream_from_state",
    "stream_state",
]
