"""RFC 3161 time-stamps of a bundle's signature, from the ISP's time-stamping authority.

A time-stamp shows that the signature existed at the authority's time: a
signing key compromised or a certificate expired later does not cast doubt
on a bundle stamped before. What is stamped is the SHA-256 of the signature
file (`manifest.json.p7s`) as it is; the authority's whole response is kept
beside it as `manifest.json.p7s.tsr`, which `openssl ts -verify -data
manifest.json.p7s -in manifest.json.p7s.tsr -CAfile TSA-CA.pem` checks.

The request carries a random nonce and asks for the authority's
certificate; a response is taken only when it grants the stamp, answers
this imprint and this nonce, and its token's signature holds (`signing`).
asn1crypto builds and reads the structures; the transport is plain HTTP
POST as RFC 3161 section 3.4 has it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass

from asn1crypto import algos, tsp
from cryptography import x509

from voiplog.export import signing

STAMP = signing.SIGNATURE + ".tsr"


class TimestampError(Exception):
    """No usable time-stamp: the authority unreachable, refusing, or answering something else."""


@dataclass(frozen=True, slots=True)
class Stamp:
    """A time-stamp checked against what it stamps."""

    problem: str | None
    at: dt.datetime | None = None
    authority: str | None = None
    serial: int | None = None


def request(data: bytes) -> tuple[bytes, int]:
    """A DER TimeStampReq for the SHA-256 of `data`, and its nonce."""
    nonce = secrets.randbits(63)
    query = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "hashed_message": hashlib.sha256(data).digest(),
            },
            "nonce": nonce,
            "cert_req": True,
        }
    )
    return query.dump(), nonce


def check(response: bytes, data: bytes, nonce: int | None = None, trusted_cert_pem: bytes | None = None) -> Stamp:  # fmt: skip
    """Whether `response` (a DER TimeStampResp) stamps `data`; the time and authority when it does."""
    try:
        answer = tsp.TimeStampResp.load(response, strict=True)
        status = answer["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = answer["status"]["status_string"].native
            return Stamp(f"the authority answered {status}{': ' + '; '.join(text) if text else ''}")
        token = answer["time_stamp_token"]
        if token.native is None:
            return Stamp("the response carries no time-stamp token")
        checked = signing.check_cms(token.dump(), None, trusted_cert_pem, "tst_info", "the stamped data")  # fmt: skip
        if checked.problem is not None:
            return Stamp(f"the time-stamp token: {checked.problem}")
        info = tsp.TSTInfo.load(checked.content)
        imprint = info["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if algorithm not in ("sha256", "sha384", "sha512"):
            return Stamp(f"the time-stamp uses {algorithm}, which is not accepted")
        if imprint["hashed_message"].native != hashlib.new(algorithm, data).digest():
            return Stamp(f"the time-stamp is not of {signing.SIGNATURE} (its imprint differs)")
        if nonce is not None and info["nonce"].native != nonce:
            return Stamp("the time-stamp answers another request (its nonce differs)")
        authority = x509.load_pem_x509_certificate(checked.certificate_pem).subject.rfc4514_string()
        return Stamp(None, info["gen_time"].native, authority, info["serial_number"].native)
    except (ValueError, KeyError, TypeError) as exc:
        return Stamp(f"not a readable time-stamp response ({exc})")


def obtain(url: str, data: bytes, timeout_s: float) -> tuple[bytes, Stamp]:
    """Asks the authority at `url` to stamp `data`; its response and what it says. Raises TimestampError."""
    if not url.startswith(("http://", "https://")):
        raise TimestampError(f"time-stamping authority {url}: not an http or https URL")
    query, nonce = request(data)
    post = urllib.request.Request(
        url, data=query, method="POST", headers={"Content-Type": "application/timestamp-query"}
    )
    try:
        with urllib.request.urlopen(post, timeout=timeout_s) as reply:
            response = reply.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TimestampError(f"time-stamping authority {url}: {reason}") from None
    stamp = check(response, data, nonce)
    if stamp.problem is not None:
        raise TimestampError(f"time-stamping authority {url}: {stamp.problem}")
    return response, stamp
