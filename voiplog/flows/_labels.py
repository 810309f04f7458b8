"""Application labels from public, documented traits, each with a confidence.

A label is a hint for the reader of a record, never a certainty: the
confidence is a rough score in (0, 1) of how often the trait alone names the
application, and `basis` says which trait it rests on.
"""

from __future__ import annotations

from typing import Any

# STUN SOFTWARE attribute (RFC 8489 section 14.14) prefixes that ICE and TURN
# implementations send by default.
_SOFTWARE_PREFIXES: tuple[tuple[str, str, float], ...] = (
    ("pjnath", "pjsip", 0.6),
    ("ice4j", "jitsi", 0.6),
    ("coturn", "coturn-relay", 0.5),
    ("returnserver", "resiprocate-relay", 0.5),
)


def label(name: str, confidence: float, basis: str) -> dict[str, Any]:
    return {"name": name, "confidence": confidence, "basis": basis}


def udp_session_label(
    software: str | None, ice: bool, dtls_srtp: bool, turn: bool
) -> dict[str, Any] | None:
    """The label of a UDP session, from the strongest trait it showed."""
    if software:
        lowered = software.lower()
        for prefix, name, confidence in _SOFTWARE_PREFIXES:
            if lowered.startswith(prefix):
                return label(name, confidence, "stun_software")
    if ice and dtls_srtp:
        # ICE connectivity checks followed by DTLS-SRTP keying is what WebRTC
        # (RFC 8827) mandates; other ICE/DTLS-SRTP users exist, hence < 1.
        return label("webrtc", 0.7, "ice_dtls_srtp")
    if dtls_srtp:
        return label("webrtc", 0.4, "dtls_srtp")
    if turn:
        return label("turn-relayed", 0.5, "turn_channel_data")
    return None


def tls_label(sip_basis: str) -> dict[str, Any]:
    """The label of a TLS connection taken as SIP, by what made it so."""
    confidence = {"alpn": 0.9, "sni": 0.8, "port": 0.6}[sip_basis]
    return label("sip-tls", confidence, sip_basis)
