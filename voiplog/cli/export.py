"""`voiplog export REQUEST_ID --out PATH` and `voiplog export verify PATH`: evidence bundles.

An export runs a request that has been run before (it is `disclosed`) once
more through `voiplog_request_run` (as `voiplog_request_run_proven`, which
adds each record's inclusion proof against its day's seal), the only way
records leave the database, so that the records read for the bundle have
their own audit row, whose number the manifest names. What was delivered (the manifest's SHA-256, which
is the bundle's, the files and their row counts, the target) is then written
as an `export` audit row by `voiplog_export_record`, in the same transaction:
the read and the record of what was delivered are committed together or not
at all. Only then is the bundle written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import click

from voiplog.cli.keys import CERT_VARIABLE, KEY_VARIABLE
from voiplog.cli.request import CONFIG, _connection, _denied_by_postgres, _fail, _who

LOCAL_ZONE_VARIABLE = "VOIPLOG_LOCAL_ZONE"


class _ExportGroup(click.Group):
    """`export REQUEST_ID ...` makes a bundle; `export verify PATH` checks one."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "make", self.commands["make"], args
        return super().resolve_command(ctx, args)


@click.group(cls=_ExportGroup)
def export() -> None:
    """Evidence bundles: `export REQUEST_ID --out DIR|FILE.zip`, `export verify PATH`."""


def _zone(name: str | None, configured: str | None) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = name or os.environ.get(LOCAL_ZONE_VARIABLE) or configured or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"local zone {name!r} is not an IANA time zone (such as Asia/Kolkata)", 2)
    return name


@export.command("make", hidden=True)
@CONFIG
@click.argument("request_id", type=int)
@click.option("--out", "out_path", required=True, type=click.Path(), help="New directory, or a file ending in .zip.")  # fmt: skip
@click.option("--key", "key_path", envvar=KEY_VARIABLE, type=click.Path(dir_okay=False), help=f"Signing key (PEM: ECDSA P-256/P-384 or RSA); else ${KEY_VARIABLE}, else [access] signing_key.")  # fmt: skip
@click.option("--cert", "cert_path", envvar=CERT_VARIABLE, type=click.Path(dir_okay=False), help=f"Its certificate (PEM); else ${CERT_VARIABLE}, else [access] signing_cert.")  # fmt: skip
@click.option("--local-zone", help=f"IANA zone of the local times in the tables and report (else ${LOCAL_ZONE_VARIABLE}, else [access] local_zone, else UTC).")  # fmt: skip
@click.option("--tsa-url", help="RFC 3161 time-stamping authority that stamps the signature (else [access] tsa_url; none: no stamp).")  # fmt: skip
def make(
    config_path, request_id: int, out_path: str, key_path, cert_path, local_zone, tsa_url
) -> None:
    """Export run request REQUEST_ID as a signed evidence bundle."""
    import psycopg2

    from voiplog import __version__
    from voiplog.cli._store import load_pop_config
    from voiplog.export import bundle, signing, timestamp
    from voiplog.store import access

    access_config = load_pop_config(config_path).access
    key_path = key_path or access_config.signing_key
    cert_path = cert_path or access_config.signing_cert
    if not key_path or not cert_path:
        _fail(f"no signing key: give --key and --cert (or ${KEY_VARIABLE}, ${CERT_VARIABLE}, or [access] signing_key and signing_cert); `voiplog keys init` makes them", 2)  # fmt: skip
    try:
        signer = signing.load_signer(Path(key_path), Path(cert_path))
    except signing.SigningError as exc:
        _fail(str(exc), 2)

    out = Path(out_path).absolute()
    if out.exists():
        _fail(f"{out} exists: give a new directory or zip file", 2)
    zone = _zone(local_zone, access_config.local_zone)
    tsa_url = tsa_url or access_config.tsa_url
    stamps: list[timestamp.Stamp] = []

    def stamp(signature: bytes) -> bytes:
        response, stamped = timestamp.obtain(tsa_url, signature, access_config.tsa_timeout_s)
        stamps.append(stamped)
        return response

    user, host = _who()
    with _connection(config_path) as (connection, config):
        try:
            found = access.requests(connection, request_id=request_id)
            if not found:
                _fail(f"request {request_id}: no such request")
            if found[0]["state"] != "disclosed":
                _fail(f"request {request_id} is {found[0]['state']}: only a request that has been run (voiplog request run) is exported")  # fmt: skip
            with connection.cursor() as cursor:
                cursor.execute("SELECT session_user, now()")
                db_role, run_at = cursor.fetchone()
            result = access.run(
                connection, request_id, user, host, delivery=f"export {out}",
                retention_days=config.store.retention_days, proofs=True,
            )  # fmt: skip
            if not result.ok:
                connection.commit()  # the refusal's audit row stays
                _fail(f"request {request_id}: export refused: {result.reason}")
            (request,) = access.requests(connection, request_id=request_id)
            status = result.status
            facts = bundle.RunFacts(
                at=run_at, db_role=db_role, os_user=user, host=host,
                audit_seq=status["audit_seq"], records=status["records"],
                truncated=status["truncated"], searched=status["searched"],
                answered_from=status.get("answered_from"),
            )  # fmt: skip
            producer = bundle.Producer(f"voiplog {__version__}", config.pop, config.sensor, zone)
            try:
                files = bundle.build(
                    request, result.records, facts, producer, dt.datetime.now(dt.UTC), signer,
                    stamp if tsa_url else None, result.proofs,
                )  # fmt: skip
            except timestamp.TimestampError as exc:
                connection.rollback()
                _fail(f"export of request {request_id}: {exc}; nothing was exported")
            digest = bundle.sha256(files[bundle.MANIFEST])
            manifest = json.loads(files[bundle.MANIFEST])
            export_seq = access.record_export(
                connection, request_id, status["audit_seq"], digest, str(out),
                {name: entry.get("rows") for name, entry in manifest["files"].items()}, user, host,
            )  # fmt: skip
            connection.commit()
        except psycopg2.errors.InsufficientPrivilege as exc:
            _denied_by_postgres(connection, "export", request_id, exc)
        except psycopg2.Error as exc:
            connection.rollback()
            reason = str(exc.pgerror or exc).strip().splitlines()[0].removeprefix("ERROR:  ")
            _fail(f"export of request {request_id}: {reason}")
    try:
        bundle.write(files, out)
    except (OSError, bundle.BundleError) as exc:
        _fail(f"{out}: {exc} (the export is audited as sha256:{digest})")
    click.echo(
        f"request {request_id}: {status['records']} records -> {out}\n"
        f"manifest.json sha256:{digest} (audit rows {status['audit_seq']} run, {export_seq} export)"
    )
    for stamped in stamps:
        click.echo(f"signature time-stamped at {stamped.at.isoformat()} by {stamped.authority}")


@export.command("verify")
@click.argument("path", type=click.Path(exists=True))
@click.option("--cert", "cert_path", type=click.Path(exists=True, dir_okay=False), help="Check the signature against this certificate (PEM or DER) instead of the bundle's own.")  # fmt: skip
@click.option("--tsa-cert", "tsa_cert_path", type=click.Path(exists=True, dir_okay=False), help="Check the time-stamp against this authority certificate (PEM or DER); the bundle must then carry one.")  # fmt: skip
def verify(path: str, cert_path, tsa_cert_path) -> None:
    """Check the signature (and time-stamp) of bundle PATH (a directory or zip), recompute every
    hash and check each record's inclusion proof against the record beside it."""
    from voiplog.export import bundle, signing, timestamp

    try:
        files = bundle.read(Path(path))
        trusted = signing.as_pem(Path(cert_path).read_bytes()) if cert_path else None
        trusted_tsa = signing.as_pem(Path(tsa_cert_path).read_bytes()) if tsa_cert_path else None
    except (bundle.BundleError, signing.SigningError) as exc:
        _fail(str(exc), 2)
    report = bundle.verify(files, trusted, trusted_tsa)
    proofs = None
    if bundle.PROOFS in files and bundle.RECORDS in files:
        from voiplog.store import proof_check

        proofs = proof_check.check_bundle(files)
        report.problems += proofs.problems
    for problem in report.problems:
        click.echo(f"{path}: {problem}")
    if not report.ok:
        raise SystemExit(1)
    click.echo(f"{path}: intact: {len(report.intact)} files, every SHA-256 as the manifest has it")
    click.echo(f"{path}: manifest.json signed by {report.signer}")
    if proofs is not None:
        signers = "; ".join(sorted(proofs.signers)) or "not signed"
        click.echo(f"{path}: {bundle.PROOFS}: {proofs.proven} records proven to be in their day's seal (seals: {signers})")  # fmt: skip
        for line in proofs.unproven:
            click.echo(f"{path}: {bundle.PROOFS}: no proof for {line}")
    if report.stamped is not None:
        click.echo(f"{path}: {timestamp.STAMP}: signature time-stamped at {report.stamped.at.isoformat()} by {report.stamped.authority}")  # fmt: skip
