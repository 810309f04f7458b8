"""RFC 4475 / RFC 5118 torture messages, each in a UDP datagram, through `voiplog replay`.

Valid messages are counted as SIP messages, invalid ones as named parse errors
(the kinds `tests/sip/test_torture.py` expects), the exit code is 0 and nothing
escapes as a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from tests.pcapwriter import write_pcap
from tests.sip.test_torture import CORPUS, EXPECTED
from tests.sipcraft import T0, udp_frame
from voiplog.capture import open_capture
from voiplog.pipeline import Pipeline

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not CORPUS.is_dir(), reason="torture corpus absent"),
]


@pytest.fixture(scope="module")
def torture_capture(tmp_path_factory):
    frames = []
    for n, name in enumerate(sorted(EXPECTED)):
        message = (CORPUS / name).read_bytes()
        frames.append((T0 + n * 1000, udp_frame("192.0.2.1", 5060, "192.0.2.2", 5060, message)))
    path = tmp_path_factory.mktemp("torture") / "torture.pcap"
    write_pcap(path, frames)
    return path


def test_replay_counts_every_message(torture_capture):
    pipeline = Pipeline(lambda record: None)
    with open_capture(torture_capture) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    stats = pipeline.stats
    expected_errors = Counter(e.kind for e in EXPECTED.values() if e.kind)
    parsed = sum(1 for e in EXPECTED.values() if e.kind is None)
    assert stats.sip_messages == parsed
    for kind, count in expected_errors.items():
        assert stats.parse_errors[kind] == count, kind
    assert stats.packets == len(EXPECTED)


def test_replay_cli_exits_cleanly(torture_capture):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "voiplog",
            "replay",
            str(torture_capture),
            "--store",
            "none",
            "--jsonl",
            "-",
        ],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0
    assert b"Traceback" not in result.stderr
