"""`voiplog export` and `voiplog export verify` on a request run on a real Postgres."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.store.test_access_run import WINDOW, fill
from voiplog.cli.main import cli
from voiplog.export import bundle, columns, signing

pytestmark = pytest.mark.postgres

DATA_FILES = (
    "calls.csv",
    "media.csv",
    "proofs.jsonl",
    "records.jsonl",
    "registrations.csv",
    "report.html",
    "subscribers.csv",
)


def voiplog(dsn: str | None, *args: str, env: dict | None = None):
    env = ({"VOIPLOG_DATABASE_URL": dsn} if dsn else {}) | (env or {})
    return CliRunner().invoke(cli, list(args), env=env)


def make_keys(directory, name: str = "POP Test-1 evidence export") -> dict:
    """A key and certificate from `voiplog keys init`, as the environment names them."""
    directory.mkdir(exist_ok=True)
    env = {"VOIPLOG_SIGNING_KEY": str(directory / "key.pem"), "VOIPLOG_SIGNING_CERT": str(directory / "cert.pem")}  # fmt: skip
    made = voiplog(None, "keys", "init", "--name", name, "--organisation", "Example ISP", env=env)
    assert made.exit_code == 0, made.output
    return env


def disclosed_request(people, store_dsn, tmp_path, *selector: str) -> str:
    """A request registered, approved by a second person and run; its id."""
    fill(store_dsn, tmp_path)
    added = voiplog(
        people["requester"], "request", "add", "--case", "K-9", "--agency", "State Police",
        "--officer", "Meier", "--legal-basis", "s. 100g", "--authorisation", "AG 4 Gs 1/26",
        "--valid-until", "2999-01-01", "--from", WINDOW[0], "--to", WINDOW[1], *selector,
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    request_id = added.output.split(":")[0].split()[1]
    assert voiplog(people["approver"], "request", "approve", request_id).exit_code == 0
    assert voiplog(people["requester"], "request", "run", request_id, "--count-only").exit_code == 0
    return request_id


def test_a_bundle_holds_the_run_records_tables_hashes_and_manifest(exported, people, tmp_path):
    request_id, out, output = exported
    assert sorted(p.name for p in out.iterdir()) == sorted((*DATA_FILES, "hashes.txt", "manifest.json", "manifest.json.p7s", "certificate.pem"))  # fmt: skip
    # The records are those a run returns, line for line.
    again = tmp_path / "run.jsonl"
    assert voiplog(people["requester"], "request", "run", request_id, "--jsonl", str(again)).exit_code == 0  # fmt: skip
    assert (out / "records.jsonl").read_bytes() == again.read_bytes()
    records = [json.loads(line) for line in again.read_text().splitlines()]
    calls = [r for r in records if r["kind"] != "registration"]
    assert len(calls) == 5 and len(records) == 7

    manifest_bytes = (out / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    assert bundle.canonical(manifest) == manifest_bytes
    assert manifest["request"]["id"] == int(request_id)
    assert manifest["request"]["authorisation"]["reference"] == "AG 4 Gs 1/26"
    assert manifest["request"]["approved"]["db_role"].startswith("vl_approver_")
    assert manifest["run"]["db_role"].startswith("vl_requester_")
    assert manifest["selectors"]["entered"][0] == {"type": "number", "value": "022 1234 5678", "role": "any"}  # fmt: skip
    assert "02212345678" in manifest["selectors"]["searched"][0]["variants"]
    assert manifest["window"] == {"from": WINDOW[0].replace("Z", ".000000Z"), "to": WINDOW[1].replace("Z", ".000000Z")}  # fmt: skip
    assert manifest["files"]["records.jsonl"]["rows"] == 7
    assert manifest["files"]["calls.csv"]["rows"] == 5
    assert manifest["files"]["registrations.csv"]["rows"] == 2
    for name in DATA_FILES:
        assert manifest["files"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()  # fmt: skip

    # Tables: a documented header, one row per call, UTC and local times.
    with (out / "calls.csv").open(newline="", encoding="utf-8") as sheet:
        rows = list(csv.DictReader(sheet))
    assert list(rows[0]) == [c.name for c in columns.CALLS]
    assert [row["uid"] for row in rows] == [r["uid"] for r in calls]
    first = rows[0]
    assert first["started_at_utc"] == calls[0]["started_at"]
    assert first["started_at_local"].endswith("+05:30")
    subscribers = list(csv.DictReader((out / "subscribers.csv").open(newline="")))
    named = {r["subscriber"]["id"] for r in records if r.get("subscriber")}
    assert [row["subscriber_id"] for row in subscribers] == sorted(named)
    assert "sub-app" in named
    media = list(csv.DictReader((out / "media.csv").open(newline="")))
    assert {row["type"] for row in media} == {"rtp", "app_flow"}

    # hashes.txt is what sha256sum checks, and the audit trail has the manifest's hash.
    checked = subprocess.run(["sha256sum", "-c", "hashes.txt"], cwd=out, capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(DATA_FILES) + 3
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    assert digest in output
    trail = voiplog(people["auditor"], "audit", "list", "--case", "K-9").output
    export_line = next(line for line in trail.splitlines() if "\texport\tok\t" in line)
    assert f"manifest sha256:{digest} of run {manifest['run']['audit_seq']}" in export_line
    assert f"request {request_id}" in export_line and f"to {out}" in export_line

    # Each record's inclusion proof against its day's seal (the days are over: sealed).
    proofs = [json.loads(line) for line in (out / "proofs.jsonl").read_text().splitlines()]
    assert [(p["uid"], p["stored_in"]) for p in proofs] == [(r["uid"], r["stored_in"]) for r in records]  # fmt: skip
    # (a day of one record: its leaf is its root, the path empty)
    assert all("unproven" not in p and "path" in p for p in proofs), proofs
    assert manifest["proofs"] == {"proven": 7, "unproven": 0}
    assert "7 records proven to be among the sealed records of their day; 0 without a proof" in (out / "report.html").read_text()  # fmt: skip
    assert manifest["files"]["proofs.jsonl"]["rows"] == 7

    verified = voiplog(None, "export", "verify", str(out))
    assert verified.exit_code == 0, verified.output
    assert f"{out}: proofs.jsonl: 7 records proven to be in their day's seal (seals: not signed)" in verified.output  # fmt: skip
    # One line of it, checked on its own against the bundle's record.
    (tmp_path / "one.json").write_text(json.dumps(proofs[3]))
    checked = voiplog(
        None, "store", "check-proof", str(tmp_path / "one.json"), "--record", str(out)
    )
    assert checked.exit_code == 0, checked.output
    assert f"ok: the record given (uid {proofs[3]['uid']}) is the row proven" in checked.output


def test_a_proof_in_a_bundle_is_checked_against_the_record_beside_it(exported, tmp_path, keys):
    """A proof that does not hold is named even in a bundle whose hashes and signature do
    (as a faulty exporter would make it)."""
    from voiplog.store import proof_check

    _, out, _ = exported
    files = bundle.read(out)
    proofs = [json.loads(line) for line in files["proofs.jsonl"].splitlines()]
    records = [json.loads(line) for line in files["records.jsonl"].splitlines()]
    records[0]["callee"] = "+919999999999"
    proofs[1]["path"][0][1] = "00" * 32
    proofs[2] = {"uid": proofs[2]["uid"], "stored_in": proofs[2]["stored_in"], "unproven": "its day (2026-01-01) is not sealed yet"}  # fmt: skip
    files["records.jsonl"] = bundle.records_jsonl(records)
    files["proofs.jsonl"] = bundle.records_jsonl(proofs)
    report = proof_check.check_bundle(files)
    assert report.problems == [
        f"proofs.jsonl, line 1: record {records[0]['uid']}: the record given (uid {records[0]['uid']}) differs from the row proven",
        f"proofs.jsonl, line 2: record {records[1]['uid']}: its path leads to "
        + report.problems[1].split("its path leads to ")[1],
    ]  # fmt: skip
    assert report.problems[1].endswith(f"not to the root {proofs[1]['seal']['root']} of seal version 1 of {proofs[1]['seal']['day']} ({proofs[1]['seal']['records']} records)")  # fmt: skip
    assert report.unproven == [f"{proofs[2]['uid']}: its day (2026-01-01) is not sealed yet"]
    assert report.proven == 4
    files["proofs.jsonl"] = bundle.records_jsonl(proofs[:-1])
    report = proof_check.check_bundle(files)
    assert report.problems[-1] == f"proofs.jsonl: no line for record {records[-1]['uid']}"


def test_verify_names_every_changed_missing_and_extra_file(exported, tmp_path):
    _, out, _ = exported
    result = voiplog(None, "export", "verify", str(out))
    assert result.exit_code == 0 and "intact" in result.output

    def tampered(name: str, change) -> list[str]:
        copy = tmp_path / f"copy-{name}-{change.__name__}"
        shutil.copytree(out, copy)
        change(copy / name)
        result = voiplog(None, "export", "verify", str(copy))
        assert result.exit_code == 1
        return result.output.splitlines()

    def flip_a_byte(path):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    def remove(path):
        path.unlink()

    def add_a_neighbour(path):
        (path.parent / "notes.txt").write_text("added later")

    for name in DATA_FILES:
        lines = tampered(name, flip_a_byte)
        assert f"{name}: changed (SHA-256 differs from the manifest)" in " ".join(lines), lines
        assert any(f"{name}: missing" in line for line in tampered(name, remove))
    lines = tampered("manifest.json", flip_a_byte)
    assert any("manifest.json: changed" in line for line in lines)
    assert any("manifest.json.p7s: the signature does not match" in line for line in lines)
    assert any(
        "manifest.json.p7s: missing" in line for line in tampered("manifest.json.p7s", remove)
    )
    assert any("hashes.txt: missing" in line for line in tampered("hashes.txt", remove))
    assert any("notes.txt: extra" in line for line in tampered("calls.csv", add_a_neighbour))


def test_a_zip_bundle_verifies_and_an_existing_path_is_refused(people, store_dsn, tmp_path, keys):
    request_id = disclosed_request(people, store_dsn, tmp_path, "--subscriber", "sub-target")
    assert voiplog(people["requester"], "request", "run", request_id).exit_code == 0
    out = tmp_path / "bundle.zip"
    result = voiplog(people["requester"], "export", request_id, "--out", str(out), env=keys)
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as archive:
        assert "manifest.json" in archive.namelist()
    assert voiplog(None, "export", "verify", str(out)).exit_code == 0
    again = voiplog(people["requester"], "export", request_id, "--out", str(out), env=keys)
    assert again.exit_code == 2 and "exists" in again.output
    # The auditor may read the trail but has no run privilege: no export.
    denied = voiplog(people["auditor"], "export", request_id, "--out", str(tmp_path / "x"), env=keys)  # fmt: skip
    assert denied.exit_code == 1 and "export refused by the database" in denied.output
    assert "export\tdenied" in voiplog(people["auditor"], "audit", "list").output
    assert not (tmp_path / "x").exists()


def openssl(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)


def agency_check(bundle_dir, trusted: str = "certificate.pem") -> tuple[bool, bool]:
    """The README's check without voiplog: (hashes hold, signature holds)."""
    hashes = subprocess.run(["sha256sum", "-c", "--quiet", "hashes.txt"], cwd=bundle_dir, capture_output=True)  # fmt: skip
    signed = subprocess.run(
        "jq -r '.files | to_entries[] | \"\\(.value.sha256)  \\(.key)\"' manifest.json | sha256sum -c --quiet",
        shell=True, cwd=bundle_dir, capture_output=True,
    )  # fmt: skip
    signature = openssl(
        "cms", "-verify", "-binary", "-inform", "DER", "-in", "manifest.json.p7s",
        "-content", "manifest.json", "-CAfile", trusted, "-out", "/dev/null", cwd=bundle_dir,
    )  # fmt: skip
    verified = "Verification successful" in signature.stderr
    assert (signature.returncode == 0) == verified, signature
    return hashes.returncode == 0 and signed.returncode == 0, signature.returncode == 0


def test_openssl_and_sha256sum_check_a_bundle_and_catch_tampering(exported, tmp_path):
    _, out, _ = exported
    assert agency_check(out) == (True, True)
    fingerprint = openssl("x509", "-in", "certificate.pem", "-noout", "-fingerprint", "-sha256", cwd=out)  # fmt: skip
    verified = voiplog(None, "export", "verify", str(out))
    assert fingerprint.stdout.strip().split("=", 1)[1] in verified.output

    records = tmp_path / "records-changed"
    shutil.copytree(out, records)
    data = bytearray((records / "records.jsonl").read_bytes())
    data[10] ^= 0x01
    (records / "records.jsonl").write_bytes(bytes(data))
    assert agency_check(records) == (False, True)

    manifest = tmp_path / "manifest-changed"
    shutil.copytree(out, manifest)
    text = (manifest / "manifest.json").read_bytes().replace(b'"K-9"', b'"K-8"', 1)
    (manifest / "manifest.json").write_bytes(text)
    assert agency_check(manifest)[1] is False
    result = voiplog(None, "export", "verify", str(manifest))
    assert result.exit_code == 1 and "manifest.json.p7s: the signature does not match" in result.output  # fmt: skip


def test_a_bundle_signed_with_another_key_fails_against_the_isps_certificate(exported, tmp_path):
    _, out, _ = exported
    isp_cert = out / "certificate.pem"
    assert voiplog(None, "export", "verify", str(out), "--cert", str(isp_cert)).exit_code == 0
    # Someone re-signs a changed manifest with a key and certificate of their own.
    other = make_keys(tmp_path / "other", name="POP Test-1 evidence export")
    forged = tmp_path / "forged"
    shutil.copytree(out, forged)
    key_file, cert_file = other["VOIPLOG_SIGNING_KEY"], other["VOIPLOG_SIGNING_CERT"]
    signer = signing.load_signer(Path(key_file), Path(cert_file))
    text = (forged / "manifest.json").read_bytes().replace(b'"K-9"', b'"K-8"', 1)
    (forged / "manifest.json").write_bytes(text)
    (forged / "manifest.json.p7s").write_bytes(signer.sign_detached(text))
    shutil.copy(cert_file, forged / "certificate.pem")
    # Against its own certificate the forgery holds together; against the ISP's it fails.
    assert agency_check(forged)[1] is True
    assert agency_check(forged, trusted=str(isp_cert))[1] is False
    result = voiplog(None, "export", "verify", str(forged), "--cert", str(isp_cert))
    assert result.exit_code == 1
    assert "certificate.pem: not the certificate given to check against" in result.output
    assert "manifest.json.p7s: the signature does not match" in result.output


def test_keys_init_makes_a_private_key_and_never_overwrites(tmp_path):
    env = make_keys(tmp_path / "keys")
    key = Path(env["VOIPLOG_SIGNING_KEY"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    again = voiplog(None, "keys", "init", "--name", "x", env=env)
    assert again.exit_code == 2 and "exists" in again.output
    assert key.read_bytes() == before
    text = openssl("x509", "-in", env["VOIPLOG_SIGNING_CERT"], "-noout", "-subject", cwd=tmp_path)
    assert "POP Test-1 evidence export" in text.stdout and "Example ISP" in text.stdout


@pytest.mark.parametrize("algorithm", [("ec", "ec_paramgen_curve:P-384"), ("rsa", "rsa_keygen_bits:3072")], ids=["p384", "rsa3072"])  # fmt: skip
def test_a_key_certified_by_the_isps_own_authority_signs_bundles_openssl_checks_to_its_root(
    people, store_dsn, tmp_path, algorithm
):
    """An ISP CA (P-256 root) certifies the export key; an agency checks against the root alone."""
    pki = tmp_path / "pki"
    pki.mkdir()

    def run(*args: str) -> None:
        done = openssl(*args, cwd=pki)
        assert done.returncode == 0, done.stderr

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "root.key", "-out", "root.pem", "-days", "2", "-subj", "/O=Example ISP/CN=Example ISP evidence root",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    run("genpkey", "-algorithm", algorithm[0], "-pkeyopt", algorithm[1], "-out", "export.key")
    run("req", "-new", "-key", "export.key", "-out", "export.csr", "-subj", "/O=Example ISP/CN=POP Test-1 evidence export")  # fmt: skip
    (pki / "ext.cnf").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n")  # fmt: skip
    run("x509", "-req", "-in", "export.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
        "-out", "export.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    env = {"VOIPLOG_SIGNING_KEY": str(pki / "export.key"), "VOIPLOG_SIGNING_CERT": str(pki / "export.pem")}  # fmt: skip

    request_id = disclosed_request(people, store_dsn, tmp_path, "--subscriber", "sub-target")
    assert voiplog(people["requester"], "request", "run", request_id).exit_code == 0
    out = tmp_path / "bundle"
    made = voiplog(people["requester"], "export", request_id, "--out", str(out), env=env)
    assert made.exit_code == 0, made.output
    assert agency_check(out, trusted=str(pki / "root.pem")) == (True, True)
    verified = voiplog(None, "export", "verify", str(out), "--cert", str(pki / "export.pem"))
    assert verified.exit_code == 0 and "CN=POP Test-1 evidence export" in verified.output
    # The root of another authority does not vouch for it.
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=Other root")  # fmt: skip
    assert agency_check(out, trusted=str(pki / "other.pem"))[1] is False


def test_a_weak_or_mismatched_key_is_refused_before_anything_is_read(tmp_path):
    done = openssl("genpkey", "-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "weak.key", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    env = make_keys(tmp_path / "keys")
    weak = voiplog(None, "export", "1", "--out", str(tmp_path / "b"), "--key", str(tmp_path / "weak.key"), "--cert", env["VOIPLOG_SIGNING_CERT"])  # fmt: skip
    assert weak.exit_code == 2 and "RSA of 1024 bits; use 2048 or more" in weak.output
    other = make_keys(tmp_path / "other")
    mismatched = voiplog(None, "export", "1", "--out", str(tmp_path / "b"), "--key", env["VOIPLOG_SIGNING_KEY"], "--cert", other["VOIPLOG_SIGNING_CERT"])  # fmt: skip
    assert mismatched.exit_code == 2 and "is not the certificate of" in mismatched.output
