"""What several subcommands share: loading the POP settings the pipeline needs."""

from __future__ import annotations

import os

import click

from voiplog.wiring import PipelineParts

# The top-level keys of the POP config (`voiplog.config.PopConfig`): a variable
# VOIPLOG_<KEY>, or VOIPLOG_<KEY>__<...>, in any case, overrides one of them.
# The other VOIPLOG_* variables (VOIPLOG_DATABASE_URL, VOIPLOG_NO_EXTENSIONS...)
# set nothing the pipeline reads.
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
_PREFIX = "voiplog_"


def overrides_config() -> bool:
    """Whether a variable of the environment overrides a key of the POP config."""
    for variable in os.environ:
        name = variable.lower()
        if name.startswith(_PREFIX) and name[len(_PREFIX) :].split("__", 1)[0] in CONFIG_KEYS:
            return True
    return False


def load_pipeline_parts(config_path: str | None) -> PipelineParts:
    """What the config file and VOIPLOG_* variables give the pipeline; exit 2 when
    the config is invalid or a source it names cannot be read.

    With neither a file nor a variable that overrides the config there is nothing
    to validate, and the defaults are used without loading the validation
    machinery (a replay of a small capture then starts in a fraction of the time).
    """
    if config_path is None and not overrides_config():
        return PipelineParts()
    from voiplog.config import ConfigError, load_config
    from voiplog.wiring import WiringError, pipeline_parts

    try:
        return pipeline_parts(load_config(config_path))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
    except WiringError as exc:
        click.echo(f"voiplog: {exc}", err=True)
    raise SystemExit(2)
