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
    # Who names the application behind a UDP flow: "ndpi" (libndpi, with the
    # built-in traits beside it), "builtin" (STUN SOFTWARE, ICE with DTLS-SRTP,
    # TURN: no app calls without RTP) or "off" (no application label at all).
    app_classifier: str = "ndpi"
    # A flow that the application classifier puts in a call application is
    # call media once it shows two-way real-time traffic: datagrams other than
    # STUN and DTLS handshakes (TURN-wrapped ones count by what they wrap), at
    # least `app_min_packets` in the busier direction, at least
    # `app_min_return_packets` the other way, over at least `app_min_span_s`,
    # at `app_min_rate_pps` or more in the busier direction. A flow of RTCP
    # alone (a muted call) needs `app_min_return_packets` reports each way.
    app_min_packets: int = 20
    app_min_return_packets: int = 3
    app_min_span_s: float = 1.0
    app_min_rate_pps: float = 5.0
    # A quiet flow of a call application (parties muted, silence suppressed)
    # is call media too when each direction carries `app_quiet_min_packets`
    # datagrams over at least `app_quiet_min_span_s`, at one every
    # 1 / `app_quiet_min_rate_pps` seconds or more often: NAT keepalives come
    # every 15 s or less often, and an unanswered call's relay pings (as
    # frequent as a muted call's) stop when the apps give up ringing, within a
    # minute.
    # A flow that the classifier names by a call protocol of its own
    # (WhatsAppCall, SnapchatCall, SignalVoip...) by deep inspection is call
    # media with `app_named_min_packets` datagrams each way over
    # `app_min_span_s`, at any rate: the name already says it is a call, and
    # some apps (Snapchat's calls inside QUIC) send few, large datagrams.
    app_named_min_packets: int = 10
    app_quiet_min_packets: int = 4
    app_quiet_min_span_s: float = 75.0
    app_quiet_min_rate_pps: float = 0.2
    # Flows of one application and one subscriber address belong to one call
    # while they overlap or follow each other within this gap.
    app_join_gap_s: float = 10.0
    # An app keeps one local socket for a call: a media flow from a subscriber
    # socket the call has not used, after none of its flows carried a datagram
    # for this long, is the next call (a call redialled after it dropped), even
    # within `app_join_gap_s`. A path switch mid-call leaves no such silence.
    app_new_socket_gap_s: float = 5.0
    # A UDP flow that the application classifier cannot name takes the
    # application of a TLS connection between the same two addresses whose
    # server name is that application's, opened at most this long before.
    app_sni_window_s: float = 600.0
    # A UDP session that no application classifier names as a call app's, and
    # that carries this many datagrams a second or more one way with less than
    # a tenth of that coming back, is a stream (cloud gaming, live video), not
    # a call: no record ("media.stream_not_call"). Calls' video stays far below.
    stream_min_rate_pps: float = 800.0
