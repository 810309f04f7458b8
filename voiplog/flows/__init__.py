"""Flow classification: VoIP that shows no readable SIP, as session records.

RTP that no SDP announced (found by validated heuristics), SRTP/SRTCP, STUN and
TURN, DTLS-SRTP (WebRTC), SIP over TLS, and app calls (WhatsApp, Telegram,
Zoom...) named by an injected application classifier. Sans-IO like the rest of the
protocol code: `FlowClassifier` is fed UDP datagrams and TCP segments with
their packet time and returns `voiplog.cdr.CallRecord` objects of kind
"media" or "encrypted"; `expire(now)` closes idle sessions.
"""

from voiplog.flows._apps import AppClassifier, AppVerdict
from voiplog.flows._dtls import DtlsDatagram, looks_like_dtls, parse_dtls
from voiplog.flows._errors import DtlsParseError, FlowParseError, StunParseError, TlsParseError
from voiplog.flows._rtp_heuristic import RtpCandidate, looks_like_srtcp, plausible_payload_type
from voiplog.flows._sessions import FlowClassifier
from voiplog.flows._stun import (
    StunClass,
    StunMessage,
    looks_like_channel_data,
    looks_like_stun,
    parse_channel_data,
    parse_stun,
)
from voiplog.flows._tls import Hello, looks_like_tls, parse_client_hello, says_sip
from voiplog.settings import FlowSettings

__all__ = [
    "AppClassifier",
    "AppVerdict",
    "DtlsDatagram",
    "DtlsParseError",
    "FlowClassifier",
    "FlowParseError",
    "FlowSettings",
    "Hello",
    "RtpCandidate",
    "StunClass",
    "StunMessage",
    "StunParseError",
    "TlsParseError",
    "looks_like_channel_data",
    "looks_like_dtls",
    "looks_like_srtcp",
    "looks_like_stun",
    "looks_like_tls",
    "parse_channel_data",
    "parse_client_hello",
    "parse_dtls",
    "parse_stun",
    "plausible_payload_type",
    "says_sip",
]
