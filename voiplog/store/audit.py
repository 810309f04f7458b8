"""The audit trail read back: listing, verifying the hash chain, checkpoints, review samples.

Each `audit_event` row's hash covers its position, time, the previous row's
hash and its event (see migration 0005, `voiplog_audit_hash`). Verification
recomputes every hash here, in Python, from what the server returns, so that
a server whose functions were replaced still cannot vouch for itself; a
checkpoint (position and hash) kept off the server also catches a chain that
was rewritten from some row on, or cut short.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise ValueError(
                f"{text!r} is not a checkpoint (SEQ:HASH as `audit checkpoint` prints)"
            )
        return cls(int(seq), digest.lower())


def row_hash(seq: int, at: dt.datetime, prev_hash: str, event_text: str) -> str:
    stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return hashlib.sha256(f"{seq}|{stamp}|{prev_hash}|{event_text}".encode()).hexdigest()


def _rows(connection, where: str = "TRUE", params=()) -> Iterator[tuple]:
    with connection.cursor(name="audit_rows") as cursor:
        cursor.itersize = 10_000
        cursor.execute(
            f"SELECT seq, at, prev_hash, hash, event::text, event FROM audit_event WHERE {where} ORDER BY seq",
            params,
        )
        yield from cursor


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    rows: int
    message: str
    first_bad: int | None = None


def verify(connection, checkpoint: Checkpoint | None = None) -> Verdict:
    """Recompute the chain; the first row that does not hold names the break."""
    expected_prev = None
    expected_seq = None
    count = 0
    note = ""
    for seq, at, prev_hash, digest, event_text, _ in _rows(connection):
        if expected_seq is None:
            if seq != 1 and checkpoint is None:
                note = f" (rows before {seq} were pruned; give a checkpoint to verify the start)"
            if seq == 1 and prev_hash != GENESIS:
                return Verdict(False, count, f"audit row {seq} does not start the chain", seq)
            if (
                checkpoint is not None
                and checkpoint.seq == seq - 1
                and prev_hash != checkpoint.hash
            ):
                return Verdict(False, count, f"audit row {seq} does not follow checkpoint {checkpoint.seq}", seq)  # fmt: skip
            if checkpoint is not None and checkpoint.seq < seq - 1:
                return Verdict(False, count, f"rows after checkpoint {checkpoint.seq} are gone: the trail starts at {seq}", seq)  # fmt: skip
        elif seq != expected_seq:
            return Verdict(False, count, f"audit row {expected_seq} is missing (next row is {seq})", expected_seq)  # fmt: skip
        elif prev_hash != expected_prev:
            return Verdict(False, count, f"audit row {seq} does not link to row {seq - 1}: the chain was rewritten", seq)  # fmt: skip
        if row_hash(seq, at, prev_hash, event_text) != digest:
            return Verdict(False, count, f"audit row {seq} ({at.isoformat()}) was altered: its content does not match its hash", seq)  # fmt: skip
        if checkpoint is not None and seq == checkpoint.seq and digest != checkpoint.hash:
            return Verdict(False, count, f"audit row {seq} differs from the checkpoint: the chain was rewritten", seq)  # fmt: skip
        expected_prev, expected_seq = digest, seq + 1
        count += 1
    if checkpoint is not None and (expected_seq is None or expected_seq <= checkpoint.seq):
        return Verdict(False, count, f"the trail ends before checkpoint {checkpoint.seq}: rows were removed", expected_seq)  # fmt: skip
    return Verdict(True, count, f"audit trail intact: {count} rows{note}")


def checkpoint(connection) -> tuple[Checkpoint, dt.datetime] | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT seq, hash, at FROM audit_event ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (Checkpoint(row[0], row[1]), row[2]) if row else None


def events(
    connection,
    since: dt.datetime | None = None,
    case_ref: str | None = None,
    request_id: int | None = None,
) -> list[tuple[int, dt.datetime, dict]]:
    where, params = ["TRUE"], []
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    if case_ref is not None:
        where.append("case_ref = %s")
        params.append(case_ref)
    if request_id is not None:
        where.append("request_id = %s")
        params.append(request_id)
    return [(seq, at, event) for seq, at, _, _, _, event in _rows(connection, " AND ".join(where), params)]  # fmt: skip


def sample(rows: list, share: float, seed: int | None = None) -> list:
    """A random share of the rows (at least one when there are any), in their order."""
    if not rows:
        return []
    chooser = random.Random(seed) if seed is not None else random.SystemRandom()
    picked = sorted(chooser.sample(range(len(rows)), max(1, round(len(rows) * share))))
    return [rows[i] for i in picked]


def describe(seq: int, at: dt.datetime, event: dict) -> str:
    """One audit row in a line (what happened, never record data: there is none)."""
    parts = [
        str(seq),
        at.astimezone(dt.UTC).isoformat(),
        event.get("action", "?"),
        event.get("outcome", ""),
        f"role {event.get('db_role', '?')}",
        f"os {event.get('os_user', '?')}@{event.get('host', '?')}",
    ]
    if event.get("request_id") is not None:
        parts.append(f"request {event['request_id']}")
    if event.get("case_ref"):
        parts.append(f"case {event['case_ref']}")
    if "records" in event:
        parts.append(f"records {event['records']}")
    if event.get("delivery"):
        parts.append(f"to {event['delivery']}")
    if event.get("manifest_sha256"):
        parts.append(
            f"manifest sha256:{event['manifest_sha256']} of run {event.get('records_seq')}"
        )
    if event.get("seals"):
        # A purge: the seal of each day it dropped, whose root a proof given before
        # leads to (`voiplog store check-proof --root`).
        parts.append(
            "seals of the days dropped: "
            + "; ".join(
                f"{s.get('day')} version {s.get('version')} ({s.get('records')} records) root {s.get('root')}"
                for s in event["seals"]
                if isinstance(s, dict)
            )
        )  # fmt: skip
    if event.get("reason"):
        parts.append(f"reason: {event['reason']}")
    return "\t".join(parts)
