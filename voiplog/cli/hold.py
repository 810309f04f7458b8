"""`voiplog hold add|list|release`: legal holds that keep records past retention."""

from __future__ import annotations

import ipaddress

import click

from voiplog.cli._time import moment

CONFIG = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="POP config file (TOML)."
)


@click.group()
def hold() -> None:
    """Legal holds: records matching an active hold survive every purge."""


@hold.command("add")
@CONFIG
@click.option("--case", "case_ref", required=True, help="Case reference of the order.")
@click.option("--number", help="Phone number or SIP user (caller or callee, registered user).")
@click.option("--ip", help="IP address or network (signalling, subscriber or media endpoint).")
@click.option("--subscriber", help="Subscriber id.")
@click.option("--from", "valid_from", required=True, help="Start of the window (ISO 8601, with zone; a date means 00:00 UTC).")  # fmt: skip
@click.option("--to", "valid_to", required=True, help="End of the window, exclusive (ISO 8601, with zone).")  # fmt: skip
def add(config_path, case_ref, number, ip, subscriber, valid_from, valid_to) -> None:
    """Hold the records of one number, IP or subscriber within a time window."""
    from sqlalchemy import text

    from voiplog.cli._store import open_store, os_user

    chosen = [(k, v) for k, v in (("number", number), ("ip", ip), ("subscriber", subscriber)) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --number, --ip, --subscriber")
    selector, value = chosen[0]
    if selector == "ip":
        try:
            value = str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise click.BadParameter(f"{value!r} is not an IP address or network", param_hint="--ip") from None  # fmt: skip
    start, end = moment(valid_from, "--from"), moment(valid_to, "--to")
    if end <= start:
        raise click.BadParameter("the window must end after it starts", param_hint="--to")
    with open_store(config_path, admin=True) as store, store.engine.begin() as connection:
        hold_id = connection.execute(
            text(
                "INSERT INTO legal_hold (case_ref, selector, value, valid_from, valid_to, created_by) "
                "VALUES (:case, :selector, :value, :start, :end, :who) RETURNING id"
            ),
            {
                "case": case_ref,
                "selector": selector,
                "value": value,
                "start": start,
                "end": end,
                "who": os_user(),
            },
        ).scalar_one()
    click.echo(f"hold {hold_id}: case {case_ref}, {selector} {value}, {start.isoformat()} .. {end.isoformat()}")  # fmt: skip


@hold.command("list")
@CONFIG
@click.option("--all", "show_all", is_flag=True, help="Include released holds.")
def list_holds(config_path, show_all: bool) -> None:
    """List holds and what each keeps.

    One line per hold under a header: id, case, selector, window, state, who made
    it, and the records it keeps: those in the store that it covers now (active
    holds), and the copies kept of covered records whose days were purged.
    """
    from voiplog.cli._store import open_store
    from voiplog.store.purge import hold_status

    with open_store(config_path, admin=True) as store, store.engine.connect() as connection:
        rows = hold_status(connection, include_released=show_all)
    if not rows:
        click.echo("no holds" if show_all else "no active holds (--all shows released ones)")
        return
    click.echo("id\tcase\tselector\twindow (UTC)\tstate\tcreated\tkeeps")
    for row in rows:
        state = (
            f"released {row.released_at.isoformat()} by {row.released_by}"
            if row.released_at
            else "active"
        )
        keeps = f"{row.copied} copies kept past purges"
        if row.in_store is not None:
            keeps = f"{row.in_store} records in the store, " + keeps
        click.echo(
            f"{row.id}\tcase {row.case_ref}\t{row.selector} {row.value}\t"
            f"{row.valid_from.isoformat()} .. {row.valid_to.isoformat()}\t{state}\t"
            f"{row.created_at.isoformat()} by {row.created_by}\t{keeps}"
        )


@hold.command("release")
@CONFIG
@click.argument("hold_id", type=int)
def release(config_path, hold_id: int) -> None:
    """Release hold HOLD_ID: its records follow normal retention again."""
    from sqlalchemy import text

    from voiplog.cli._store import open_store, os_user

    with open_store(config_path, admin=True) as store, store.engine.begin() as connection:
        released = connection.execute(
            text(
                "UPDATE legal_hold SET released_at = now(), released_by = :who "
                "WHERE id = :id AND released_at IS NULL RETURNING id"
            ),
            {"id": hold_id, "who": os_user()},
        ).scalar_one_or_none()
    if released is None:
        click.echo(f"voiplog: hold {hold_id}: no such active hold", err=True)
        raise SystemExit(2)
    click.echo(f"hold {hold_id} released; its kept records go at the next purge past their retention")  # fmt: skip
