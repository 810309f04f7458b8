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


# How far an application classifier's verdict goes, by how it was reached: deep
# inspection of this flow, of a flow just before it, the application's
# published address ranges (its relays and servers), a port, a guess.
_VERDICT_CONFIDENCE = {
    "dpi": 0.9,
    "dpi_cache": 0.8,
    "ip": 0.7,
    "socket": 0.6,  # the same subscriber socket as a named flow, just before
    "sni": 0.6,  # a TLS connection to the same address named the application
    "port": 0.4,
    "guess": 0.3,
}


def app_label(verdict: Any, builtin: dict[str, Any] | None) -> dict[str, Any]:
    """The label of a flow that an application classifier named (an `AppVerdict`).

    ``basis`` names the classifier's finding and how it was reached, e.g.
    ``ndpi:STUN.WhatsAppCall/dpi``; where the built-in traits name something
    else, it says that too rather than drop one of them silently.
    """
    how = verdict.confidence
    if how == "builtin":
        return builtin if builtin is not None else label(verdict.app, 0.4, verdict.protocol)
    if how == "sni":
        basis = verdict.protocol  # sni:<server name>
    else:
        found = verdict.protocol
        if not found.startswith(("builtin:", "sni:", "port:")):
            found = f"ndpi:{found}"
        basis = f"same_socket:{found}" if how == "socket" else f"{found}/{how}"
    if builtin is not None and builtin["name"] != verdict.app:
        basis += f"; builtin:{builtin['name']}/{builtin['basis']}"
    return label(verdict.app, _VERDICT_CONFIDENCE.get(how, 0.2), basis)


def call_label(labels: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The label of an app call: its flows' most confident one (the first on a tie)."""
    best = None
    for found in labels:
        if found is not None and (best is None or found["confidence"] > best["confidence"]):
            best = found
    return best
