"""`voiplog keys init`: a signing key and a self-signed certificate for evidence bundles.

For a small ISP or a test. An ISP with its own certificate authority keeps
the key made here (or its own P-256 key) and has the authority certify it;
`voiplog export --key/--cert` takes any P-256 key and certificate that match.
The key file is created readable by its owner only (0600) and never
overwritten.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

KEY_VARIABLE = "VOIPLOG_SIGNING_KEY"
CERT_VARIABLE = "VOIPLOG_SIGNING_CERT"


def _fail(message: str, code: int = 1):
    click.echo(f"voiplog: {message}", err=True)
    raise SystemExit(code)


@click.group()
def keys() -> None:
    """Signing keys of evidence bundles."""


@keys.command("init")
@click.option("--key", "key_path", required=True, envvar=KEY_VARIABLE, type=click.Path(dir_okay=False), help=f"New private key file (PEM, mode 0600); else ${KEY_VARIABLE}.")  # fmt: skip
@click.option("--cert", "cert_path", required=True, envvar=CERT_VARIABLE, type=click.Path(dir_okay=False), help=f"New certificate file (PEM); else ${CERT_VARIABLE}.")  # fmt: skip
@click.option("--name", "common_name", required=True, help="Subject common name, e.g. 'Example ISP POP Mumbai-1 evidence export'.")  # fmt: skip
@click.option("--organisation", help="Subject organisation (the ISP).")
@click.option("--days", type=click.IntRange(1, 36500), default=3650, show_default=True, help="Validity of the certificate.")  # fmt: skip
def init(key_path: str, cert_path: str, common_name: str, organisation, days: int) -> None:
    """Make an ECDSA P-256 key and a self-signed X.509 certificate for it."""
    from voiplog.export import signing

    key_file, cert_file = Path(key_path), Path(cert_path)
    for path in (key_file, cert_file):
        if path.exists():
            _fail(f"{path} exists: keys init never overwrites a key or certificate", 2)
    key_pem, cert_pem = signing.new_key_and_certificate(
        common_name, organisation, days, dt.datetime.now(dt.UTC)
    )
    try:
        signing.write_new(key_file, key_pem, 0o600)
        signing.write_new(cert_file, cert_pem, 0o644)
    except OSError as exc:
        _fail(f"{exc.filename}: {exc.strerror}")
    click.echo(f"key {key_file} (0600), certificate {cert_file}\n{signing.describe(cert_pem)}")
