"""Checking an inclusion proof away from the store: what `voiplog store check-proof` does.

A proof (`seal.prove`, printed by `voiplog store prove`) is handed over with the
records it covers and may be checked years later, after its day was purged, by
someone who has no access to the store: an agency, a court's expert, the
defence. Nothing here touches a database. `examine` says, one line each, what
holds and what does not:

- the row hashes to the proof's leaf (SHA-256 of 0x00 and the row);
- the path of sibling hashes leads from the leaf to the seal's root, and its
  shape is that of the leaf's place in a tree of the seal's record count;
- that root is the one given, when one is (the root a purge log kept for the
  day, or one read off a seal row);
- the seal is signed by the certificate the proof names, over the day,
  version, record count and root; with a certificate given, by that one;
- the record given (as exported) is the row the proof hashes.

A proof that is not one (a key missing, a value of the wrong kind) raises
`ProofFileError` naming the key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import orjson

from voiplog.store import seal

HASH_HEX = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_SIGNED = "the seal is signed by "


class ProofFileError(Exception):
    """Not a proof, or not a record: the message names the key and why."""


@dataclass
class ProofReport:
    """What holds (`held`) and what does not (`failed`), a line each."""

    held: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _need(mapping: dict, key: str, kind, where: str = ""):
    name = f"{where}{key}"
    if key not in mapping:
        raise ProofFileError(f"key {name!r} is missing")
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProofFileError(f"key {name!r} is {type(value).__name__}, not {_kind_name(kind)}")
    return value


def _kind_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        int: "an integer",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _hex(value: str, name: str, exact: bool = False) -> str:
    if not (HASH_HEX if exact else _HEX).fullmatch(value):
        wanted = "64 lowercase hex digits" if exact else "lowercase hex digits, two a byte"
        raise ProofFileError(f"key {name!r} is not {wanted}")
    return value


def check_shape(proof) -> None:
    """Raise ProofFileError, naming the key, unless `proof` has the form `seal.prove` gives."""
    if not isinstance(proof, dict):
        raise ProofFileError(f"a proof is a JSON object, not {type(proof).__name__}")
    _need(proof, "uid", str)
    _hex(_need(proof, "row", str), "row")
    _hex(_need(proof, "leaf", str), "leaf", exact=True)
    index = _need(proof, "index", int)
    if index < 0:
        raise ProofFileError("key 'index' is negative")
    for at, step in enumerate(_need(proof, "path", list)):
        name = f"path[{at}]"
        if not (isinstance(step, list) and len(step) == 2 and step[0] in ("L", "R") and isinstance(step[1], str)):  # fmt: skip
            raise ProofFileError(f'key {name!r} is not ["L" or "R", a sibling hash]')
        _hex(step[1], name, exact=True)
    columns = _need(proof, "columns", list)
    if not all(isinstance(c, list) and len(c) == 2 and all(isinstance(p, str) for p in c) for c in columns):  # fmt: skip
        raise ProofFileError("key 'columns' is not a list of [name, type] pairs")
    sealed = _need(proof, "seal", dict)
    _need(sealed, "day", str, "seal.")
    version = _need(sealed, "version", int, "seal.")
    records = _need(sealed, "records", int, "seal.")
    if version < 1 or records < 1 or index >= records:
        raise ProofFileError(
            f"keys 'seal.version', 'seal.records' and 'index' ({version}, {records}, {index}) "
            "do not name a leaf of a sealed day"
        )
    _hex(_need(sealed, "root", str, "seal."), "seal.root", exact=True)
    signature = _need(sealed, "signature", (str, type(None)), "seal.")
    certificate = _need(sealed, "certificate", (str, type(None)), "seal.")
    if signature is not None:
        _hex(signature, "seal.signature")
        if certificate is None:
            raise ProofFileError("key 'seal.signature' is set but 'seal.certificate' is null")


def examine(
    proof: dict,
    root: str | None = None,
    certificate_pem: bytes | None = None,
    record: dict | None = None,
) -> ProofReport:
    """Check `proof` (of the form `check_shape` accepts) as the module says."""
    check_shape(proof)
    report = ProofReport()
    sealed = proof["seal"]
    of_seal = f"seal version {sealed['version']} of {sealed['day']} ({sealed['records']} records)"
    leaf = seal.leaf_hash(bytes.fromhex(proof["row"]))
    if leaf.hex() == proof["leaf"]:
        report.held.append(f"the row ({len(proof['row']) // 2} bytes) hashes to the leaf {proof['leaf']}")  # fmt: skip
    else:
        report.failed.append(f"the row hashes to {leaf.hex()}, not to the proof's leaf {proof['leaf']}")  # fmt: skip
    reached = seal.root_from_path(leaf, proof["path"])
    if reached == sealed["root"]:
        report.held.append(
            f"its path of {len(proof['path'])} sibling hashes leads to the root {reached} of {of_seal}"
        )
    else:
        report.failed.append(f"its path leads to {reached}, not to the root {sealed['root']} of {of_seal}")  # fmt: skip
    if [side for side, _ in proof["path"]] == [side for _, _, side in seal.path_steps(proof["index"], sealed["records"])]:  # fmt: skip
        report.held.append(f"the path is that of leaf {proof['index']} of {sealed['records']}")
    else:
        report.failed.append(
            f"the path's sides are not those of leaf {proof['index']} of {sealed['records']}"
        )
    if root is not None:
        if root.lower() == sealed["root"]:
            report.held.append(f"the seal's root is the one given ({root.lower()})")
        else:
            report.failed.append(f"the seal's root {sealed['root']} is not the one given ({root.lower()})")  # fmt: skip
    _examine_signature(sealed, certificate_pem, report)
    if record is not None:
        try:
            same = seal.proves_record(proof, record)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            report.failed.append(f"the proof's row cannot be read back ({exc})")
        else:
            if same:
                report.held.append(f"the record given (uid {record.get('uid')}) is the row proven")
            else:
                report.failed.append(
                    f"the record given (uid {record.get('uid')}) differs from the row proven"
                )
    return report


def _examine_signature(sealed: dict, certificate_pem: bytes | None, report: ProofReport) -> None:  # fmt: skip
    from voiplog.export import signing

    if sealed["signature"] is None:
        if certificate_pem is not None:
            report.failed.append("the seal is not signed, and a certificate was given to check it")  # fmt: skip
        else:
            report.held.append("the seal is not signed (no signing key was configured)")
        return
    named = sealed["certificate"].encode()
    stated = seal.signed_text(sealed["day"], sealed["version"], sealed["records"], sealed["root"])
    why, signer = _signature(named, stated, bytes.fromhex(sealed["signature"]))
    if why is not None:
        report.failed.append(f"the seal's signature: {why}")
        return
    report.held.append(f"{_SIGNED}{signer}")
    if certificate_pem is not None:
        if signing.same_certificate(certificate_pem, named):
            report.held.append("that is the certificate given")
        else:
            report.failed.append("the seal is signed with another certificate than the one given")


@functools.lru_cache(maxsize=256)
def _signature(certificate_pem: bytes, stated: bytes, signature: bytes) -> tuple[str | None, str]:
    """(why the signature does not hold, or None; who signed): once per seal, however many
    of its records a bundle proves."""
    from voiplog.export import signing

    why = signing.check(certificate_pem, stated, signature)
    return why, (signing.describe(certificate_pem) if why is None else "")


def load_proof(data: bytes, source: str) -> dict:
    """The proof in `data` (JSON, as `voiplog store prove` prints it); `source` names it."""
    try:
        proof = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProofFileError(f"{source}: not JSON ({exc})") from None
    try:
        check_shape(proof)
    except ProofFileError as exc:
        raise ProofFileError(f"{source}: not an inclusion proof: {exc}") from None
    return proof


def find_record(data: bytes, source: str, uid: str) -> dict:
    """The record with `uid` in `data`: one JSON object, or JSON lines (a bundle's
    records.jsonl, a lawful-access run's output)."""
    try:
        whole = orjson.loads(data)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        candidates = [(1, whole)]
    else:
        candidates = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                candidates.append((number, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise ProofFileError(f"{source}, line {number}: not JSON ({exc})") from None
    found = [r for _, r in candidates if isinstance(r, dict) and r.get("uid") == uid]
    if not found:
        raise ProofFileError(f"{source}: no record with uid {uid}")
    if len(found) > 1:
        raise ProofFileError(f"{source}: {len(found)} records with uid {uid}")
    return found[0]


@dataclass
class BundleProofs:
    """What the proofs of an evidence bundle show: how many hold, who signed their seals,
    why the others have none, and what is wrong (a line each, naming the line and record)."""

    proven: int = 0
    signers: set[str] = field(default_factory=set)
    unproven: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_bundle(files: dict[str, bytes]) -> BundleProofs:
    """Each record's proof in a bundle's proofs.jsonl leads from its row to its day's
    seal, and the row is the record beside it in records.jsonl."""
    from voiplog.export import bundle

    found = BundleProofs()
    try:
        records = {(r["uid"], r["stored_in"]): r for r in map(orjson.loads, files[bundle.RECORDS].splitlines())}  # fmt: skip
        proofs = [orjson.loads(line) for line in files[bundle.PROOFS].splitlines()]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        found.problems.append(f"{bundle.PROOFS}: the records or their proofs cannot be read ({exc})")  # fmt: skip
        return found
    for number, proof in enumerate(proofs, 1):
        where = f"{bundle.PROOFS}, line {number}"
        if not isinstance(proof, dict) or not isinstance(proof.get("uid"), str):
            found.problems.append(f"{where}: not a proof of a record")
            continue
        record = records.get((proof["uid"], proof.get("stored_in")))
        if record is None:
            found.problems.append(f"{where}: record {proof['uid']} is not in {bundle.RECORDS}")
        elif "unproven" in proof:
            found.unproven.append(f"{proof['uid']}: {proof['unproven']}")
        else:
            try:
                checked = examine(proof, record=record)
            except ProofFileError as exc:
                found.problems.append(f"{where}: record {proof['uid']}: not a proof: {exc}")
                continue
            found.problems += [f"{where}: record {proof['uid']}: {line}" for line in checked.failed]  # fmt: skip
            if checked.ok:
                found.proven += 1
                found.signers |= {line.removeprefix(_SIGNED) for line in checked.held if line.startswith(_SIGNED)}  # fmt: skip
    listed = {proof.get("uid") for proof in proofs if isinstance(proof, dict)}
    for uid, _ in sorted(records):
        if uid not in listed:
            found.problems.append(f"{bundle.PROOFS}: no line for record {uid}")
    return found
