"""What `voiplog replay --store none` loads before its first packet: only what it uses.

Each test runs a replay in a fresh interpreter and lists the modules it loaded.
Loading pydantic-settings, OpenSSL's hashes or the store's wiring costs start-up
time that a replay with no environment override, no capture password and no
store never needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.pcapwriter import write_pcap
from tests.sipcraft import T0, make_dialog, sorted_frames

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "config" / "example-pop.toml"


def _loaded_by_replay(tmp_path, *options: str, env: dict[str, str] | None = None) -> set[str]:
    d = make_dialog(7)
    d.basic_answered(T0, talk_s=0.5)
    capture = tmp_path / "call.pcap"
    write_pcap(capture, sorted_frames(d))
    code = (
        "import json, sys\n"
        "from voiplog.cli.main import cli\n"
        "try:\n"
        "    cli(sys.argv[1:], prog_name='voiplog')\n"
        "except SystemExit as exc:\n"
        "    if exc.code:\n"
        "        raise\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("VOIPLOG_")}
    environment.update(env or {})
    result = subprocess.run(
        [sys.executable, "-c", code, "replay", *options, "--store", "none", str(capture)],
        capture_output=True,
        text=True,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["disposition"] == "answered"
    return set(json.loads(result.stderr.splitlines()[-1]))


def test_without_a_config_no_validation_hashing_or_store_is_loaded(tmp_path):
    loaded = _loaded_by_replay(tmp_path)
    assert not loaded & {
        "pydantic",
        "pydantic_settings",
        "voiplog.config",
        "hashlib",
        "hmac",
        "voiplog.wiring.store",
    }


def test_a_variable_of_no_config_key_loads_no_validation(tmp_path):
    loaded = _loaded_by_replay(tmp_path, env={"VOIPLOG_DATABASE_URL": "postgresql://nowhere/none"})
    assert not loaded & {"pydantic", "pydantic_settings", "voiplog.config"}


def test_an_override_without_a_config_is_validated(tmp_path):
    loaded = _loaded_by_replay(tmp_path, env={"voiplog_calls__linger_s": "3"})
    assert "pydantic_settings" in loaded


def test_the_keys_looked_for_are_the_config_keys(monkeypatch):
    from voiplog._overrides import CONFIG_KEYS, overrides_config
    from voiplog.config import PopConfig

    assert set(PopConfig.model_fields) == CONFIG_KEYS
    for name in list(os.environ):
        if name.upper().startswith("VOIPLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VOIPLOG_DATABASE_URL", "postgresql://nowhere/none")
    monkeypatch.setenv("VOIPLOG_CALLSX", "1")
    assert not overrides_config()
    for variable in ("VOIPLOG_CALLS__LINGER_S", "voiplog_pop", "Voiplog_Hep__Ports"):
        monkeypatch.setenv(variable, "1")
        assert overrides_config()
        monkeypatch.delenv(variable)


def test_a_config_without_overrides_does_not_load_pydantic_settings(tmp_path):
    loaded = _loaded_by_replay(
        tmp_path,
        "--config",
        str(EXAMPLE_CONFIG),
        env={"VOIPLOG_DATABASE_URL": "postgresql://nowhere/none"},  # a variable of no key
    )
    assert "voiplog.config" in loaded
    assert "pydantic_settings" not in loaded


def test_an_override_loads_pydantic_settings(tmp_path):
    loaded = _loaded_by_replay(
        tmp_path, "--config", str(EXAMPLE_CONFIG), env={"VOIPLOG_CALLS__LINGER_S": "3"}
    )
    assert "pydantic_settings" in loaded
