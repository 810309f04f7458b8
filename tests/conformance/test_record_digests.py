"""The records of known captures, pinned: a change that alters any record says so.

For each capture, the SHA-256 of the JSON lines `voiplog replay` writes for it
(no POP config, as a new user replays) is kept in tests/data/record_digests.json:
generated captures (a SIP+RTP capture of bench/gencapture.py and an app-call mix
of tests/appcraft.py, made here from fixed seeds) always, the shared corpus and
the app captures of scripts/fetch-app-captures when they are there. A
restructuring must leave every digest as it is; a change of behaviour updates
them, and its commit says which records changed and why:

    python -m tests.conformance.test_record_digests --update

The records are the same whichever implementation runs the hot path: the
check runs again with the compiled extensions off (VOIPLOG_NO_EXTENSIONS=1,
in a process of its own, since the choice is made at import), or, where
they were not built, the one run is the pure-Python one already.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conformance.test_app_captures import CAPTURES as APP_CAPTURES
from tests.conformance.test_corpus import CORPUS
from voiplog.cli.main import cli

DIGESTS = Path(__file__).resolve().parents[1] / "data" / "record_digests.json"


def _generated(directory: Path) -> dict[str, Path]:
    from bench.gencapture import generate
    from tests import appcraft

    sip_rtp = directory / "sip-rtp.pcap"
    generate(sip_rtp, calls_concurrent=40, packets=60_000, seed=7, write_sidecar=False)
    frames, _crafted = appcraft.mix(seed=3, calls=28, traps=14)
    app_mix = directory / "app-mix.pcap"
    appcraft.write_pcap(app_mix, frames)
    return {"sip-rtp.pcap": sip_rtp, "app-mix.pcap": app_mix}


def _sets(directory: Path) -> dict[str, dict[str, Path]]:
    sets = {"generated": _generated(directory)}
    if (CORPUS / "pcaps").is_dir():
        sets["corpus"] = {p.name: p for p in sorted((CORPUS / "pcaps").iterdir())}
    if (APP_CAPTURES / ".complete").is_file():
        sets["app_captures"] = {
            p.name: p
            for p in sorted(APP_CAPTURES.iterdir())
            if p.is_file() and not p.name.startswith((".", "COPYING"))
        }
    return sets


def digest(capture: Path, out: Path) -> str:
    result = CliRunner().invoke(
        cli,
        ["replay", str(capture), "--store", "none", "--jsonl", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _ndpi() -> str | None:
    from voiplog.ndpi import load

    try:
        load().close()
    except Exception as exc:
        return str(exc)
    return None


def _changed(directory: Path) -> list[str]:
    """The captures whose records no longer have their pinned digest."""
    pinned = json.loads(DIGESTS.read_text())
    changed = []
    for name, captures in _sets(directory).items():
        assert sorted(captures) == sorted(pinned[name]), f"{name}: other captures than pinned"
        for capture_name, path in captures.items():
            if digest(path, directory / "out.jsonl") != pinned[name][capture_name]:
                changed.append(f"{name}/{capture_name}")
    return changed


def test_the_records_of_known_captures_are_unchanged(tmp_path):
    missing = _ndpi()
    if missing is not None:
        pytest.skip(f"libndpi: {missing} (the digests are of records named by nDPI)")
    changed = _changed(tmp_path)
    assert changed == [], "records changed; if meant, update the digests (see the docstring)"


def test_the_pure_python_path_gives_the_same_records():
    from voiplog._extensions import STATUS

    if "compiled" not in STATUS.values():
        pytest.skip("compiled extensions not built: the test above ran the pure-Python path")
    missing = _ndpi()
    if missing is not None:
        pytest.skip(f"libndpi: {missing} (the digests are of records named by nDPI)")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "VOIPLOG_NO_EXTENSIONS": "1"}
    check = [sys.executable, "-m", "tests.conformance.test_record_digests", "--check"]
    result = subprocess.run(check, cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def _update() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        directory = Path(work)
        pinned = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
        for name, captures in _sets(directory).items():
            pinned[name] = {
                capture_name: digest(path, directory / "out.jsonl")
                for capture_name, path in captures.items()
            }
        DIGESTS.parent.mkdir(exist_ok=True)
        DIGESTS.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
        print(f"{DIGESTS}: {', '.join(f'{k} {len(v)}' for k, v in pinned.items())}")


def _check() -> None:
    import tempfile

    from voiplog._extensions import STATUS

    with tempfile.TemporaryDirectory() as work:
        changed = _changed(Path(work))
    print(f"hot path: {STATUS}")
    if changed:
        sys.exit(f"records changed: {', '.join(changed)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        _update()
    elif sys.argv[1:] == ["--check"]:
        _check()
    else:
        sys.exit(__doc__)
