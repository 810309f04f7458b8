"""Payload type numbers to codec names and RTP clock rates.

Static payload types are fixed by RFC 3551 (section 6); dynamic ones (96-127,
and in practice any number an SDP offer chooses) only mean something through the
``a=rtpmap`` lines of the session's SDP. Names follow what Wireshark prints in
its RTP stream list wherever that is a codec name (``g711U``, ``g711A``,
``g729``), so that a CDR and a Wireshark screen use the same words.
"""

from __future__ import annotations

# RFC 3551 table 4 (audio) and table 5 (video). G.722 is listed with 8000 Hz
# although it samples at 16 kHz: RFC 3551 section 4.5.2 keeps the 8000 Hz RTP
# clock for historical reasons, and every implementation follows it.
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int]] = {
    0: ("g711U", 8000),
    1: ("fs-1016", 8000),
    2: ("g721", 8000),
    3: ("GSM", 8000),
    4: ("g723", 8000),
    5: ("DVI4 8k", 8000),
    6: ("DVI4 16k", 16000),
    7: ("LPC", 8000),
    8: ("g711A", 8000),
    9: ("g722", 8000),
    10: ("L16", 44100),
    11: ("L16", 44100),
    12: ("QCELP", 8000),
    13: ("CN", 8000),
    14: ("MPA", 90000),
    15: ("g728", 8000),
    16: ("DVI4 11k", 11025),
    17: ("DVI4 22k", 22050),
    18: ("g729", 8000),
    19: ("CN", 8000),
    25: ("CelB", 90000),
    26: ("JPEG", 90000),
    28: ("nv", 90000),
    31: ("h261", 90000),
    32: ("MPV", 90000),
    33: ("MP2T", 90000),
    34: ("h263", 90000),
}

# Comfort noise: 13 per RFC 3389, 19 as reserved for it by drafts and still sent
# by old gear. Jitter statistics skip these packets and the one after them.
COMFORT_NOISE_TYPES = frozenset({13, 19})


def codec_for(
    payload_type: int, rtpmap: dict[int, tuple[str, int, str | None]] | None
) -> tuple[str | None, int | None]:
    """Return ``(codec name, clock rate in Hz)`` for a payload type.

    ``rtpmap`` maps payload types to ``(encoding name, clock rate, encoding
    parameters)`` as read from the SDP. An entry there wins, even for a static
    type; otherwise the RFC 3551 table answers; a dynamic type the SDP did not
    describe is ``(None, None)``.
    """
    if rtpmap:
        entry = rtpmap.get(payload_type)
        if entry is not None:
            name, rate = entry[0], entry[1]
            return name, (rate if rate and rate > 0 else None)
    static = STATIC_PAYLOAD_TYPES.get(payload_type)
    if static is not None:
        return static
    return None, None


def is_telephone_event(codec: str | None) -> bool:
    """True for RFC 4733 named events (DTMF), whose timestamps do not advance."""
    return codec is not None and codec[:15].lower() == "telephone-event"
