"""An RTP stream's statistics as plain data, and back: what a restart keeps.

Saved slot by slot (JSON-able: the payload types as a list, the rtpmap as
pairs), so that a stream restored goes on counting exactly where it stopped.
"""

from __future__ import annotations

from voiplog.rtp._select import RtpStream
from voiplog.rtp._stream import STATE_FIELDS


def stream_state(stream: RtpStream) -> dict:
    """`stream` as plain data."""
    data = {slot: getattr(stream, slot) for slot in STATE_FIELDS}
    data["payload_types"] = list(stream.payload_types)
    rtpmap = stream._rtpmap
    data["_rtpmap"] = None if rtpmap is None else [[pt, list(v)] for pt, v in rtpmap.items()]
    return data


def stream_from_state(data: dict) -> RtpStream:
    """The stream `stream_state` saved."""
    stream = RtpStream.__new__(RtpStream)
    for slot in STATE_FIELDS:
        setattr(stream, slot, data[slot])
    rtpmap = data["_rtpmap"]
    stream._rtpmap = None if rtpmap is None else {pt: tuple(v) for pt, v in rtpmap}
    return stream
