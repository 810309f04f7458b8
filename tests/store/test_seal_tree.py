"""The Merkle tree of day seals: the root from a day's leaves end to end is the root
from the list of them, and every leaf's path leads to it."""

from __future__ import annotations

import hashlib

import pytest

from voiplog.store import seal


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 13, 1000])
def test_the_root_of_the_leaves_end_to_end_is_that_of_their_list(count):
    leaves = [hashlib.sha256(str(n).encode()).digest() for n in range(count)]
    assert seal.merkle_root(b"".join(leaves)) == seal.merkle_root(leaves)
    for index in range(0, count, max(1, count // 7)):
        path = seal.inclusion_path(leaves, index)
        assert seal.root_from_path(leaves[index], path) == seal.merkle_root(leaves)
