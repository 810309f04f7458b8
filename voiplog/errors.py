"""Error types shared by every layer.

Two families, as in sans-IO protocol libraries: `ParseError` means the *peer*
sent something we cannot read (counted by `kind` and skipped, never fatal);
`UsageError` means *our caller* misused an API or gave a bad option.
"""


class ParseError(Exception):
    """Input bytes that a parser could not make sense of.

    `kind` is a short stable name (``sip.bad_start_line``, ``pcap.truncated_record``)
    used to count the error in summaries and metrics.
    """

    kind = "parse_error"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class UsageError(Exception):
    """A caller misused an API, or the operator gave a bad option or file."""
