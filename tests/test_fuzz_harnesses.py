"""The fuzz harnesses run: each accepts its own seeds and random inputs within its invariant.

The fuzzing itself (``python fuzz/run.py --seconds N``) is too long for a test run;
this keeps the harnesses working as the code under them changes.
"""

from __future__ import annotations

import importlib
import random

import pytest

pytest.importorskip("atheris")

from fuzz.run import HARNESSES, invariant


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_accepts_its_seeds_and_random_input(name):
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    seeds = list(module.seeds())
    assert seeds
    rng = random.Random(name)
    for seed in seeds:
        module.test_one(seed)
        for _ in range(20):
            mutated = bytearray(seed)
            for _ in range(rng.randint(1, 8)):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            module.test_one(bytes(mutated[: rng.randint(0, len(mutated))]))
    module.test_one(b"")


@pytest.mark.parametrize("name", HARNESSES)
def test_harness_states_its_invariant_first(name):
    text = invariant(name)
    assert text and "never" in text
