"""Errors raised by the flow parsers (STUN/TURN, DTLS, TLS).

Each carries a stable ``kind`` so that odd packets can be counted by name. The
classifier catches them itself: a UDP datagram that only resembles STUN or DTLS
is simply not that protocol, and is never reported as a broken packet.
"""

from voiplog.errors import ParseError


class FlowParseError(ParseError):
    """Bytes that do not make a valid message of the protocol tried."""

    kind = "flow.parse_error"


class StunParseError(FlowParseError):
    """Not a readable STUN message or TURN ChannelData message."""

    kind = "stun.parse_error"


class DtlsParseError(FlowParseError):
    """Not a readable DTLS record or handshake."""

    kind = "dtls.parse_error"


class TlsParseError(FlowParseError):
    """Not a readable TLS record or ClientHello."""

    kind = "tls.parse_error"
