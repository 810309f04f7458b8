"""A record's fields, its JSON keys and its store columns come from one definition."""

from __future__ import annotations

from voiplog.cdr.record import CALL_KEYS, MEDIA_KEYS, CallRecord, MediaStream
from voiplog.cdr.registration import REGISTRATION_KEYS, RegistrationRecord
from voiplog.store import _ingest, _models

# The CDR contract v1 (DESIGN.md), in the order records have always been written:
# a change here is a change of the contract.
CONTRACT_CALL_KEYS = (
    "uid", "kind", "call_id", "caller", "callee", "caller_uri", "callee_uri", "request_uri",
    "caller_ip", "caller_port", "callee_ip", "callee_port", "transport", "subscriber_ip",
    "direction", "started_at", "ringing_at", "answered_at", "ended_at", "duration_s", "setup_ms",
    "disposition", "final_status", "ended_by", "user_agent", "media", "flags", "subscriber",
    "remote", "version",
)  # fmt: skip
CONTRACT_MEDIA_KEYS = (
    "src_ip", "src_port", "dst_ip", "dst_port", "ssrc", "payload_type", "codec", "packets",
    "lost", "jitter_max_ms", "jitter_mean_ms", "first_at", "last_at",
)  # fmt: skip
CONTRACT_REGISTRATION_KEYS = (
    "uid", "kind", "call_id", "aor", "user", "contact_uri", "contact_ip", "contact_port",
    "source_ip", "source_port", "registrar_ip", "registrar_port", "transport", "expires_s",
    "auth_user", "user_agent", "status", "result", "requested_at", "answered_at",
    "subscriber_ip", "direction", "subscriber", "flags", "version",
)  # fmt: skip


def _stream() -> MediaStream:
    values = {k: 1 for k in MEDIA_KEYS}
    return MediaStream(**values)


def test_the_definitions_are_the_contract():
    assert CALL_KEYS == CONTRACT_CALL_KEYS
    assert MEDIA_KEYS == CONTRACT_MEDIA_KEYS
    assert REGISTRATION_KEYS == CONTRACT_REGISTRATION_KEYS


def test_to_dict_writes_the_keys_in_their_order_then_the_extra_ones():
    values = {k: None for k in CALL_KEYS if k not in ("media", "flags", "version")}
    record = CallRecord(**values, media=(_stream(),), flags=("no_bye",), extra={"app": "x"})
    doc = record.to_dict()
    assert tuple(doc) == (*CALL_KEYS, "app")
    assert tuple(doc["media"][0]) == MEDIA_KEYS
    assert doc["flags"] == ["no_bye"]
    values = {k: None for k in REGISTRATION_KEYS if k not in ("flags", "version")}
    doc = RegistrationRecord(**values, extra={"contacts": []}).to_dict()
    assert tuple(doc) == (*REGISTRATION_KEYS, "contacts")


def test_store_columns_are_the_record_keys():
    assert set(_ingest.CDR_COLUMNS) == {*CALL_KEYS, "extra", "pop", "sensor"}
    assert _ingest.CDR_KEYS[:2] == ("uid", "started_at")  # the partition key first
    assert set(_ingest.REGISTRATION_COLUMNS) == {*REGISTRATION_KEYS, "extra", "pop", "sensor"}
    assert _ingest.MEDIA_KEYS == MEDIA_KEYS
    assert set(_ingest.CDR_COLUMNS) <= {c.name for c in _models.Cdr.__table__.columns}
    registration = {c.name for c in _models.Registration.__table__.columns}
    assert set(_ingest.REGISTRATION_COLUMNS) <= registration
