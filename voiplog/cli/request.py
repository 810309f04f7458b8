"""`voiplog request add|approve|reject|list|show|cancel|run`: lawful-access requests.

Registered by one person, approved by another, run only while approved and
authorised, every step audited. The rules are the database's (migration
0005); this command collects the request, shows it back and prints results.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import os
import socket

import click

from voiplog.store.access import STATES

CONFIG = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="POP config file (TOML)."
)
REGION_VARIABLE = "VOIPLOG_REQUEST_REGION"


def _fail(message: str, code: int = 1):
    click.echo(f"voiplog: {message}", err=True)
    raise SystemExit(code)


@contextlib.contextmanager
def _connection(config_path):
    """A psycopg2 connection to the store, with the POP config (for retention)."""
    import psycopg2

    from voiplog.cli._store import open_store
    from voiplog.store.database import connect

    with open_store(config_path) as store:
        try:
            connection = connect(store.dsn)
        except psycopg2.OperationalError as exc:
            _fail(f"cannot connect: {str(exc).strip().splitlines()[0]}")
        try:
            yield connection, store.config
        finally:
            connection.close()


@contextlib.contextmanager
def refusals_in_one_line(config_path, command: str):
    """The store connection of a command whose every Postgres refusal (a missing privilege,
    a changed row) is one line naming the command, exit 1."""
    import psycopg2

    with _connection(config_path) as (connection, config):
        try:
            yield connection, config
        except psycopg2.Error as exc:
            first = str(exc.pgerror or exc).strip().splitlines()[0].removeprefix("ERROR:  ")
            _fail(f"{command}: {first}")


def _who() -> tuple[str, str]:
    from voiplog.cli._store import os_user

    return os_user(), socket.gethostname()


def _denied_by_postgres(connection, action: str, request_id, exc) -> None:
    """A privilege Postgres refused: roll back, leave the audit row, exit 1."""
    from voiplog.store import access

    connection.rollback()
    reason = str(getattr(exc, "pgerror", None) or exc).strip().splitlines()[0]
    user, host = _who()
    with contextlib.suppress(Exception):
        access.report_denied(connection, action, request_id, reason, user, host)
        connection.commit()
    _fail(f"{action} refused by the database: {reason}")


def _call(connection, action: str, subject, function, *args, **kwargs):
    """Run one access function in its own transaction; privilege refusals audited."""
    import psycopg2

    try:
        result = function(connection, *args, **kwargs)
        connection.commit()
        return result
    except psycopg2.errors.InsufficientPrivilege as exc:
        _denied_by_postgres(connection, action, subject, exc)
    except psycopg2.Error as exc:
        connection.rollback()
        _fail(
            f"{action}: {str(exc.pgerror or exc).strip().splitlines()[0].removeprefix('ERROR:  ')}"
        )


@click.group()
def request() -> None:
    """Lawful-access requests: register, approve (a second person), run, audited."""


@request.command("add")
@CONFIG
@click.option("--file", "request_file", type=click.Path(dir_okay=False), help="Request file (TOML, or JSON by suffix); flags override it.")  # fmt: skip
@click.option("--case", help="Case reference of the requesting agency.")
@click.option("--agency", help="Requesting agency.")
@click.option("--officer", help="Requesting officer's name.")
@click.option("--rank", help="Requesting officer's rank.")
@click.option("--legal-basis", help="Legal basis (statute and section).")
@click.option("--authorisation", help="Reference of the authorisation (court order, warrant).")
@click.option("--authorisation-doc", type=click.Path(dir_okay=False), help="The order document; its SHA-256 is registered.")  # fmt: skip
@click.option("--valid-from", help="Authorisation valid from (ISO 8601 with zone; default now).")
@click.option("--valid-until", help="Authorisation valid until (ISO 8601 with zone).")
@click.option("--from", "window_from", help="Start of the time window of the records (ISO 8601 with zone; a date is 00:00 UTC).")  # fmt: skip
@click.option("--to", "window_to", help="End of the window, exclusive.")
@click.option("--number", "numbers", multiple=True, help="Phone number (E.164 or a dial string of --region). Repeatable.")  # fmt: skip
@click.option("--role", type=click.Choice(["caller", "callee", "any"]), default="any", show_default=True, help="Which side the numbers are.")  # fmt: skip
@click.option("--region", help=f"Default region of dial strings (ISO 3166, e.g. IN); else ${REGION_VARIABLE}.")  # fmt: skip
@click.option("--national-prefix", help="National (trunk) prefix of dial strings, when not the region's own.")  # fmt: skip
@click.option("--ip", "ips", multiple=True, help="IP address (a network only with --broad). Repeatable.")  # fmt: skip
@click.option("--port", type=int, help="Port of the --ip addresses (needed for a shared CGNAT address).")  # fmt: skip
@click.option("--at", "at", help="Time the --ip address and port were seen (needed for a shared address).")  # fmt: skip
@click.option("--subscriber", "subscribers", multiple=True, help="Subscriber id.")
@click.option("--account", "accounts", multiple=True, help="Subscriber account.")
@click.option("--access-line", "access_lines", multiple=True, help="Access line.")
@click.option("--call-id", "call_ids", multiple=True, help="SIP Call-ID.")
@click.option("--app", "apps", multiple=True, help="App name of app calls (whatsapp, telegram...): narrows the other selectors.")  # fmt: skip
@click.option("--broad", is_flag=True, default=None, help="Allow prefixes and shared addresses without port and time; the approver must confirm it.")  # fmt: skip
@click.option("--max-records", type=int, help="Most records a run returns (default 10,000).")
@click.option("--delivery", help="Where results go (delivery address of the agency).")
def add(config_path, request_file, **flags) -> None:
    """Register a request; it then awaits approval by another person."""
    from voiplog.store import access

    try:
        fields = access.load_request_file(request_file) if request_file else {}
        mapping = {
            "case": "case", "agency": "agency", "officer": "officer.name", "rank": "officer.rank",
            "legal_basis": "legal_basis", "authorisation": "authorisation.reference",
            "valid_from": "authorisation.valid_from", "valid_until": "authorisation.valid_until",
            "window_from": "window.from", "window_to": "window.to", "region": "region",
            "national_prefix": "national_prefix", "broad": "broad", "max_records": "max_records",
            "delivery": "delivery",
        }  # fmt: skip
        for flag, key in mapping.items():
            if flags.get(flag) is not None:
                fields[key] = flags[flag]
        if flags["authorisation_doc"]:
            fields["authorisation.sha256"] = access.sha256_of(flags["authorisation_doc"])
        fields.setdefault("region", os.environ.get(REGION_VARIABLE) or None)
        texts = [
            (kind, value)
            for kind, values in (
                ("subscriber", flags["subscribers"]), ("account", flags["accounts"]),
                ("access_line", flags["access_lines"]), ("call_id", flags["call_ids"]),
                ("app", flags["apps"]),
            )
            for value in values
        ]  # fmt: skip
        if (flags["port"] is not None or flags["at"]) and not flags["ips"]:
            raise access.RequestError("--port and --at go with --ip")
        fields["selectors"] = list(fields.get("selectors") or []) + access.selectors_from_flags(
            flags["numbers"], flags["role"], flags["ips"], flags["port"], flags["at"], texts
        )
        spec = access.build_spec(fields)
    except access.RequestError as exc:
        _fail(str(exc), 2)
    user, host = _who()
    with _connection(config_path) as (connection, _):
        request_id = _call(connection, "request.add", None, access.register, spec, user, host)
    click.echo(f"request {request_id}: case {spec.case_ref}, awaiting approval by another person")
    for entered, searched in zip(spec.selectors_entered, spec.selectors, strict=True):
        click.echo(
            f"  {access.describe_entered(entered)}  ->  {access.describe_selector(searched)}"
        )
    if spec.broad:
        click.echo("  BROAD request: the approver must confirm it with --broad")


def _show(row: dict) -> None:
    from voiplog.store import access

    def when(value):
        return value.astimezone(dt.UTC).isoformat() if value else "-"

    click.echo(f"request {row['id']}: {row['state']}")
    click.echo(f"  case            {row['case_ref']}")
    officer = " ".join(x for x in (row["officer_rank"], row["officer_name"]) if x)
    click.echo(f"  agency          {row['agency']}, officer {officer}")
    click.echo(f"  legal basis     {row['legal_basis']}")
    sha = f", document SHA-256 {row['authorisation_sha256']}" if row["authorisation_sha256"] else ""
    click.echo(f"  authorisation   {row['authorisation_ref']}{sha}")
    click.echo(f"  valid           {when(row['valid_from'])} .. {when(row['valid_until'])}")
    click.echo(f"  window          {when(row['window_from'])} .. {when(row['window_to'])}")
    click.echo(f"  max records     {row['max_records']}{'   BROAD' if row['broad'] else ''}")
    if row["delivery"]:
        click.echo(f"  delivery        {row['delivery']}")
    click.echo("  selectors (as entered -> as searched):")
    for entered, searched in zip(row["selectors_entered"], row["selectors"], strict=True):
        click.echo(
            f"    {access.describe_entered(entered)}  ->  {access.describe_selector(searched)}"
        )
    click.echo(f"  registered      {when(row['registered_at'])} by {row['registered_by']} (OS user {row['registered_os_user']})")  # fmt: skip
    if row["approved_by"]:
        click.echo(f"  approved        {when(row['approved_at'])} by {row['approved_by']} (OS user {row['approved_os_user']})")  # fmt: skip
    if row["disclosed_at"]:
        click.echo(f"  disclosed       {when(row['disclosed_at'])}")
    if row["closed_at"]:
        who = (
            f" by {row['closed_by']} (OS user {row['closed_os_user']})" if row["closed_by"] else ""
        )
        why = f": {row['close_reason']}" if row["close_reason"] else ""
        click.echo(f"  closed          {when(row['closed_at'])}{who}{why}")


def _one(connection, request_id: int) -> dict:
    from voiplog.store import access

    _call(connection, "request.expire", None, access.expire, *_who())
    rows = _call(connection, "request.show", request_id, access.requests, request_id=request_id)
    if not rows:
        _fail(f"request {request_id}: no such request", 2)
    return rows[0]


@request.command("show")
@CONFIG
@click.argument("request_id", type=int)
def show(config_path, request_id: int) -> None:
    """Show request REQUEST_ID: who asked, on what authority, selectors as entered and searched."""
    with _connection(config_path) as (connection, _):
        _show(_one(connection, request_id))


@request.command("list")
@CONFIG
@click.option("--state", type=click.Choice(STATES), help="Only requests in this state.")
def list_requests(config_path, state) -> None:
    """List requests (requests whose authorisation ran out are marked expired first)."""
    from voiplog.store import access

    with _connection(config_path) as (connection, _):
        _call(connection, "request.expire", None, access.expire, *_who())
        rows = _call(connection, "request.list", None, access.requests, state=state)
    if not rows:
        click.echo("no requests")
    for row in rows:
        click.echo(
            f"{row['id']}\t{row['state']}\tcase {row['case_ref']}\t{row['agency']}\t"
            f"{row['window_from'].isoformat()} .. {row['window_to'].isoformat()}\t"
            f"valid until {row['valid_until'].isoformat()}\tregistered by {row['registered_by']}"
            + (f"\tapproved by {row['approved_by']}" if row["approved_by"] else "")
        )


def _decide(config_path, request_id: int, decision: str, reason=None, broad_seen=False) -> None:
    from voiplog.store import access

    user, host = _who()
    with _connection(config_path) as (connection, _):
        row = _one(connection, request_id)
        if decision == "approve":
            _show(row)
        refusal = _call(
            connection, f"request.{decision}", request_id, access.decide, request_id, decision,
            user, host, reason=reason, broad_seen=broad_seen,
        )  # fmt: skip
    if refusal:
        _fail(f"request {request_id}: {decision} refused: {refusal}")
    done = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[decision]
    click.echo(f"request {request_id} {done}")


@request.command("approve")
@CONFIG
@click.argument("request_id", type=int)
@click.option("--broad", "broad_seen", is_flag=True, help="Confirm approving a broad request (prefixes, shared addresses without port and time).")  # fmt: skip
def approve(config_path, request_id: int, broad_seen: bool) -> None:
    """Approve REQUEST_ID (not by the person who registered it)."""
    _decide(config_path, request_id, "approve", broad_seen=broad_seen)


@request.command("reject")
@CONFIG
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why it is rejected (kept with the request and audited).")  # fmt: skip
def reject(config_path, request_id: int, reason: str) -> None:
    """Reject REQUEST_ID (not by the person who registered it)."""
    _decide(config_path, request_id, "reject", reason=reason)


@request.command("cancel")
@CONFIG
@click.argument("request_id", type=int)
@click.option("--reason", help="Why it is cancelled.")
def cancel(config_path, request_id: int, reason) -> None:
    """Cancel REQUEST_ID: it can no longer be run."""
    _decide(config_path, request_id, "cancel", reason=reason)


CSV_COLUMNS = (
    "stored_in", "kind", "uid", "started_at", "call_id", "caller", "callee", "caller_ip",
    "caller_port", "callee_ip", "callee_port", "subscriber_ip", "direction", "answered_at",
    "ended_at", "duration_s", "disposition", "subscriber_id", "account", "access_line",
    "location", "app", "user", "contact_ip",
)  # fmt: skip


def _flat(record: dict) -> dict:
    subscriber = record.get("subscriber") if isinstance(record.get("subscriber"), dict) else {}
    app = record.get("app") if isinstance(record.get("app"), dict) else {}
    flat = {k: record.get(k) for k in CSV_COLUMNS}
    flat["started_at"] = record.get("started_at") or record.get("requested_at")
    flat["subscriber_id"] = subscriber.get("id")
    flat["account"] = subscriber.get("account")
    flat["access_line"] = subscriber.get("access_line")
    location = subscriber.get("location")
    flat["location"] = json.dumps(location, sort_keys=True) if location else None
    flat["app"] = app.get("name")
    return flat


def _table(records: list[dict]) -> None:
    columns = ("stored_in", "started_at", "kind", "caller", "callee", "duration_s",
               "disposition", "subscriber_id", "access_line", "location", "app")  # fmt: skip
    rows = [
        [("" if v is None else str(v)) for v in (_flat(r)[c] for c in columns)] for r in records
    ]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


@request.command("run")
@CONFIG
@click.argument("request_id", type=int)
@click.option("--count-only", is_flag=True, help="Only count the matching records (audited too).")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), help="Write the records as JSON lines to this file.")  # fmt: skip
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the records as CSV to this file.")  # fmt: skip
@click.option("--from", "narrow_from", help="Search only from this time (inside the approved window).")  # fmt: skip
@click.option("--to", "narrow_to", help="Search only up to this time (inside the approved window).")
def run(config_path, request_id: int, count_only, jsonl_path, csv_path, narrow_from, narrow_to) -> None:  # fmt: skip
    """Run approved request REQUEST_ID: calls, registrations, media/app sessions, held records."""
    from voiplog.store import access

    if jsonl_path and csv_path:
        _fail("give --jsonl or --csv, not both", 2)
    if count_only and (jsonl_path or csv_path):
        _fail("--count-only writes no file", 2)
    try:
        lo = access.parse_moment(narrow_from, "--from") if narrow_from else None
        hi = access.parse_moment(narrow_to, "--to") if narrow_to else None
    except access.RequestError as exc:
        _fail(str(exc), 2)
    target = os.path.abspath(jsonl_path or csv_path) if (jsonl_path or csv_path) else "terminal"
    user, host = _who()
    with _connection(config_path) as (connection, config):
        result = _call(
            connection, "request.count" if count_only else "request.run", request_id, access.run,
            request_id, user, host, count_only=count_only, delivery=None if count_only else target,
            retention_days=config.store.retention_days, narrow_from=lo, narrow_to=hi,
        )  # fmt: skip
    if not result.ok:
        _fail(f"request {request_id}: run refused: {result.reason}")
    status = result.status
    searched = " .. ".join(status["searched"])
    cut = (
        f"; cut at the maximum of {status['max_records']}: more records matched"
        if status["truncated"]
        else ""
    )
    summary = f"request {request_id}: {status['records']} records, {searched}{cut}"
    if count_only:
        click.echo(summary)
        return
    if jsonl_path:
        from voiplog.export.bundle import records_jsonl

        with open(jsonl_path, "wb") as out:
            out.write(records_jsonl(result.records))
    elif csv_path:
        with open(csv_path, "w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for record in result.records:
                writer.writerow(_flat(record))
    elif result.records:
        _table(result.records)
    click.echo(summary + (f" -> {target}" if target != "terminal" else ""))
    for record in result.records:
        for conflict in record.get("conflicts", ()):
            # Records arriving later under the same key with other content:
            # the store kept the first and shows the others beside it.
            click.echo(
                f"record {record['uid']}: other content arrived under its key at "
                f"{conflict['seen_at']} from {conflict['inserted_by']} (stored "
                f"sha256 {conflict['stored_sha256'][:16]}…, arrived {conflict['arrived_sha256'][:16]}…)",
                err=True,
            )
