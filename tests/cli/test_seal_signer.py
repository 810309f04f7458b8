"""Which key signs the writer's day seals: the export's variables, else [access]."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from voiplog.config import AccessConfig
from voiplog.export import signing
from voiplog.wiring import WiringError
from voiplog.wiring.sinks import _seal_signer


def _key_pair(tmp_path, name):
    key, cert = signing.new_key_and_certificate(name, None, 30, dt.datetime.now(dt.UTC))
    (tmp_path / f"{name}.key").write_bytes(key)
    (tmp_path / f"{name}.crt").write_bytes(cert)
    return str(tmp_path / f"{name}.key"), str(tmp_path / f"{name}.crt")


def test_the_pop_configs_access_key_signs_the_seals(tmp_path, monkeypatch):
    monkeypatch.delenv("VOIPLOG_SIGNING_KEY", raising=False)
    monkeypatch.delenv("VOIPLOG_SIGNING_CERT", raising=False)
    assert _seal_signer(AccessConfig()) is None
    key, cert = _key_pair(tmp_path, "pop")
    signer = _seal_signer(AccessConfig(signing_key=key, signing_cert=cert))
    assert signer.certificate_pem == Path(cert).read_bytes()


def test_the_variables_win_over_the_config(tmp_path, monkeypatch):
    key, cert = _key_pair(tmp_path, "pop")
    env_key, env_cert = _key_pair(tmp_path, "env")
    monkeypatch.setenv("VOIPLOG_SIGNING_KEY", env_key)
    monkeypatch.setenv("VOIPLOG_SIGNING_CERT", env_cert)
    signer = _seal_signer(AccessConfig(signing_key=key, signing_cert=cert))
    assert signer.certificate_pem == Path(env_cert).read_bytes()


def test_a_bad_configured_key_is_refused_naming_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("VOIPLOG_SIGNING_KEY", raising=False)
    monkeypatch.delenv("VOIPLOG_SIGNING_CERT", raising=False)
    (tmp_path / "bad.key").write_text("not a key")
    _key, cert = _key_pair(tmp_path, "pop")
    with pytest.raises(WiringError) as refused:
        _seal_signer(AccessConfig(signing_key=str(tmp_path / "bad.key"), signing_cert=cert))
    assert refused.value.status == 2
    assert "[access] signing_key, signing_cert" in str(refused.value)
