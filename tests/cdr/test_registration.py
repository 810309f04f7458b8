"""The registration record: fixed key order, frozen, extra keys after the fixed ones."""

from __future__ import annotations

import dataclasses

import pytest

from voiplog.cdr import RegistrationRecord, RegistrationResult

FIXED_KEYS = [
    "uid", "kind", "call_id", "aor", "user", "contact_uri", "contact_ip", "contact_port",
    "source_ip", "source_port", "registrar_ip", "registrar_port", "transport", "expires_s",
    "auth_user", "user_agent", "status", "result", "requested_at", "answered_at",
    "subscriber_ip", "direction", "subscriber", "flags", "version",
]  # fmt: skip


def _record(**changes) -> RegistrationRecord:
    fields = dict(
        uid="Cabc",
        kind="registration",
        call_id="reg@host",
        aor="sip:alice@example.net",
        user="alice",
        contact_uri="sip:alice@10.0.0.1:5062",
        contact_ip="10.0.0.1",
        contact_port=5062,
        source_ip="10.0.0.1",
        source_port=5062,
        registrar_ip="192.0.2.1",
        registrar_port=5060,
        transport="udp",
        expires_s=600,
        auth_user="alice",
        user_agent="phone",
        status=200,
        result="registered",
        requested_at="2023-11-14T22:13:20.000000Z",
        answered_at="2023-11-14T22:13:20.100000Z",
        subscriber_ip="10.0.0.1",
        direction="outbound",
    )
    fields.update(changes)
    return RegistrationRecord(**fields)


def test_keys_in_fixed_order_then_extra():
    record = _record(flags=("auth_challenged",), extra={"contacts": [], "uid": "ignored"})
    out = record.to_dict()
    assert list(out) == [*FIXED_KEYS, "contacts"]
    assert out["uid"] == "Cabc"  # an extra key never overrides a fixed one
    assert out["flags"] == ["auth_challenged"]
    assert out["version"] == 1


def test_frozen_with_slots():
    record = _record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = 403  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_results_are_the_documented_five():
    assert [r.value for r in RegistrationResult] == [
        "registered",
        "unregistered",
        "challenged",
        "failed",
        "no_response",
    ]
