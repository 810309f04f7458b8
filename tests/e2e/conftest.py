from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.pcapwriter import write_pcap
from voiplog.cli.main import cli


class Replayer:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.n = 0

    def write(self, frames, name: str | None = None, **kw) -> Path:
        self.n += 1
        path = self.tmp_path / (name or f"capture{self.n}.pcap")
        write_pcap(path, frames, **kw)
        return path

    def run(self, *captures: Path, config: str | None = None, args: tuple[str, ...] = ()):
        out = self.tmp_path / f"out{self.n}.jsonl"
        cmd = ["replay", *map(str, captures), "--store", "none", "--jsonl", str(out), *args]
        if config is not None:
            cfg = self.tmp_path / f"pop{self.n}.toml"
            cfg.write_text(config)
            cmd += ["--config", str(cfg)]
        result = CliRunner().invoke(cli, cmd, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        self.last_output = result.output
        return [json.loads(line) for line in out.read_text().splitlines()]

    def records(self, frames, **kw):
        return self.run(
            self.write(frames, **{k: v for k, v in kw.items() if k != "config"}),
            config=kw.get("config"),
        )


@pytest.fixture
def replayer(tmp_path: Path) -> Replayer:
    return Replayer(tmp_path)
