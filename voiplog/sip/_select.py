"""The `parse_message` in use: the compiled one (`_cmessage`) when it was built and
extensions are not disabled, else the pure-Python reference (`_message`)."""

from __future__ import annotations

from voiplog._extensions import compiled

_compiled = compiled("voiplog.sip._cmessage")
if _compiled is not None:
    parse_message = _compiled.parse_message
else:
    from voiplog.sip._message import parse_message

__all__ = ["parse_message"]
