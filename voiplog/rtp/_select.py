"""The `RtpStream` in use: the compiled one (`_cstream`) when it was built and
extensions are not disabled, else the pure-Python reference (`_stream`)."""

from __future__ import annotations

from voiplog._extensions import compiled

_compiled = compiled("voiplog.rtp._cstream")
if _compiled is not None:
    RtpStream = _compiled.RtpStream
else:
    from voiplog.rtp._stream import RtpStream

__all__ = ["RtpStream"]
