"""Limits and timeouts of the flow classifier (all times are packet time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowSettings:
    # Look for media sessions and encrypted VoIP among the UDP that no SDP
    # announced and the TLS that carries SIP.
    enabled: bool = True
    # A UDP session with no packet for this long is closed; a packet after the
    # gap starts a new session (and a new record).
    idle_gap_s: float = 30.0
    # The same for SIP-over-TLS connections, whose keepalives are sparse.
    tls_idle_gap_s: float = 900.0
    # Believed UDP sessions tracked at once; beyond it the least recently
    # active one is closed early, its record flagged "evicted".
    max_sessions: int = 100_000
    # Candidate sessions (UDP that may be VoIP, not yet proven) tracked at
    # once; beyond it the least recently active is dropped, without a record.
    max_candidates: int = 20_000
    # A candidate with no packet for this long is dropped.
    candidate_timeout_s: float = 10.0
    # TLS connections tracked at once, with the same eviction.
    max_tls_connections: int = 50_000
    # Packets of one SSRC, in sequence and at a voice-like clock, before a
    # stream that no SDP announced is believed to be RTP.
    min_packets: int = 5
    # TCP ports whose TLS connections are taken as SIP over TLS.
    sip_tls_ports: tuple[int, ...] = (5061,)
