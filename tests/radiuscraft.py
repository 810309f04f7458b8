"""Crafting RADIUS accounting requests for tests, encoded by pyrad with voiplog's dictionary."""

from __future__ import annotations

from pyrad.packet import AcctPacket

from voiplog.enrich.radius import radius_dictionary

SECRET = b"testing123"


def accounting(
    status: str, session: str, *, secret: bytes = SECRET, ident: int = 1, **attributes
) -> bytes:
    """An Accounting-Request; attributes by RADIUS name with '_' for '-':
    accounting("Start", "s1", User_Name="alice", Framed_IP_Address="100.64.0.1")."""
    packet = AcctPacket(dict=radius_dictionary(), secret=secret, id=ident)
    packet["Acct-Status-Type"] = status
    if session is not None:
        packet["Acct-Session-Id"] = session
    attributes.setdefault("NAS_Identifier", "bng1")
    for name, value in attributes.items():
        packet[name.replace("_", "-")] = value
    return packet.RequestPacket()
