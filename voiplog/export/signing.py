"""The signature of an evidence bundle: a detached CMS (PKCS #7) signature of its manifest.

The manifest is signed as it is, bytes in: `manifest.json.p7s` is a CMS
SignedData (RFC 5652) in DER without the content, whose one SignerInfo
carries the content type, the signing time and the manifest's digest as
signed attributes, the signer's certificate beside it. It is what
`openssl cms -verify -binary -inform DER -in manifest.json.p7s -content
manifest.json -CAfile CERT` checks, so that an agency can check a bundle with
openssl alone. The key is ECDSA P-256 (SHA-256) or P-384 (SHA-384), or RSA
of 2048 bits or more (PKCS #1 v1.5, SHA-256): what the ISP's own certificate
authority issues. The certificate also travels in the bundle as
`certificate.pem`; a reader compares its fingerprint with the one the ISP
publishes, or checks against a certificate obtained separately (`--cert`).

cryptography makes the signature; it cannot read one back, so verification
parses the SignedData with asn1crypto and checks the signature over the
signed attributes with cryptography, the digest against the manifest's bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

SIGNATURE = "manifest.json.p7s"
CERTIFICATE = "certificate.pem"
MIN_RSA_BITS = 2048
_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


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


def _hash_for(key) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):  # fmt: skip
        return hashes.SHA384()
    return hashes.SHA256()


def _raw_verify(public_key, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm) -> None:
    """Raises InvalidSignature, or TypeError for a key that is neither EC nor RSA."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        raise TypeError("the certificate's key is neither ECDSA nor RSA")


@dataclass(frozen=True, slots=True)
class Signer:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate_pem: bytes

    @property
    def hash(self) -> hashes.HashAlgorithm:
        return _hash_for(self.key)

    def sign(self, data: bytes) -> bytes:
        """A bare signature of `data` (ECDSA-Sig-Value in DER, or PKCS #1 v1.5)."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), self.hash)
        return self.key.sign(data, ec.ECDSA(self.hash))

    def sign_detached(self, data: bytes) -> bytes:
        """A detached CMS SignedData of `data`, DER, with the certificate and signed attributes."""
        certificate = x509.load_pem_x509_certificate(self.certificate_pem)
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(data)
            .add_signer(certificate, self.key, self.hash)
            .sign(
                serialization.Encoding.DER,
                [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
            )
        )


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
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise SigningError(f"signing key {key_path}: ECDSA on {key.curve.name}; use P-256 or P-384")  # fmt: skip
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise SigningError(f"signing key {key_path}: RSA of {key.key_size} bits; use {MIN_RSA_BITS} or more")  # fmt: skip
    else:
        raise SigningError(f"signing key {key_path}: neither an ECDSA (P-256, P-384) nor an RSA key")  # fmt: skip
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
    """None when `signature` is a bare signature of `data` by the certificate's key; else why not."""
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "the certificate is not a PEM X.509 certificate"
    public_key = certificate.public_key()
    try:
        _raw_verify(public_key, signature, data, _hash_for(public_key))
    except TypeError as exc:
        return str(exc)
    except InvalidSignature:
        return "the signature does not match the data and the certificate"
    return None


@dataclass(frozen=True, slots=True)
class CmsCheck:
    """What checking a CMS signature found."""

    problem: str | None  # None: the signature is good
    certificate_pem: bytes | None = None  # the signer's, as the signature names it
    signed_at: dt.datetime | None = None
    content: bytes | None = None  # what was signed: the given data, or the content carried


def _signer_certificate(signed_data, signer_id) -> x509.Certificate | None:
    for choice in signed_data["certificates"] or ():
        if choice.name != "certificate":
            continue
        candidate = choice.chosen
        if signer_id.name == "issuer_and_serial_number":
            wanted = signer_id.chosen
            if candidate.issuer == wanted["issuer"] and candidate.serial_number == wanted["serial_number"].native:  # fmt: skip
                return x509.load_der_x509_certificate(candidate.dump())
        elif candidate.key_identifier == signer_id.chosen.native:
            return x509.load_der_x509_certificate(candidate.dump())
    return None


def check_cms(
    signature: bytes,
    data: bytes | None,
    trusted_cert_pem: bytes | None = None,
    content_type: str = "data",
    name: str = "manifest.json",
) -> CmsCheck:
    """Checks a CMS SignedData with one signer: of `data` (detached), or of the content it carries.

    The digest of the content must be the signed message digest, the signed
    content type `content_type`, and the signature over the signed attributes
    the certificate's key's: the signature's own certificate, or
    `trusted_cert_pem`. Whether the certificate itself is to be trusted is for
    the reader to decide (its fingerprint, or `trusted_cert_pem`). `name`
    names the content in the reasons.
    """
    cert_pem = signed_at = None
    try:
        info = asn1_cms.ContentInfo.load(signature, strict=True)
        if info["content_type"].native != "signed_data":
            return CmsCheck("not a CMS SignedData")
        signed_data = info["content"]
        carried = signed_data["encap_content_info"]["content"]
        if data is None:
            if carried.native is None:
                return CmsCheck("a detached signature, where the signed content was expected inside")  # fmt: skip
            data = carried.contents  # the octets of the eContent OCTET STRING
        elif carried.native is not None:
            return CmsCheck("not a detached signature (it carries content of its own)")
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            return CmsCheck(f"{len(signer_infos)} signers, where one is expected")
        signer = signer_infos[0]
        digest_name = signer["digest_algorithm"]["algorithm"].native
        if digest_name not in _HASHES:
            return CmsCheck(f"digest algorithm {digest_name} is not accepted")
        attributes = {a["type"].native: a["values"][0] for a in signer["signed_attrs"] or ()}
        if "message_digest" not in attributes or "content_type" not in attributes:
            return CmsCheck("no signed message digest and content type")
        if attributes["content_type"].native != content_type:
            return CmsCheck(f"the signed content type is not {content_type}")
        signed_at = attributes["signing_time"].native if "signing_time" in attributes else None
        embedded = _signer_certificate(signed_data, signer["sid"])
        if trusted_cert_pem is not None:
            certificate = x509.load_pem_x509_certificate(trusted_cert_pem)
        elif embedded is not None:
            certificate = embedded
        else:
            return CmsCheck("the signer's certificate is not in the signature; give one to check against")  # fmt: skip
        cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
        if attributes["message_digest"].native != hashlib.new(digest_name, data).digest():
            return CmsCheck(f"the signature does not match {name} (the signed digest differs)", cert_pem, signed_at)  # fmt: skip
        # The signature covers the DER of the attributes as a SET OF, not as the [0] they are tagged.
        signed_bytes = b"\x31" + signer["signed_attrs"].dump()[1:]
        _raw_verify(certificate.public_key(), signer["signature"].native, signed_bytes, _HASHES[digest_name]())  # fmt: skip
    except InvalidSignature:
        return CmsCheck(f"the signature does not match {name} and the certificate", cert_pem, signed_at)  # fmt: skip
    except TypeError as exc:
        return CmsCheck(str(exc))
    except (ValueError, KeyError, IndexError) as exc:
        return CmsCheck(f"not a readable CMS signature ({exc})")
    return CmsCheck(None, cert_pem, signed_at, data)


def check_detached(signature: bytes, data: bytes, trusted_cert_pem: bytes | None = None) -> CmsCheck:  # fmt: skip
    """Checks the detached CMS signature of a manifest (see `check_cms`)."""
    return check_cms(signature, data, trusted_cert_pem)
