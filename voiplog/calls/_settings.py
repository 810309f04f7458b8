"""Limits and timeouts of the call tracker (all times are packet time)."""

from __future__ import annotations

from dataclasses import dataclass


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
