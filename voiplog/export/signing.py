"""The signature of an evidence bundle: an ECDSA P-256 key and its X.509 certificate.

The manifest is signed as it is, bytes in (a detached signature): ECDSA over
its SHA-256, the signature DER-encoded (X9.62 ECDSA-Sig-Value), which is what
`openssl dgst -sha256 -verify PUBKEY -signature manifest.json.sig
manifest.json` reads, so an agency can check a bundle with openssl alone. The
certificate travels in the bundle; a reader compares its fingerprint with
the one the ISP publishes (or gives `--cert` to verify against a certificate
obtained separately).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SIGNATURE = "manifest.json.sig"
CERTIFICATE = "certificate.pem"


class SigningError(Exception):
    """A key or certificate that cannot be used as given."""


def new_key_and_certificate(
    common_name: str, organisation: str | None, days: int, now: dt.datetime
) -> tuple[bytes, bytes]:
    """A new P-256 key (PKCS #8 PEM) and a self-signed certificate (PEM) for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    name = x509.Name(attributes)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


def write_new(path: Path, data: bytes, mode: int) -> None:
    """A new file with `mode` from its first byte (a key is never readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(path, mode)  # the umask may have narrowed it; never widened


@dataclass(frozen=True, slots=True)
class Signer:
    key: ec.EllipticCurvePrivateKey
    certificate_pem: bytes

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def load_signer(key_path: Path, cert_path: Path) -> Signer:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"signing key {key_path}: {exc}") from None
    try:
        cert_pem = cert_path.read_bytes()
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except (OSError, ValueError) as exc:
        raise SigningError(f"signing certificate {cert_path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError(f"signing key {key_path}: not an ECDSA P-256 key")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != certificate.public_key().public_bytes(serialization.Encoding.DER, public):  # fmt: skip
        raise SigningError(f"signing certificate {cert_path} is not the certificate of {key_path}")
    return Signer(key, cert_pem)


def describe(cert_pem: bytes) -> str:
    """Subject and SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` shows it."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    return f"{certificate.subject.rfc4514_string()}, SHA-256 fingerprint {fingerprint}"


def same_certificate(a: bytes, b: bytes) -> bool:
    """The same certificate, whether written as PEM or DER."""

    def load(data: bytes) -> x509.Certificate:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)  # fmt: skip

    try:
        return load(a) == load(b)
    except ValueError:
        return False


def as_pem(data: bytes) -> bytes:
    """A certificate given as PEM or DER, as PEM."""
    if b"-----BEGIN" in data:
        return data
    try:
        return x509.load_der_x509_certificate(data).public_bytes(serialization.Encoding.PEM)
    except ValueError:
        raise SigningError("not an X.509 certificate (PEM or DER)") from None


def check(cert_pem: bytes, data: bytes, signature: bytes) -> str | None:
    """None when `signature` is the certificate's key's signature of `data`; else why not."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "the certificate is not a PEM X.509 certificate"
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        return "the certificate's key is not an ECDSA key"
    try:
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not match manifest.json and the certificate"
    return None
