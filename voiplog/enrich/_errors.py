"""Errors of the enrichment tables: bad source rows (the operator's file) and bad packets."""

from __future__ import annotations

from voiplog.errors import ParseError, UsageError


class SourceError(UsageError):
    """A lease or port-block source row that cannot be used; names the file and line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class RadiusParseError(ParseError):
    """A RADIUS accounting packet that cannot be decoded."""

    kind = "radius.malformed"


class IpfixParseError(ParseError):
    """An IPFIX message that cannot be decoded."""

    kind = "ipfix.malformed"
