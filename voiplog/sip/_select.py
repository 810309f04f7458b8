"""The `parse_message` and `parse_sdp` in use: the compiled ones (`_cmessage`,
`_csdp`) when they were built and extensions are not disabled, else the pure-Python
references (`_message`, `_sdp`)."""

from __future__ import annotations

from voiplog._extensions import compiled

_compiled = compiled("voiplog.sip._cmessage")
if _compiled is not None:
    parse_message = _compiled.parse_message
else:
    from voiplog.sip._message import parse_message

_compiled_sdp = compiled("voiplog.sip._csdp")
if _compiled_sdp is not None:
    parse_sdp = _compiled_sdp.parse_sdp
else:
    from voiplog.sip._sdp import parse_sdp

__all__ = ["parse_message", "parse_sdp"]
