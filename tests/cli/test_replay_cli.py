"""`voiplog replay` and `voiplog config check` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from tests.pcapwriter import write_pcap
from tests.sipcraft import T0, make_dialog, sorted_frames
from voiplog.cli.main import cli


def _capture(tmp_path, name="calls.pcap"):
    d = make_dialog(50)
    d.basic_answered(T0, talk_s=0.5)
    path = tmp_path / name
    offsets = write_pcap(path, sorted_frames(d))
    return path, offsets


def test_jsonl_to_stdout(tmp_path):
    path, _ = _capture(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--store", "none", "--jsonl", "-"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.decode().splitlines()
    assert json.loads(line)["disposition"] == "answered"
    assert result.stderr == b""


def test_corrupt_record_is_skipped_with_a_warning(tmp_path):
    path, offsets = _capture(tmp_path)
    data = bytearray(path.read_bytes())
    # Damage the captured-length field of the fifth record: far beyond any snaplen.
    data[offsets[4] + 8 : offsets[4] + 12] = (0x7FFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    result = subprocess.run(
        [sys.executable, "-m", "voiplog", "replay", str(path), "--store", "none", "--jsonl", "-"],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0
    stderr = result.stderr.decode()
    assert f"record at byte {offsets[4]}" in stderr
    assert str(path) in stderr
    assert "Traceback" not in stderr
    assert json.loads(result.stdout.decode().splitlines()[0])["call_id"] == "call-50@craft.example"


def test_missing_capture_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["replay", str(tmp_path / "nope.pcap")])
    assert result.exit_code == 2
    assert "nope.pcap" in result.output


def test_not_a_capture_is_a_usage_error(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello\n")
    result = CliRunner().invoke(cli, ["replay", str(bogus)])
    assert result.exit_code == 2
    assert "notes.txt" in result.output


def test_bad_config_names_file_key_and_reason(tmp_path):
    path, _ = _capture(tmp_path)
    cfg = tmp_path / "pop.toml"
    cfg.write_text('[calls]\nlinger_s = "soon"\n')
    result = CliRunner().invoke(cli, ["replay", str(path), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "pop.toml" in result.output and "calls.linger_s" in result.output


def test_unknown_config_key_is_rejected(tmp_path):
    cfg = tmp_path / "pop.toml"
    cfg.write_text("[calls]\nlingr_s = 3\n")
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 2
    assert "calls.lingr_s" in result.output


def test_config_check_prints_effective_config_with_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("VOIPLOG_CALLS__LINGER_S", "4")
    cfg = tmp_path / "pop.toml"
    cfg.write_text('pop = "ams1"\n[calls]\nlinger_s = 9\n')
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    effective = json.loads(result.stdout)
    assert effective["pop"] == "ams1"
    assert effective["calls"]["linger_s"] == 4.0


def test_config_check_says_who_names_apps_and_warns_without_ndpi(tmp_path, monkeypatch):
    cfg = tmp_path / "pop.toml"
    cfg.write_text('pop = "ams1"\n[media_sessions]\napp_classifier = "builtin"\n')
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 0
    assert f"{cfg}: media_sessions.app_classifier: builtin traits" in result.stderr
    assert "warning" not in result.stderr

    monkeypatch.setenv("VOIPLOG_NDPI_LIBRARY", str(tmp_path / "no-such-libndpi.so"))
    cfg.write_text('pop = "ams1"\n')
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 0
    assert "builtin traits (nDPI unavailable)" in result.stderr
    assert "app calls (WhatsApp, Telegram, Zoom...) whose media shows no RTP header will be " in (
        result.stderr
    )
    assert "no-such-libndpi.so" in result.stderr


def test_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config" / "example-pop.toml"
    result = CliRunner().invoke(cli, ["config", "check", str(example)])
    assert result.exit_code == 0, result.output


def test_summary_table(tmp_path):
    path, _ = _capture(tmp_path)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        cli, ["replay", str(path), "--store", "none", "--jsonl", str(out), "--summary"]
    )
    assert result.exit_code == 0, result.output
    assert "answered" in result.output
    assert "SIP messages" in result.output


def test_unreadable_packets_are_named_by_file_and_number(tmp_path):
    from tests.sipcraft import udp_frame

    d = make_dialog(51)
    d.basic_answered(T0, talk_s=0.1)
    frames = sorted_frames(d)
    bad = udp_frame("10.0.0.1", 5060, "10.0.0.2", 5060, b"INVITE nonsense\r\n\r\n")
    frames.insert(2, (frames[1][0] + 1, bad))
    path = tmp_path / "with-garbage.pcap"
    write_pcap(path, frames)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voiplog",
            "--log-level",
            "debug",
            "replay",
            str(path),
            "--store",
            "none",
            "--jsonl",
            "-",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0
    stderr = result.stderr.decode()
    assert f"{path}: packet 3: sip.bad_start_line" in stderr
    assert "unreadable packets: 1 (sip.bad_start_line 1)" in stderr
    assert json.loads(result.stdout.decode().splitlines()[0])["disposition"] == "answered"


def test_config_check_hides_the_database_password(tmp_path, monkeypatch):
    cfg = tmp_path / "pop.toml"
    cfg.write_text('[store]\ndatabase_url = "postgresql://writer:s3cret@db.example.net/voiplog"\n')
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert "postgresql://writer:***@db.example.net/voiplog" in result.output
    monkeypatch.setenv("VOIPLOG_STORE__DATABASE_URL", "host=db user=w password=s3cret dbname=v")
    result = CliRunner().invoke(cli, ["config", "check", str(cfg)])
    assert "s3cret" not in result.output and "password=***" in result.output
