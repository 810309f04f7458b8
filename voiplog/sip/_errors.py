"""Errors raised by the SIP and SDP parsers.

Each carries a stable ``kind`` (``sip.bad_cseq``, ``sdp.bad_media``...) so that the
pipeline can count malformed packets by name and move on.
"""

from voiplog.errors import ParseError


class SipParseError(ParseError):
    """A SIP message, URI or name-addr that cannot be read."""

    kind = "sip.parse_error"


class SdpParseError(ParseError):
    """A session description that cannot be read."""

    kind = "sdp.parse_error"
