from __future__ import annotations

from voiplog.cli._common import PipelineOptions, load_pipeline_options
from voiplog.config import load_config


def test_defaults_without_config_match_the_validated_defaults(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("VOIPLOG_"):
            monkeypatch.delenv(key)
    light = load_pipeline_options(None)
    assert light == PipelineOptions()
    cfg = load_config(None)
    assert light.sip_ports == tuple(cfg.sip.ports)
    assert light.call_settings == cfg.calls.settings()
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    validated = load_pipeline_options(str(empty))
    assert validated.sip_ports == light.sip_ports
    assert validated.call_settings == light.call_settings
    assert validated.classify is None
