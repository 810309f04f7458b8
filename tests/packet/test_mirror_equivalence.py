"""The compiled `SourceCopies` (`_cmirror.pyx`) against the pure-Python reference:
the same answers, message after message, and the same table sizes."""

from __future__ import annotations

import importlib
import random

import pytest

from voiplog._extensions import DISABLED
from voiplog.packet import mirror
from voiplog.packet.mirror import SourceCopies

try:
    _cmirror = importlib.import_module("voiplog.packet._cmirror")
except ImportError:  # not built
    _cmirror = None

pytestmark = pytest.mark.skipif(_cmirror is None, reason="compiled extensions not built")

_SOURCES = ["capture", ("hep", 1), ("hep", 2), 7]


def _run(copies, steps) -> list:
    out = []
    for key, body, source, ts in steps:
        out.append((copies.copy(key, body, source, ts), len(copies)))
    return out


def _steps(rng: random.Random, count: int, spread: int) -> list:
    """Messages that repeat (copies, retransmissions, echoes), from several sources,
    at times that move on by small and large steps (and sometimes pause)."""
    bodies = [f"INVITE {n}".encode() for n in range(12)]
    ts = rng.randrange(0, 10**12)
    steps = []
    for _ in range(count):
        body = rng.choice(bodies)
        where = rng.choice([b"a", b"b"])
        key = (where, 5060, b"c", 5060, body)
        ts += rng.choice([0, 1, 300, 5_000, 9_999, 10_000, 400_000, spread, 3 * spread])
        steps.append((key, body, rng.choice(_SOURCES), ts))
    return steps


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(
    "window_us, max_entries, echo_us",
    [(2_000_000, 100_000, 10_000), (50_000, 100_000, 10_000), (2_000_000, 7, 10_000),
     (1_000, 3, 0), (5_000_000, 100_000, 1_000_000)],
)  # fmt: skip
def test_same_answers(seed, window_us, max_entries, echo_us):
    rng = random.Random(seed)
    steps = _steps(rng, 400, window_us)
    reference = SourceCopies(window_us, max_entries, echo_us)
    compiled = _cmirror.SourceCopies(window_us, max_entries, echo_us)
    assert _run(compiled, steps) == _run(reference, steps)


def test_same_refusals():
    for args in ((0,), (1, 0), (1, 1, -1)):
        with pytest.raises(ValueError):
            SourceCopies(*args)
        with pytest.raises(ValueError):
            _cmirror.SourceCopies(*args)


def test_every_answer_is_met():
    steps = _steps(random.Random(1), 400, 2_000_000)
    answers = {answer for answer, _ in _run(SourceCopies(2_000_000), steps)}
    assert answers == {None, "source", "echo"}


def test_the_pipeline_uses_the_compiled_one_unless_disabled():
    expected = SourceCopies if DISABLED else _cmirror.SourceCopies
    assert mirror.SourceCopiesInUse is expected
