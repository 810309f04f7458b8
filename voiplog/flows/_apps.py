"""The seam between the flow classifier and an application classifier (a DPI library).

The flow classifier keeps what a DPI library does not: one record per call, its
ends, its times, its packet and byte counts, its RTP streams. What it asks of
an `AppClassifier` is only the name of the application behind a UDP flow. It
hands over each datagram of a flow it tracks until the classifier gives its
verdict, and none after; a flow that ends undecided is asked once more with
`give_up`. The classifier is injected from outside (``voiplog.ndpi`` binds
libndpi), so this package stays pure and runs without any library at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voiplog._frozen import fast_frozen_init


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class AppVerdict:
    """What an application classifier says of one flow."""

    protocol: str
    """The library's own name of what it found, e.g. ``STUN.WhatsAppCall``."""
    app: str | None
    """voiplog's stable lower-case name of the application (``whatsapp``,
    ``telegram``...), None when the flow belongs to no application of interest."""
    category: str
    """The library's category, e.g. ``VoIP``, ``Chat``, ``Video``."""
    confidence: str
    """How the library knows: ``dpi``, ``dpi_cache``, ``ip`` (the address is in the
    application's published ranges), ``port``, ``guess``; ``unknown`` when undecided."""
    call: bool = False
    """The protocol is itself a voice or video call (a call protocol of an app, or
    the VoIP category)."""
    call_app: bool = False
    """The application makes calls: its two-way real-time UDP flows are calls."""
    excluded: bool = False
    """The flow is something that is never a call (QUIC, DNS, NTP, a VPN, a game,
    a streaming service), whatever else it looks like."""
    call_protocol: bool = False
    """The library named the call protocol itself (``WhatsAppCall``,
    ``SnapchatCall``), not only an application that also makes calls."""


class AppClassifier(Protocol):
    """An application classifier: fed a flow's datagrams until it decides."""

    name: str
    """What runs, with its version (``ndpi 4.2.0``), for logs and `config check`."""

    def new_flow(self) -> object:
        """A new flow's state, handed back to every other call for that flow."""
        ...

    def feed(
        self,
        flow: object,
        ts_us: int,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        payload: bytes,
    ) -> AppVerdict | None:
        """One UDP datagram of the flow (packed addresses); the verdict once decided, else None."""
        ...

    def give_up(self, flow: object) -> AppVerdict | None:
        """The best verdict for a flow that ends or has had enough datagrams undecided."""
        ...

    def release(self, flow: object) -> None:
        """Forget the flow: its state is freed, and it is never passed in again."""
        ...

    def server_app(self, ip: bytes) -> str | None:
        """The application whose published server ranges hold ``ip`` (packed), if any:
        such an address is the application's relay or server, not a party to the call."""
        ...

    def host_app(self, name: str) -> str | None:
        """The call application (voiplog's name, e.g. ``discord``, ``whatsapp``) that the
        library's host-name rules put ``name`` in (a TLS server name such as
        ``eu-west123.discord.media`` or ``g.whatsapp.net``), else None."""
        ...
