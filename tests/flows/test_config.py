"""The [media_sessions] section: defaults, file, environment, and refused values."""

from __future__ import annotations

import pytest

from voiplog.cli._common import load_pipeline_parts
from voiplog.config import ConfigError, load_config
from voiplog.flows import FlowSettings
from voiplog.wiring import PipelineParts


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("VOIPLOG_"):
            monkeypatch.delenv(key)


def test_defaults_equal_the_classifier_defaults(tmp_path):
    assert load_config(None).media_sessions.settings() == FlowSettings()
    assert PipelineParts().flow_settings == FlowSettings()
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_pipeline_parts(str(empty)).flow_settings == FlowSettings()


def test_file_and_environment_reach_the_pipeline_options(tmp_path, monkeypatch):
    path = tmp_path / "pop.toml"
    path.write_text(
        "[media_sessions]\nenabled = false\nidle_gap_s = 12.5\nmin_packets = 8\n"
        "sip_tls_ports = [5061, 443, 5061]\n"
    )
    monkeypatch.setenv("VOIPLOG_MEDIA_SESSIONS__MAX_SESSIONS", "77")
    settings = load_pipeline_parts(str(path)).flow_settings
    assert settings == FlowSettings(
        enabled=False, idle_gap_s=12.5, min_packets=8, sip_tls_ports=(443, 5061), max_sessions=77
    )


def test_example_config_documents_every_key():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "config" / "example-pop.toml").read_text()
    section = text.split("[media_sessions]", 1)[1].split("\n[", 1)[0]
    for key in FlowSettings.__dataclass_fields__:
        assert f"\n{key} = " in section, key


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("min_packets = 1", "media_sessions.min_packets"),
        ("idle_gap_s = 0", "media_sessions.idle_gap_s"),
        ("sip_tls_ports = [70000]", "media_sessions.sip_tls_ports"),
        ("max_session = 5", "media_sessions.max_session"),
    ],
)
def test_bad_values_name_the_key(tmp_path, body, where):
    path = tmp_path / "pop.toml"
    path.write_text(f"[media_sessions]\n{body}\n")
    with pytest.raises(ConfigError, match=f"pop.toml: {where}"):
        load_config(path)


def test_a_bad_environment_override_is_blamed_on_the_variable(tmp_path, monkeypatch):
    path = tmp_path / "pop.toml"
    path.write_text('pop = "ams1"\n[calls]\nlinger_s = 9\n')
    monkeypatch.setenv("VOIPLOG_CALLS__LINGER_S", "abc")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (line,) = str(caught.value).splitlines()
    assert line.startswith("environment variable VOIPLOG_CALLS__LINGER_S: calls.linger_s: ")
    monkeypatch.delenv("VOIPLOG_CALLS__LINGER_S")
    path.write_text('pop = "ams1"\n[calls]\nlinger_s = "abc"\n')
    with pytest.raises(ConfigError, match=r"pop\.toml: calls\.linger_s: "):
        load_config(path)
