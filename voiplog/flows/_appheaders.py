"""Applications' own headers in front of RTP, for those whose format is public.

Strategy: once a flow's application is known, its datagrams pass through that
application's unwrapper before RTP/RTCP recognition, so that the RTP inside
gets its stream statistics as any other. An unwrapper returns the inner
RTP/RTCP, or None for a datagram it does not recognise (which is then read as
it is). Only formats documented in public measurement work are here:

* Zoom (Michel et al., "Enabling Passive Measurement of Zoom Performance in
  Production Networks", IMC 2022, and its published analysis code): media
  through Zoom's servers carries an 8-byte SFU header (type 0x05); inside it, or
  directly on a peer-to-peer flow, a media header whose type gives the length:
  audio (0x0f) 19 bytes, video (0x10) 24 bytes when its byte 20 is 2 and 20
  otherwise, RTCP (0x21, 0x22) 16 bytes, peer-to-peer screen share (0x1e) 20
  bytes, server screen share (0x0d, byte 7 = 0x1e) 27 bytes.
"""

from __future__ import annotations

from collections.abc import Callable

_ZOOM_SFU = 0x05
_ZOOM_AUDIO = 0x0F
_ZOOM_VIDEO = 0x10
_ZOOM_RTCP = (0x21, 0x22)
_ZOOM_P2P_SCREEN = 0x1E
_ZOOM_SRV_SCREEN = 0x0D


def zoom_inner(payload: bytes) -> bytes | None:
    """The RTP or RTCP inside a Zoom media datagram, else None."""
    start = 8 if payload[0] == _ZOOM_SFU else 0
    if len(payload) < start + 28:
        return None
    kind = payload[start]
    if kind == _ZOOM_AUDIO:
        offset = 19
    elif kind == _ZOOM_VIDEO:
        offset = 24 if payload[start + 20] == 0x02 else 20
    elif kind in _ZOOM_RTCP:
        offset = 16
    elif kind == _ZOOM_P2P_SCREEN and not start:
        offset = 20
    elif kind == _ZOOM_SRV_SCREEN and start and payload[start + 7] == _ZOOM_P2P_SCREEN:
        offset = 27
    else:
        return None
    inner = payload[start + offset :]
    return inner if len(inner) >= 8 and inner[0] >> 6 == 2 else None


UNWRAPPERS: dict[str, Callable[[bytes], bytes | None]] = {"zoom": zoom_inner}
"""voiplog application name -> the unwrapper of its media datagrams."""
