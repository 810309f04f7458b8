"""RFC 3161 time-stamps of a bundle's signature from a real authority (`openssl ts -reply`)."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.export.test_export_cli import disclosed_request, openssl, voiplog
from tests.store.conftest import query
from voiplog.export import timestamp

pytestmark = pytest.mark.postgres

TSA_CONFIG = """
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {serial}
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
other_policies = 1.3.6.1.4.1.99999.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def make_authority(directory: Path, name: str) -> dict[str, Path]:
    """A root CA and a time-stamping certificate it issued (extendedKeyUsage timeStamping)."""
    directory.mkdir()

    def run(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=directory, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={name} root",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", f"/CN={name}")  # fmt: skip
    (directory / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n"
    )
    run("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tsa.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(TSA_CONFIG.format(serial=directory / "serial"))
    return {name: directory / f"{name}.pem" for name in ("ca", "tsa")} | {"dir": directory}


class Authority:
    """An RFC 3161 authority over HTTP on 127.0.0.1 that answers with `openssl ts -reply`."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.replay: bytes | None = None  # answer every query with this response instead
        self.queries = 0
        authority = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                query = self.rfile.read(int(self.headers["Content-Length"]))
                authority.queries += 1
                body = authority.replay if authority.replay is not None else authority.reply(query)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsr"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reply(self, query: bytes) -> bytes:
        directory = self.files["dir"]
        (directory / "query.tsq").write_bytes(query)
        done = subprocess.run(
            ["openssl", "ts", "-reply", "-config", "tsa.cnf", "-queryfile", "query.tsq",
             "-inkey", "tsa.key", "-signer", "tsa.pem", "-out", "reply.tsr"],
            cwd=directory, capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return (directory / "reply.tsr").read_bytes()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def authority(tmp_path):
    tsa = Authority(make_authority(tmp_path / "tsa", "Example TSA"))
    yield tsa
    tsa.close()


def openssl_ts_verify(bundle_dir: Path, files: dict[str, Path]) -> bool:
    done = openssl(
        "ts", "-verify", "-data", "manifest.json.p7s", "-in", "manifest.json.p7s.tsr",
        "-CAfile", str(files["ca"]), "-untrusted", str(files["tsa"]), cwd=bundle_dir,
    )  # fmt: skip
    assert (done.returncode == 0) == ("Verification: OK" in done.stdout), done
    return done.returncode == 0


def test_a_stamped_bundle_verifies_with_voiplog_and_openssl_and_tampering_fails(
    people,
    store_dsn,
    tmp_path,
    keys,
    authority,
):
    request_id = disclosed_request(people, store_dsn, tmp_path, "--subscriber", "sub-target")
    assert voiplog(people["requester"], "request", "run", request_id).exit_code == 0
    out = tmp_path / "bundle"
    made = voiplog(people["requester"], "export", request_id, "--out", str(out), "--tsa-url", authority.url, env=keys)  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "signature time-stamped at" in made.output and "CN=Example TSA" in made.output
    assert authority.queries == 1
    assert (out / timestamp.STAMP).exists()
    assert openssl_ts_verify(out, authority.files)
    listed = subprocess.run(["sha256sum", "-c", "hashes.txt"], cwd=out, capture_output=True, text=True)  # fmt: skip
    assert listed.returncode == 0 and f"{timestamp.STAMP}: OK" in listed.stdout

    verified = voiplog(
        None, "export", "verify", str(out), "--tsa-cert", str(authority.files["tsa"])
    )
    assert verified.exit_code == 0, verified.output
    assert f"{timestamp.STAMP}: signature time-stamped at" in verified.output

    # The signature re-made (a new one for the same manifest) no longer matches the stamp.
    resigned = tmp_path / "resigned"
    shutil.copytree(out, resigned)
    signer = __import__("voiplog.export.signing", fromlist=["x"]).load_signer(
        Path(keys["VOIPLOG_SIGNING_KEY"]), Path(keys["VOIPLOG_SIGNING_CERT"])
    )
    (resigned / "manifest.json.p7s").write_bytes(signer.sign_detached((resigned / "manifest.json").read_bytes()))  # fmt: skip
    assert not openssl_ts_verify(resigned, authority.files)
    result = voiplog(None, "export", "verify", str(resigned))
    assert result.exit_code == 1
    assert f"{timestamp.STAMP}: the time-stamp is not of manifest.json.p7s" in result.output

    # Another authority's certificate is refused; a stamp removed is missed when one is expected.
    other = make_authority(tmp_path / "other", "Other TSA")
    result = voiplog(None, "export", "verify", str(out), "--tsa-cert", str(other["tsa"]))
    assert result.exit_code == 1 and f"{timestamp.STAMP}: the time-stamp token" in result.output
    unstamped = tmp_path / "unstamped"
    shutil.copytree(out, unstamped)
    (unstamped / timestamp.STAMP).unlink()
    result = voiplog(None, "export", "verify", str(unstamped), "--tsa-cert", str(authority.files["tsa"]))  # fmt: skip
    assert result.exit_code == 1 and f"{timestamp.STAMP}: missing" in result.output


def test_an_authority_down_or_answering_another_query_stops_the_export(
    people,
    store_dsn,
    tmp_path,
    keys,
    authority,
):
    request_id = disclosed_request(people, store_dsn, tmp_path, "--subscriber", "sub-target")
    assert voiplog(people["requester"], "request", "run", request_id).exit_code == 0

    def exports() -> int:
        rows = query(store_dsn, "SELECT count(*) FROM audit_event WHERE action = 'export'")
        return rows[0][0]

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}/tsr"
    out = tmp_path / "down"
    result = voiplog(people["requester"], "export", request_id, "--out", str(out), "--tsa-url", down, env=keys)  # fmt: skip
    assert result.exit_code == 1 and "nothing was exported" in result.output
    assert f"time-stamping authority {down}" in result.output
    assert not out.exists() and exports() == 0

    # A stale response (a stamp of some other signature) is refused the same way.
    authority.replay = authority.reply(timestamp.request(b"another signature")[0])
    result = voiplog(people["requester"], "export", request_id, "--out", str(out), "--tsa-url", authority.url, env=keys)  # fmt: skip
    assert result.exit_code == 1 and "its imprint differs" in result.output
    assert not out.exists() and exports() == 0

    authority.replay = None
    result = voiplog(people["requester"], "export", request_id, "--out", str(out), "--tsa-url", authority.url, env=keys)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert exports() == 1


def test_only_http_authorities_are_asked():
    with pytest.raises(timestamp.TimestampError, match="not an http or https URL"):
        timestamp.obtain("file:///etc/passwd", b"x", 1.0)
