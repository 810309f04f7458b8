"""The settings of each part of the packet pipeline: plain values with their defaults.

The lowest layer of voiplog: the protocol packages take these as arguments,
and the POP configuration (`voiplog.config`) validates its sections into
them, without importing any protocol code (loading a configuration loads
no parser). All times are packet time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

# Ports always treated as SIP; SIP on any other port is found by its start line.
DEFAULT_SIP_PORTS = (5060, 5061, 5062, 5070, 5080, 5090, 5160)

# The port HEP senders send to (HOMER's).
DEFAULT_HEP_PORT = 9060

AppCallFilter = Literal["off", "signatures", "all-udp"]
"""How much UDP beyond SIP and RTP the capture filter keeps for app calls
(see `voiplog.capture.bpf`)."""
APP_CALL_FILTERS: tuple[AppCallFilter, ...] = get_args(AppCallFilter)


@dataclass(frozen=True, slots=True)
class CallSettings:
    # A call with no final answer, or challenged with 401/407 and not yet sent
    # again, is given up after this long without SIP.
    setup_timeout_s: float = 300.0
    # An answered call with neither SIP nor RTP for this long has lost its BYE.
    idle_timeout_s: float = 1800.0
    # After BYE, a final failure or a CANCEL the call is kept this long for
    # retransmissions and trailing media.
    linger_s: float = 10.0
    # Open calls beyond this are evicted, least recently signalled first.
    max_open_calls: int = 100_000
    # Media flows (5-tuples) attached to open calls, beyond this new flows are ignored
    # and counted.
    max_media_flows: int = 400_000
    # A REGISTER with no final response, or challenged (401/407/423) and not sent
    # again, is given up after this long: RFC 3261 Timer F, 64 * T1.
    register_timeout_s: float = 32.0
    # REGISTER transaction chains in progress beyond this are evicted (and written),
    # least recently seen first.
    max_open_registrations: int = 100_000
    # Legs of one call behind a B2BUA linked by numbers and times: their INVITEs,
    # and their answers (or final answers), at most this far apart.
    session_link_window_s: float = 2.0
    # A written call is kept this long for the legs still open to link to it
    # (at most max_open_calls of them).
    session_link_keep_s: float = 60.0


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


@dataclass(frozen=True, slots=True)
class FragmentSettings:
    """Limits of the fragment reassembler."""

    timeout_us: int = 30_000_000
    """A datagram still incomplete this long after its first fragment is dropped."""
    max_datagrams: int = 4096
    """Datagrams waiting for fragments at once."""
    max_bytes: int = 16 * 1024 * 1024
    """Fragment bytes held at once, over all waiting datagrams."""
    max_fragments: int = 128
    """Pieces one datagram may be cut into (8-byte fragments would make 8192)."""


@dataclass(frozen=True, slots=True)
class TcpSettings:
    """Limits of the TCP stream reassembler."""

    max_connections: int = 20_000
    """Connections followed at once; the least recently active is dropped first."""
    max_held_bytes: int = 256 * 1024
    """Out-of-order bytes held per direction before the hole in front is given up."""
    max_held_segments: int = 512
    """Out-of-order segments held per direction before the hole in front is given up."""
    gap_timeout_us: int = 5_000_000
    """How long held data waits for a missing segment before it is given up."""
    idle_timeout_us: int = 900_000_000
    """A connection with no segment for this long is forgotten (SIP keep-alives are
    typically sent every 30 to 120 s)."""


@dataclass(frozen=True, slots=True)
class ReassemblySettings:
    """Limits of IP fragment and TCP stream reassembly, and mirror deduplication."""

    fragments: FragmentSettings = field(default_factory=FragmentSettings)
    tcp: TcpSettings = field(default_factory=TcpSettings)
    max_stream_buffer: int = 256 * 1024
    """Bytes one TCP direction may buffer for an unfinished SIP or WebSocket message."""
    mirror_window_us: int = 0
    """Drop a datagram identical to one seen less than this long before (0: off)."""
    mirror_max_entries: int = 65536
    """Recent datagrams remembered for mirror deduplication."""


@dataclass(frozen=True, slots=True)
class HepSettings:
    """Which HEP packets the pipeline reads, and from where."""

    ports: frozenset[int] = frozenset({DEFAULT_HEP_PORT})
    """Ports whose UDP datagrams and TCP streams in captures are HEP."""
    auth_key: bytes | None = None
    """Capture password every packet must carry (chunk 14); None: not checked."""
    node_ids: frozenset[int] = field(default_factory=frozenset)
    """Capture agent ids accepted; empty: any."""
    max_rate_per_source: int = 0
    """Packets per second accepted from one sender (0: no limit); more are counted."""
    max_stream_buffer: int = 256 * 1024
    """Bytes a HEP-over-TCP connection may buffer for an unfinished message."""
