"""`voiplog audit list|verify|checkpoint|review|prune`: the append-only audit trail."""

from __future__ import annotations

import click

from voiplog.cli.request import CONFIG, _fail, refusals_in_one_line


def _connection(config_path):
    return refusals_in_one_line(config_path, "audit")


@click.group()
def audit() -> None:
    """The audit trail: every request step, run, hold, purge and refusal, hash-chained."""


def _since(value):
    from voiplog.store.access import RequestError, parse_moment

    if value is None:
        return None
    try:
        return parse_moment(value, "--since")
    except RequestError as exc:
        _fail(str(exc), 2)


@audit.command("list")
@CONFIG
@click.option("--since", help="Only entries from this time on (ISO 8601 with zone; a date is 00:00 UTC).")  # fmt: skip
@click.option("--case", "case_ref", help="Only entries of this case reference.")
@click.option("--request", "request_id", type=int, help="Only entries of this request.")
def list_events(config_path, since, case_ref, request_id) -> None:
    """List audit entries, oldest first."""
    from voiplog.store import audit as trail

    with _connection(config_path) as (connection, _):
        rows = trail.events(connection, _since(since), case_ref, request_id)
    if not rows:
        click.echo("no audit entries")
    for row in rows:
        click.echo(trail.describe(*row))


@audit.command("verify")
@CONFIG
@click.option("--checkpoint", "checkpoint_text", help="SEQ:HASH printed by `audit checkpoint` earlier, kept off the server.")  # fmt: skip
def verify(config_path, checkpoint_text) -> None:
    """Recompute the hash chain; name the first row that was altered, removed or rewritten."""
    from voiplog.store import audit as trail

    checkpoint = None
    if checkpoint_text:
        try:
            checkpoint = trail.Checkpoint.parse(checkpoint_text)
        except ValueError as exc:
            _fail(str(exc), 2)
    with _connection(config_path) as (connection, _):
        verdict = trail.verify(connection, checkpoint)
    if not verdict.ok:
        _fail(f"audit verify: {verdict.message}")
    click.echo(verdict.message)


@audit.command("checkpoint")
@CONFIG
def checkpoint(config_path) -> None:
    """Print the head of the chain (SEQ:HASH) to keep off the server, e.g. in the case file."""
    from voiplog.store import audit as trail

    with _connection(config_path) as (connection, _):
        head = trail.checkpoint(connection)
    if head is None:
        _fail("the audit trail is empty")
    click.echo(f"{head[0]}\t{head[1].isoformat()}")


@audit.command("review")
@CONFIG
@click.option("--sample", "share", type=click.FloatRange(0, 1, min_open=True), default=0.2, show_default=True, help="Share of entries to draw.")  # fmt: skip
@click.option("--since", help="Draw from entries since this time.")
@click.option("--seed", type=int, help="Seed of the draw, to repeat it.")
def review(config_path, share: float, since, seed) -> None:
    """A random share of the entries, for the periodic check regulators ask for."""
    from voiplog.store import audit as trail

    with _connection(config_path) as (connection, _):
        rows = trail.events(connection, _since(since))
    picked = trail.sample(rows, share, seed)
    click.echo(f"{len(picked)} of {len(rows)} entries drawn for review")
    for row in picked:
        click.echo(trail.describe(*row))


@audit.command("prune")
@CONFIG
@click.option("--days", type=click.IntRange(min=1), help="Days of entries kept (default: store.audit_retention_days).")  # fmt: skip
def prune(config_path, days) -> None:
    """Remove the entries older than the audit retention (admin role), in one piece.

    The newest entry always stays, and the pruning is itself an entry: a chain
    checkpointed before (`audit checkpoint`) still verifies from that checkpoint.
    """
    from voiplog.cli.request import _who

    with _connection(config_path) as (connection, config):
        keep = days or config.store.audit_retention_days
        user, host = _who()
        with connection.cursor() as cursor:
            cursor.execute("SELECT voiplog_audit_prune(%s, %s, %s)", (keep, user, host))
            removed = cursor.fetchone()[0]
        connection.commit()
    click.echo(f"{removed} audit entries older than {keep} days removed")
