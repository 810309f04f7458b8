"""The registration record: one REGISTER transaction chain, as written.

A chain is a REGISTER, the 401/407 challenges it drew and the retries that
answered them, up to the final response (or its absence): what an operator needs
to prove later which subscriber IP was registered as which address of record,
and when. The fields below are written in this order; the store's registration
table has one column per field. Optional fields are ``None`` when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from voiplog._frozen import fast_frozen_init
from voiplog.cdr.disposition import RecordKind
from voiplog.cdr.record import CONTRACT_VERSION, record_keys


class RegistrationResult(StrEnum):
    """The values of `RegistrationRecord.result`."""

    REGISTERED = "registered"  # 2xx granting a binding
    UNREGISTERED = "unregistered"  # 2xx to a request removing bindings (expiry 0)
    CHALLENGED = "challenged"  # 401/407 never answered with credentials
    FAILED = "failed"  # any other final failure (403, 404, 5xx, ...)
    NO_RESPONSE = "no_response"  # no final response before the timeout or end of input


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    """One REGISTER transaction chain (challenge and retry are one record)."""

    uid: str  # stable id: same input, same uid
    kind: RecordKind  # always RecordKind.REGISTRATION
    call_id: str  # Call-ID of the REGISTER
    aor: str | None  # address of record: To URI without tag
    user: str | None  # user part of the AoR, unescaped
    contact_uri: str | None  # first Contact URI of the REGISTER
    contact_ip: str | None  # host of that URI when it is an IP address
    contact_port: int | None  # explicit port of that URI
    source_ip: str  # packet source of the REGISTER
    source_port: int
    registrar_ip: str  # packet destination of the REGISTER
    registrar_port: int
    transport: str  # udp, tcp, tls, ws, wss, sctp
    expires_s: int | None  # granted expiry of the contact, else the requested one
    auth_user: str | None  # username of the (Proxy-)Authorization of the last REGISTER
    user_agent: str | None  # User-Agent of the REGISTER
    status: int | None  # final SIP status, None when none came
    result: RegistrationResult
    requested_at: str  # first REGISTER packet of the chain
    answered_at: str | None  # final response
    subscriber_ip: str | None  # the endpoint inside the POP's subscriber networks
    direction: str | None  # outbound, inbound, internal, transit
    subscriber: dict[str, Any] | None = None  # enrichment of the subscriber line
    flags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # keys beyond the fixed ones

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the fields in their order (`REGISTRATION_KEYS`), then the
        keys beyond them."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        out["flags"] = list(self.flags)
        out["version"] = CONTRACT_VERSION
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


REGISTRATION_KEYS = record_keys(RegistrationRecord)
_FIELDS = REGISTRATION_KEYS[:-1]
