"""SIP and SDP parsing for call tracking: sans-IO, bytes in, frozen records out.

`looks_like_sip` is the cheap gate run on every non-RTP datagram; `parse_message`
reads one SIP message and `parse_sdp` tells where media flows (both compiled when
built, see `_select`); `parse_name_addr`, `uri_user` and `uri_host` take apart the
From/To/Contact values and URIs a CDR quotes; `SipStreamTable` reads SIP out of
TCP connections and WebSocket (RFC 7118). Every parser raises only its own
`ParseError` subclass, whose `kind` names the problem for counting.
"""

from voiplog.sip._errors import SdpParseError, SipParseError
from voiplog.sip._framing import split_stream
from voiplog.sip._headers import charging_icid, credentials_username, delta_seconds, session_id
from voiplog.sip._message import (
    COMPACT_FORMS,
    LIST_HEADERS,
    SipMessage,
    canonical_header_name,
    looks_like_sip,
)
from voiplog.sip._sdp import (
    STATIC_PAYLOAD_TYPES,
    IceCandidate,
    MediaDescription,
    Origin,
    SessionDescription,
)
from voiplog.sip._select import parse_message, parse_sdp
from voiplog.sip._stream import SipStreamReader, SipStreamTable, split_websocket_message
from voiplog.sip._uri import (
    NameAddr,
    parse_name_addr,
    parse_params,
    percent_unescape,
    uri_host,
    uri_port,
    uri_scheme,
    uri_user,
)

__all__ = [
    "COMPACT_FORMS",
    "LIST_HEADERS",
    "STATIC_PAYLOAD_TYPES",
    "IceCandidate",
    "MediaDescription",
    "NameAddr",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "SipMessage",
    "SipParseError",
    "SipStreamReader",
    "SipStreamTable",
    "canonical_header_name",
    "charging_icid",
    "credentials_username",
    "delta_seconds",
    "looks_like_sip",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_sdp",
    "percent_unescape",
    "session_id",
    "split_stream",
    "split_websocket_message",
    "uri_host",
    "uri_port",
    "uri_scheme",
    "uri_user",
]
