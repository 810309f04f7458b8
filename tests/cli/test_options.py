from __future__ import annotations

from voiplog.cli._common import load_pipeline_parts
from voiplog.config import load_config
from voiplog.wiring import PipelineParts


def test_defaults_without_config_match_the_validated_defaults(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("VOIPLOG_"):
            monkeypatch.delenv(key)
    light = load_pipeline_parts(None)
    assert light == PipelineParts()
    cfg = load_config(None)
    assert light.sip_ports == tuple(cfg.sip.ports)
    assert light.call_settings == cfg.calls.settings()
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    validated = load_pipeline_parts(str(empty))
    assert validated.sip_ports == light.sip_ports
    assert validated.call_settings == light.call_settings
    assert validated.lookup_subscriber is None


def test_an_override_in_lower_case_applies_without_a_config_file(monkeypatch):
    # The config reads VOIPLOG_* names in any case; without a file, the light
    # path must not take a lower-case override for no override at all.
    for key in list(__import__("os").environ):
        if key.upper().startswith("VOIPLOG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("voiplog_calls__max_open_calls", "1234")
    assert load_pipeline_parts(None).call_settings.max_open_calls == 1234
    assert load_config(None).calls.max_open_calls == 1234


def test_reassembly_defaults_match_the_pipeline_defaults(tmp_path):
    from voiplog.settings import ReassemblySettings

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_pipeline_parts(str(empty)).reassembly == ReassemblySettings()


def test_reassembly_section_reaches_the_pipeline(tmp_path):
    cfg = tmp_path / "pop.toml"
    cfg.write_text(
        "[reassembly]\n"
        "fragment_timeout_s = 2.5\n"
        "fragment_max_datagrams = 10\n"
        "tcp_max_connections = 7\n"
        "tcp_gap_timeout_s = 0.5\n"
        "max_stream_buffer = 8192\n"
        "mirror_dedup_ms = 1.5\n"
    )
    settings = load_pipeline_parts(str(cfg)).reassembly
    assert settings.fragments.timeout_us == 2_500_000
    assert settings.fragments.max_datagrams == 10
    assert settings.tcp.max_connections == 7
    assert settings.tcp.gap_timeout_us == 500_000
    assert settings.max_stream_buffer == 8192
    assert settings.mirror_window_us == 1500


def test_bad_reassembly_key_names_it(tmp_path, capsys):
    import pytest

    cfg = tmp_path / "pop.toml"
    cfg.write_text("[reassembly]\nmirror_dedup_ms = -1\ntcp_max_conections = 3\n")
    with pytest.raises(SystemExit) as exc:
        load_pipeline_parts(str(cfg))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "reassembly.mirror_dedup_ms" in err and "reassembly.tcp_max_conections" in err
