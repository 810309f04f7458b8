"""What every harness shares: seeding the corpus, starting atheris, splitting inputs.

A harness is a script whose first docstring line states its invariant, with
``seeds()`` (real messages and frames to start from) and ``test_one(data)`` (one
input: anything outside the invariant raises and atheris reports it with the input
saved). Run one alone from the repository root with
``python -m fuzz.fuzz_sip CORPUS_DIR -max_total_time=60``,
or all of them with ``python fuzz/run.py --seconds N``.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_seeds(corpus: Path, seeds: Iterable[bytes]) -> int:
    """Put each seed in `corpus` (named by its hash); returns how many were new."""
    corpus.mkdir(parents=True, exist_ok=True)
    new = 0
    for seed in seeds:
        path = corpus / hashlib.sha1(seed).hexdigest()
        if not path.exists():
            path.write_bytes(seed)
            new += 1
    return new


def fuzz_main(test_one: Callable[[bytes], None], seeds: Callable[[], Iterable[bytes]]) -> None:
    """Seed the corpus directories named on the command line, then fuzz."""
    import atheris

    for arg in sys.argv[1:]:
        if not arg.startswith("-"):
            write_seeds(Path(arg), seeds())
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


def chunks(data: bytes, sizes: bytes) -> list[bytes]:
    """Cut `data` into pieces whose lengths are taken from the bytes of `sizes`."""
    out = []
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size + 1])
        pos += size + 1
    if pos < len(data):
        out.append(data[pos:])
    return out
