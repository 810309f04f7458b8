"""Which VOIPLOG_* variables override the POP config: the one rule, read without
loading the config's validation machinery.

A variable overrides a key of the config when it is named after one of its
top-level keys (`voiplog.config.PopConfig`), whole or followed by ``__`` and a key
within it, in any case, as pydantic-settings reads them. The other VOIPLOG_*
variables (VOIPLOG_DATABASE_URL, VOIPLOG_NO_EXTENSIONS...) set none.
"""

from __future__ import annotations

import os

ENV_PREFIX = "VOIPLOG_"

# The top-level keys of `PopConfig` (a test keeps them equal).
CONFIG_KEYS = frozenset(
    {
        "pop",
        "sensor",
        "sip",
        "calls",
        "media_sessions",
        "reassembly",
        "subscriber_networks",
        "store",
        "access",
        "enrichment",
        "capture",
        "metrics",
        "hep",
        "daemon",
    }
)
_PREFIX = ENV_PREFIX.lower()


def overrides_config() -> bool:
    """Whether a variable of the environment overrides a key of the POP config."""
    for variable in os.environ:
        name = variable.lower()
        if name.startswith(_PREFIX) and name[len(_PREFIX) :].split("__", 1)[0] in CONFIG_KEYS:
            return True
    return False
