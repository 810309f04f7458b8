"""`voiplog store seal|verify|prove|check-proof`: the day seals of the record tables.

The writer seals each day once it is over (when its indexes are built);
`seal` does the same at once, for the days still due. `verify` recomputes the
days from their records and names every day, and every record of it, that no
longer matches its seal, and every broken link of the seal chain. `prove`
prints one record's inclusion proof against its day's seal (JSON), which
stays checkable after the day is purged (`purge_log.seals`): `check-proof`
checks one with no database, as whoever holds it would.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from voiplog.cli.request import CONFIG, _fail, refusals_in_one_line


def _connection(config_path):
    return refusals_in_one_line(config_path, "store")


@click.group()
def store() -> None:
    """Day seals: Merkle roots of each day's records, chained and signed."""


def _day(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        _fail(f"--day {value!r} is not a date (YYYY-MM-DD)", 2)


@store.command("seal")
@CONFIG
@click.option("--key", "key_path", envvar="VOIPLOG_SIGNING_KEY", type=click.Path(dir_okay=False), help="Sign the seals with this key (PEM); else $VOIPLOG_SIGNING_KEY.")  # fmt: skip
@click.option("--cert", "cert_path", envvar="VOIPLOG_SIGNING_CERT", type=click.Path(dir_okay=False), help="Its certificate (PEM); else $VOIPLOG_SIGNING_CERT.")  # fmt: skip
def seal_now(config_path, key_path, cert_path) -> None:
    """Seal the days that are over and not sealed, or took records since their seal."""
    from voiplog.store import seal

    signer = _signer(key_path, cert_path)
    with _connection(config_path) as (connection, _):
        made = seal.seal_closed_days(connection, dt.datetime.now(dt.UTC).date(), signer)
    for sealed in made:
        click.echo(
            f"{sealed.day}: sealed as version {sealed.version}, {sealed.records} records, "
            f"root {sealed.root}" + (", signed" if signer else "")
        )
    if not made:
        click.echo("no day due for sealing")


def _signer(key_path, cert_path):
    if not key_path and not cert_path:
        return None
    if not key_path or not cert_path:
        _fail("signing the seals needs both --key and --cert", 2)
    from voiplog.export import signing

    try:
        return signing.load_signer(Path(key_path), Path(cert_path))
    except signing.SigningError as exc:
        _fail(str(exc), 2)


@store.command("verify")
@CONFIG
@click.option("--day", "day_text", help="Verify this day (YYYY-MM-DD) only.")
@click.option("--all", "every", is_flag=True, help="Verify every sealed day still stored (the default).")  # fmt: skip
def verify(config_path, day_text, every) -> None:
    """Recompute days from their records; name every day and record that no longer match
    their seal and every broken link of the seal chain (exit 1 then)."""
    from voiplog.store import seal

    if day_text and every:
        _fail("--day and --all exclude each other", 2)
    day = _day(day_text)
    with _connection(config_path) as (connection, _):
        report = seal.verify(connection, [day] if day else None)
    for note in report.notes:
        click.echo(note)
    for finding in report.findings:
        click.echo(finding.line())
    summary = (
        f"{report.days_checked} days, {report.records_checked} records and "
        f"{report.seals_checked} seal rows checked (records hashed by {report.hashed_by})"
    )
    if not report.ok:
        _fail(f"store verify: {len(report.findings)} findings; {summary}")
    click.echo(f"all match their seals: {summary}")


@store.command("prove")
@CONFIG
@click.argument("uid")
def prove(config_path, uid) -> None:
    """Print the inclusion proof of record UID against its day's seal (JSON)."""
    from voiplog.store import seal

    with _connection(config_path) as (connection, _):
        try:
            proof = seal.prove(connection, uid)
        except seal.ProofError as exc:
            _fail(f"store prove: {exc}")
    click.echo(json.dumps(proof, indent=2, ensure_ascii=False))


@store.command("check-proof")
@click.argument("proof_path", metavar="PROOF", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--record", "record_path", type=click.Path(), help="The record as exported: a JSON object, JSON lines (a lawful-access run's output) or an evidence bundle (directory or zip); the one with the proof's uid is compared with the row proven.")  # fmt: skip
@click.option("--root", help="The root the seal must have (64 hex digits): the one a purge log kept for the day, or read off its seal row.")  # fmt: skip
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False), help="The POP's certificate (PEM or DER) the seal must be signed with.")  # fmt: skip
def check_proof(proof_path, record_path, root, cert_path) -> None:
    """Check an inclusion proof (as `store prove` prints it; - for standard input) with no
    database: the row hashes to its leaf, the path leads to the seal's root, the seal's
    signature; with the options, against a root, a certificate and the exported record.
    Exit 0 when all hold, 1 when one does not, 2 for a file that is not what it should be."""
    from voiplog.store import proof_check

    def read(path: str, what: str) -> bytes:
        try:
            return Path(path).read_bytes() if path != "-" else click.open_file("-", "rb").read()
        except OSError as exc:
            _fail(f"store check-proof: {what} {path}: {exc.strerror or exc}", 2)

    source = "standard input" if proof_path == "-" else proof_path
    try:
        proof = proof_check.load_proof(read(proof_path, "proof"), source)
        record = None if record_path is None else _exported_record(record_path, proof["uid"], read)
    except proof_check.ProofFileError as exc:
        _fail(f"store check-proof: {exc}", 2)
    if root is not None and not proof_check.HASH_HEX.fullmatch(root.lower()):
        _fail(f"store check-proof: --root {root!r} is not 64 hex digits", 2)
    certificate = None if cert_path is None else read(cert_path, "certificate")
    report = proof_check.examine(proof, root, certificate, record)
    for line in report.held:
        click.echo(f"ok: {line}")
    for line in report.failed:
        click.echo(f"FAILED: {line}")
    if not report.ok:
        _fail(f"store check-proof: {len(report.failed)} of the checks failed for record {proof['uid']}")  # fmt: skip
    click.echo(f"the proof holds: record {proof['uid']} is one of the records sealed for {proof['seal']['day']}")  # fmt: skip


def _exported_record(path: str, uid: str, read) -> dict:
    from voiplog.export import bundle
    from voiplog.store import proof_check

    if Path(path).is_dir() or path.endswith(".zip"):
        try:
            files = bundle.read(Path(path))
        except bundle.BundleError as exc:
            raise proof_check.ProofFileError(str(exc)) from None
        if bundle.RECORDS not in files:
            raise proof_check.ProofFileError(f"{path}: no {bundle.RECORDS} in the bundle")
        return proof_check.find_record(files[bundle.RECORDS], f"{path}:{bundle.RECORDS}", uid)
    return proof_check.find_record(read(path, "record file"), path, uid)
