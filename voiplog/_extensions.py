"""Which compiled extensions are in use: each has a pure-Python reference that runs
when the extension was not built or ``VOIPLOG_NO_EXTENSIONS=1`` is set.

`compiled(name)` imports a compiled module, or returns None (and says why in
`STATUS`, which `voiplog --version` prints).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

DISABLED = os.environ.get("VOIPLOG_NO_EXTENSIONS", "") not in ("", "0")

# module name -> "compiled", or why the pure-Python reference runs instead.
STATUS: dict[str, str] = {}


def compiled(name: str) -> ModuleType | None:
    """The compiled module `name`, or None when disabled or not built."""
    if DISABLED:
        STATUS[name] = "pure Python (VOIPLOG_NO_EXTENSIONS is set)"
        return None
    try:
        module = importlib.import_module(name)
    except ImportError:
        STATUS[name] = "pure Python (not built)"
        return None
    STATUS[name] = "compiled"
    return module
