"""Checking a proof with no database: its shape, the path's shape, the signature."""

from __future__ import annotations

import hashlib

import pytest

from voiplog.store import proof_check, seal


def test_path_sides_are_those_inclusion_path_gives_for_every_leaf_of_trees_up_to_70():
    for records in range(1, 71):
        leaves = [hashlib.sha256(bytes([n])).digest() for n in range(records)]
        for index in range(records):
            sides = [side for side, _ in seal.inclusion_path(leaves, index)]
            assert [side for _, _, side in seal.path_steps(index, records)] == sides, (
                index,
                records,
            )


def _proof(signer=None, records: int = 5, index: int = 3) -> dict:
    rows = [f"row {n}".encode() for n in range(records)]
    leaves = [seal.leaf_hash(row) for row in rows]
    root = seal.merkle_root(leaves)
    signature = certificate = None
    if signer is not None:
        signature = signer.sign(seal.signed_text("2026-01-10", 2, records, root)).hex()
        certificate = signer.certificate_pem.decode()
    return {
        "uid": "u3",
        "stored_in": "cdr",
        "row": rows[index].hex(),
        "columns": [["uid", "text"]],
        "record": {},
        "leaf": leaves[index].hex(),
        "index": index,
        "path": seal.inclusion_path(leaves, index),
        "seal": {"day": "2026-01-10", "version": 2, "records": records, "root": root, "hash": "00",
                 "signature": signature, "certificate": certificate},
    }  # fmt: skip


def test_a_signed_proof_holds_and_names_its_signer(signer):
    proof = _proof(signer)
    report = proof_check.examine(proof, proof["seal"]["root"], signer.certificate_pem)
    assert report.ok, report.failed
    assert report.held[-1] == "that is the certificate given"
    assert any(line.startswith("the seal is signed by CN=pop ams1") for line in report.held)


def test_an_unsigned_seal_is_said_and_fails_only_when_a_certificate_is_asked_for(signer):
    proof = _proof()
    assert proof_check.examine(proof).held[-1] == "the seal is not signed (no signing key was configured)"  # fmt: skip
    report = proof_check.examine(proof, certificate_pem=signer.certificate_pem)
    assert report.failed == ["the seal is not signed, and a certificate was given to check it"]


def test_each_part_of_a_proof_is_checked(signer):
    proof = _proof(signer)
    sibling = dict(proof, path=[["R", "00" * 32], *proof["path"][1:]])
    assert proof_check.examine(sibling).failed[0].startswith("its path leads to ")
    later = dict(proof, seal=dict(proof["seal"], version=3))
    assert proof_check.examine(later).failed == [
        "the seal's signature: the signature does not match the data and the certificate"
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("leaf"), "key 'leaf' is missing"),
        (lambda p: p.update(row="xyz"), "key 'row' is not lowercase hex digits, two a byte"),
        (lambda p: p.update(index=True), "key 'index' is bool, not an integer"),
        (lambda p: p.update(index=5), "do not name a leaf of a sealed day"),
        (lambda p: p["path"].append(["X", "00" * 32]), "key 'path[3]' is not"),
        (lambda p: p["seal"].update(root="AB" * 32), "key 'seal.root' is not 64 lowercase hex digits"),
        (lambda p: p["seal"].update(certificate=None), "'seal.signature' is set but 'seal.certificate' is null"),
        (lambda p: p["seal"].update(records="5"), "key 'seal.records' is str, not an integer"),
    ],
)  # fmt: skip
def test_a_proof_of_the_wrong_shape_is_refused_naming_the_key(signer, change, message):
    proof = _proof(signer)
    change(proof)
    with pytest.raises(proof_check.ProofFileError, match=message.replace("[", r"\[").replace("(", r"\(")):  # fmt: skip
        proof_check.check_shape(proof)


def test_files_that_are_not_proofs_or_hold_no_such_record_are_named():
    with pytest.raises(proof_check.ProofFileError, match=r"^p\.json: not JSON"):
        proof_check.load_proof(b"[1,", "p.json")
    with pytest.raises(proof_check.ProofFileError, match=r"^p\.json: not an inclusion proof: a proof is a JSON object, not list"):  # fmt: skip
        proof_check.load_proof(b"[1]", "p.json")
    lines = b'{"uid": "a"}\n\n{"uid": "b", "x": 1}\n'
    assert proof_check.find_record(lines, "r.jsonl", "b") == {"uid": "b", "x": 1}
    assert proof_check.find_record(b'{"uid": "a"}', "r.json", "a") == {"uid": "a"}
    with pytest.raises(proof_check.ProofFileError, match=r"^r\.jsonl: no record with uid c$"):
        proof_check.find_record(lines, "r.jsonl", "c")
    with pytest.raises(proof_check.ProofFileError, match=r"^r\.jsonl: 2 records with uid a$"):
        proof_check.find_record(b'{"uid": "a"}\n{"uid": "a"}\n', "r.jsonl", "a")
    with pytest.raises(proof_check.ProofFileError, match=r"^r\.jsonl, line 2: not JSON"):
        proof_check.find_record(b'{"uid": "a"}\n{', "r.jsonl", "a")
