"""Times of lease and port-block sources: ISO 8601 with a UTC offset, to epoch microseconds.

A time without an offset is refused: the same wall-clock time names two
different moments in two time zones, and a lease off by an hour names the
wrong subscriber. Every time is normalised to UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000

# An open interval ends at the end of representable time.
FOREVER = (1 << 63) - 1


def parse_time(text: str) -> int:
    """Epoch microseconds of an ISO 8601 time with an offset; ValueError says why not."""
    text = text.strip()
    if not text:
        raise ValueError("empty time")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{text!r} has no UTC offset (write it as 2024-05-01T10:00:00Z or with +02:00)"
        )
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _US + delta.microseconds


def format_time(us: int | None) -> str | None:
    """Epoch microseconds as ISO 8601 UTC with 'Z'; None for an open end."""
    if us is None or us >= FOREVER:
        return None
    seconds, micros = divmod(us, _US)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros:06d}Z"
