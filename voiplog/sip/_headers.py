"""Values pulled out of individual SIP headers beyond the ones a dialog needs.

Registration records quote the user of an Authorization header and the expiry a
REGISTER asked for or was granted; call records keep the hints that tie the legs
of a B2BUA together (P-Charging-Vector, Session-ID). Each function takes one
header value and returns None when the value does not hold what it looks for: a
malformed hint is simply not a hint, never a reason to drop the message.
"""

from __future__ import annotations

from voiplog.sip._uri import parse_params, split_quoted

# RFC 3261 §20.19: delta-seconds up to 2**32-1.
_MAX_DELTA_SECONDS = 0xFFFFFFFF


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" in inner:
            out = []
            escaped = False
            for ch in inner:
                if escaped or ch != "\\":
                    out.append(ch)
                    escaped = False
                else:
                    escaped = True
            inner = "".join(out)
        return inner
    return value


def delta_seconds(value: str | None) -> int | None:
    """An Expires header or ``expires`` parameter as whole seconds, else None."""
    if value is None:
        return None
    value = _unquote(value)
    if not value or not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > 10:
        return None
    seconds = int(value)
    return seconds if seconds <= _MAX_DELTA_SECONDS else None


def credentials_username(value: str | None) -> str | None:
    """The ``username`` of an Authorization or Proxy-Authorization value (RFC 3261 §25).

    ``Digest username="alice", realm="example.com", ...`` gives ``alice``. None for
    another scheme without a username parameter, or an empty one.
    """
    if not value:
        return None
    _scheme, _, params = value.strip().partition(" ")
    if not params:
        return None
    for item in split_quoted(params, ","):
        name, eq, raw = item.partition("=")
        if eq and name.strip().lower() == "username":
            return _unquote(raw) or None
    return None


def charging_icid(value: str | None) -> str | None:
    """The ``icid-value`` of a P-Charging-Vector header (RFC 7315 §4.6)."""
    if not value:
        return None
    for name, raw in parse_params(";" + value):
        if name == "icid-value" and raw:
            return _unquote(raw) or None
    return None


def session_id(value: str | None) -> tuple[str, str | None] | None:
    """(local UUID, ``remote`` UUID or None) of a Session-ID header (RFC 7989).

    UUIDs are compared lower-case; the all-zero UUID that RFC 7989 sends before
    the far end's is known reads as None. None for an empty or malformed value.
    """
    if not value:
        return None
    local, _, rest = value.partition(";")
    local = local.strip().lower()
    if not local or not all(ch in "0123456789abcdef" for ch in local):
        return None
    remote = None
    for name, raw in parse_params(";" + rest) if rest else ():
        if name == "remote" and raw:
            remote = raw.strip().lower()
    if remote is not None and (not remote.strip("0") or not remote.isalnum()):
        remote = None
    return local, remote
