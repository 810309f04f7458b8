"""Build, read and verify an evidence bundle.

Strategy: a bundle is built in memory as {file name: bytes} from the request
and the records of its run, so that every hash is taken of exactly the bytes
that are written, and a directory and a zip hold the same files. The
manifest (RFC 8785 canonical JSON) names the SHA-256 of every file but
itself and `hashes.txt`; `hashes.txt` names every file but itself, manifest
included, in the form `sha256sum -c` reads. The manifest's SHA-256 is the
bundle's: it is what the audit trail records. The manifest is signed
(`signing`): the signature and the certificate are files of the bundle too.

Verification reads a bundle back from a directory or a zip and reports each
problem in a line of its own, naming the file: changed, missing, extra, or a
manifest that no longer agrees with `hashes.txt`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import rfc8785

from voiplog.export import columns, report, signing, timestamp

FORMAT = "voiplog-evidence-bundle/1"
MANIFEST = "manifest.json"
HASHES = "hashes.txt"
RECORDS = "records.jsonl"
PROOFS = "proofs.jsonl"
REPORT = "report.html"
# A zip's entries carry a time; a fixed one keeps two zips of one bundle alike.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class BundleError(Exception):
    """A bundle that cannot be read at all (not a directory or zip, unreadable)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value: what is hashed and signed."""
    return rfc8785.dumps(value)


def _iso(value) -> str | None:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def records_jsonl(records: list[dict]) -> bytes:
    """One record per line, as `voiplog request run --jsonl` and `voiplog replay --jsonl` write them."""
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def request_section(request: dict) -> dict:
    """The request as registered and decided (a row of access_request), for the manifest."""
    return {
        "id": request["id"],
        "state": request["state"],
        "case_ref": request["case_ref"],
        "agency": request["agency"],
        "officer": {"name": request["officer_name"], "rank": request["officer_rank"]},
        "legal_basis": request["legal_basis"],
        "authorisation": {
            "reference": request["authorisation_ref"],
            "document_sha256": request["authorisation_sha256"],
            "valid_from": _iso(request["valid_from"]),
            "valid_until": _iso(request["valid_until"]),
        },
        "broad": request["broad"],
        "max_records": request["max_records"],
        "delivery": request["delivery"],
        "registered": {
            "at": _iso(request["registered_at"]),
            "db_role": request["registered_by"],
            "os_user": request["registered_os_user"],
        },
        "approved": {
            "at": _iso(request["approved_at"]),
            "db_role": request["approved_by"],
            "os_user": request["approved_os_user"],
        },
    }


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the audited run that produced the records reports."""

    at: dt.datetime
    db_role: str
    os_user: str
    host: str
    audit_seq: int
    records: int
    truncated: bool
    searched: list[str]
    answered_from: str | None


@dataclass(frozen=True, slots=True)
class Producer:
    """Where and by what the bundle is made."""

    software: str
    pop: str
    sensor: str
    local_zone: str


def build(
    request: dict,
    records: list[dict],
    run: RunFacts,
    producer: Producer,
    exported_at: dt.datetime,
    signer: signing.Signer,
    stamp: Callable[[bytes], bytes] | None = None,
    proofs: list[dict] | None = None,
) -> dict[str, bytes]:
    """Every file of the bundle, by name; `stamp` turns the signature into a time-stamp
    response; `proofs` (one per record, as `access.run` gives them) go in `PROOFS`."""
    zone = ZoneInfo(producer.local_zone)
    files: dict[str, bytes] = {RECORDS: records_jsonl(records)}
    counts = {RECORDS: len(records)}
    if proofs is not None:
        files[PROOFS], counts[PROOFS] = records_jsonl(proofs), len(proofs)
    for name, (table, rows) in columns.TABLES.items():
        files[name], counts[name] = columns.write_csv(table, rows(records, zone))
    manifest = {
        "format": FORMAT,
        "request": request_section(request),
        "selectors": {"entered": request["selectors_entered"], "searched": request["selectors"]},
        "window": {"from": _iso(request["window_from"]), "to": _iso(request["window_to"])},
        "run": {
            "at": _iso(run.at),
            "db_role": run.db_role,
            "os_user": run.os_user,
            "host": run.host,
            "audit_seq": run.audit_seq,
            "records": run.records,
            "truncated": run.truncated,
            "searched": run.searched,
            "answered_from": run.answered_from,
        },
        "export": {
            "at": _iso(exported_at),
            "software": producer.software,
            "pop": producer.pop,
            "sensor": producer.sensor,
            "local_zone": producer.local_zone,
        },
        "hash_algorithm": "SHA-256",
    }
    if proofs is not None:
        unproven = sum(1 for p in proofs if "unproven" in p)
        manifest["proofs"] = {"proven": len(proofs) - unproven, "unproven": unproven}
    files[REPORT] = report.render(manifest, records)
    manifest["files"] = {
        name: {"sha256": sha256(data), "bytes": len(data)}
        | ({"rows": counts[name]} if name in counts else {})
        for name, data in sorted(files.items())
    }
    files[MANIFEST] = canonical(manifest)
    files[signing.SIGNATURE] = signer.sign_detached(files[MANIFEST])
    files[signing.CERTIFICATE] = signer.certificate_pem
    if stamp is not None:
        files[timestamp.STAMP] = stamp(files[signing.SIGNATURE])
    files[HASHES] = hashes_text(files, manifest)
    return files


def hashes_text(files: dict[str, bytes], manifest: dict) -> bytes:
    """The hash list, worded to be attached to a hash certificate; `sha256sum -c` reads it."""
    request = manifest["request"]
    lines = [
        "# Hash values of the files of an evidence bundle",
        f"# Request {request['id']}, case {request['case_ref']}, {request['agency']};",
        f"# authorisation {request['authorisation']['reference']}.",
        f"# Produced by {manifest['export']['software']} at POP {manifest['export']['pop']}, "
        f"sensor {manifest['export']['sensor']}, at {manifest['export']['at']}.",
        "# Algorithm: SHA-256 (FIPS 180-4). Each line below gives the hash of one file",
        "# and its name; a copy of the files that yields the same hashes is bit for bit",
        "# identical to what was produced. Check with: sha256sum -c hashes.txt",
        f"# manifest.json lists the same hashes and is signed by the key of {signing.CERTIFICATE}",
        f"# ({signing.SIGNATURE}: a detached CMS signature, checked with",
        f"# openssl cms -verify -binary -inform DER -in {signing.SIGNATURE} -content manifest.json",
        f"# -CAfile {signing.CERTIFICATE} -out /dev/null).",
    ]
    if timestamp.STAMP in files:
        lines += [
            f"# {timestamp.STAMP} is an RFC 3161 time-stamp of {signing.SIGNATURE}, checked with",
            f"# openssl ts -verify -data {signing.SIGNATURE} -in {timestamp.STAMP} -CAfile TSA-CA.pem",
        ]
    lines += [f"{sha256(data)}  {name}" for name, data in sorted(files.items()) if name != HASHES]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write(files: dict[str, bytes], out: Path) -> Path:
    """To a new directory, or a zip when `out` ends in .zip; never over an existing path."""
    if out.exists():
        raise BundleError(f"{out} exists: give a new directory or zip file")
    if out.suffix == ".zip":
        with zipfile.ZipFile(out, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, _ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, files[name])
        return out
    out.mkdir(parents=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


def read(path: Path) -> dict[str, bytes]:
    """The files of a bundle directory or zip, by name."""
    try:
        if path.is_dir():
            return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
        with zipfile.ZipFile(path) as archive:
            return {i.filename: archive.read(i) for i in archive.infolist() if not i.is_dir()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise BundleError(f"{path}: not a bundle directory or zip ({exc})") from None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    intact: list[str] = field(default_factory=list)
    manifest: dict | None = None
    signer: str | None = None
    signed_at: dt.datetime | None = None
    stamped: timestamp.Stamp | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _parse_hashes(text: bytes) -> dict[str, str]:
    listed = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        digest, _, name = line.partition("  ")
        listed[name] = digest
    return listed


def _check_signature(files: dict[str, bytes], trusted_cert: bytes | None, report: Report) -> None:
    bundled = files.get(signing.CERTIFICATE)
    if signing.SIGNATURE not in files:
        report.problems.append(f"{signing.SIGNATURE}: missing")
        return
    if bundled is None:
        report.problems.append(f"{signing.CERTIFICATE}: missing")
    elif trusted_cert is not None and not signing.same_certificate(bundled, trusted_cert):
        report.problems.append(f"{signing.CERTIFICATE}: not the certificate given to check against")  # fmt: skip
    checked = signing.check_detached(files[signing.SIGNATURE], files[MANIFEST], trusted_cert)
    if checked.problem is not None:
        report.problems.append(f"{signing.SIGNATURE}: {checked.problem}")
        return
    if trusted_cert is None and bundled is not None and not signing.same_certificate(bundled, checked.certificate_pem):  # fmt: skip
        report.problems.append(f"{signing.CERTIFICATE}: changed (not the certificate that signed)")  # fmt: skip
    report.signer = signing.describe(checked.certificate_pem)
    report.signed_at = checked.signed_at
    report.intact.append(signing.SIGNATURE)


def _check_stamp(files: dict[str, bytes], trusted_tsa_cert: bytes | None, report: Report) -> None:
    if timestamp.STAMP not in files:
        if trusted_tsa_cert is not None:
            report.problems.append(f"{timestamp.STAMP}: missing (a time-stamp was to be checked)")
        return
    if signing.SIGNATURE not in files:
        return
    stamp = timestamp.check(
        files[timestamp.STAMP], files[signing.SIGNATURE], None, trusted_tsa_cert
    )
    if stamp.problem is not None:
        report.problems.append(f"{timestamp.STAMP}: {stamp.problem}")
        return
    report.stamped = stamp
    report.intact.append(timestamp.STAMP)


def verify(
    files: dict[str, bytes],
    trusted_cert: bytes | None = None,
    trusted_tsa_cert: bytes | None = None,
) -> Report:
    """The signature and time-stamp checked, every hash recomputed; each file intact, changed, missing or extra."""
    report = Report()
    if MANIFEST not in files:
        report.problems.append(f"{MANIFEST}: missing")
        return report
    # The signature covers the manifest's bytes, whatever they say.
    _check_signature(files, trusted_cert, report)
    _check_stamp(files, trusted_tsa_cert, report)
    try:
        manifest = json.loads(files[MANIFEST])
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{MANIFEST}: changed (not a bundle manifest)")
        return report
    report.manifest = manifest
    if canonical(manifest) != files[MANIFEST]:
        report.problems.append(f"{MANIFEST}: changed (not in canonical form)")
    for name in sorted(listed):
        if name not in files:
            report.problems.append(f"{name}: missing")
        elif sha256(files[name]) != listed[name].get("sha256"):
            report.problems.append(f"{name}: changed (SHA-256 differs from the manifest)")
        else:
            report.intact.append(name)
    if HASHES not in files:
        report.problems.append(f"{HASHES}: missing")
    else:
        hashed = _parse_hashes(files[HASHES])
        for name in sorted(hashed):
            if name in files and sha256(files[name]) != hashed[name]:
                report.problems.append(f"{name}: changed (SHA-256 differs from {HASHES})")
            elif name in listed and listed[name].get("sha256") != hashed[name]:
                report.problems.append(f"{HASHES}: changed (disagrees with the manifest on {name})")  # fmt: skip
        for name in sorted(set(files) - set(hashed) - {HASHES}):
            if name in listed or name in (
                MANIFEST,
                signing.SIGNATURE,
                signing.CERTIFICATE,
                timestamp.STAMP,
            ):
                report.problems.append(f"{HASHES}: changed ({name} is not listed)")
    known = set(listed) | {
        MANIFEST,
        HASHES,
        signing.SIGNATURE,
        signing.CERTIFICATE,
        timestamp.STAMP,
    }
    for name in sorted(set(files) - known):
        report.problems.append(f"{name}: extra (not part of the bundle)")
    if not any(p.startswith(f"{MANIFEST}:") for p in report.problems):
        report.intact.append(MANIFEST)
    return report
