"""What several subcommands share: loading the POP settings the pipeline needs."""

from __future__ import annotations

import click

from voiplog._overrides import overrides_config
from voiplog.wiring import PipelineParts


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
