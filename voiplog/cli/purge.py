"""`voiplog purge`: drop records past the retention period, legal holds excepted."""

from __future__ import annotations

import datetime as dt

import click


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="POP config file (TOML)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=1),
    metavar="DAYS",
    help="Purge records older than DAYS (default: store.retention_days of the config).",
)
@click.option(
    "--before",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="DATE",
    help="Purge records from before DATE (YYYY-MM-DD, UTC midnight).",
)
@click.option(
    "--lock-timeout",
    "lock_timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait at most this long for each lock (another purge, a partition in use).",
)
def purge(
    config_path: str | None, dry_run: bool, older_than: float | None, before, lock_timeout: float
) -> None:
    """Drop whole day partitions older than the cutoff, never a bulk DELETE.

    A day is dropped once all of it lies before the cutoff. Records matching an
    active legal hold are first copied into the held-records table and survive.
    Prints the plan (partitions, row counts, held records); a real purge also
    writes a purge-log row (when, who, cutoff, partitions, rows).
    """
    from voiplog.cli._store import open_store, os_user
    from voiplog.store import purge as retention

    if older_than is not None and before is not None:
        raise click.UsageError("give --older-than or --before, not both")
    with open_store(config_path, admin=True) as store:
        now = dt.datetime.now(dt.UTC)
        if before is not None:
            cutoff = retention.cutoff_for(before=before.date())
        else:
            days = older_than if older_than is not None else store.config.store.retention_days
            cutoff = retention.cutoff_for(older_than_days=days, now=now)
        if cutoff > now:
            click.echo(f"voiplog: purge: cutoff {cutoff.isoformat()} is in the future", err=True)
            raise SystemExit(2)
        plan = retention.make_plan(store.engine, cutoff)
        if dry_run:
            click.echo("dry run, nothing changed:")
            for line in plan.lines():
                click.echo(line)
            return
        try:
            done = retention.execute(
                store.engine, plan, os_user=os_user(), lock_timeout_s=lock_timeout
            )
        except (retention.SealMismatchError, retention.PurgeLockError) as exc:
            click.echo(f"voiplog: purge: {exc}", err=True)
            raise SystemExit(1) from None
        for line in done.lines():
            click.echo(line)
