"""Day seals: a Merkle tree over a day's records, chained and signed, and its proofs.

A day's leaves are computed by the database, with parallel workers
(`voiplog_day_hashes`; `voiplog_day_leaves` names them too): its calls then
its registrations, each in (time, uid) order, a leaf being SHA-256(0x00 ||
the row in Postgres' binary form, as `record_send` gives it: each column's
type OID and binary value). In form 2 (migration 0008) the row is rebuilt
column by column so that only OIDs of built-in types remain (a composite
column is its own binary form, the media array's element OID is zeroed): a
dump restored elsewhere verifies. Seals made before keep form 1 (the whole
row, migration 0007), which `verify` and `prove` still compute for them:
`day_seal_leaves.form` says which. Where the `voiplog_seal` extension is
installed (`voiplog/store/pgext`), the database computes the form-2 leaves
and the root in C (migration 0011), byte for byte as the SQL and this module
do; only the root then comes out. Sealing, the database keeps the day's
keys and leaves (`voiplog_seal_stage`) for the seal row it adds: at most the
leaves come out, for the tree, and nothing goes back. A node is
SHA-256(0x01 || left || right); a level with an odd number of nodes sends
its last one up unchanged. The root, the record count and the version of
the seal go into a `day_seal` row, chained to the row before it, and signed
when a key is configured: the signature covers `signed_text`. One record's
inclusion is then shown by the sibling hashes on its path (`prove`), which
reveal nothing of the other records. A proof carries the row's bytes, which
`decode_row` reads back (column names and types come with the proof), so
that anyone can compare them with a record exported earlier
(`proves_record`).

`verify` recomputes the days from the records and names every day whose
records no longer match its last seal (which records: changed, missing or
added, from the leaves kept with the seal), every broken link of the chain
and every signature that does not check.

One file, just over 600 lines: sealing, verifying and proving read and write
one tree of one form, and are checked against each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import struct
import time
from dataclasses import dataclass, field

import orjson
import psycopg2

from voiplog.store import _ingest

LEAF = b"\x00"
NODE = b"\x01"
_ZERO = "0" * 64

# The form new seals are made in, and the functions computing each form.
FORM = 2
DAY_LEAVES = {1: "voiplog_day_leaves_v1", 2: "voiplog_day_leaves"}
DAY_HASHES = {1: "voiplog_day_leaves_v1", 2: "voiplog_day_hashes"}  # no keys, when it can
RECORD_LEAF = {1: "voiplog_record_leaf_v1", 2: "voiplog_record_leaf"}


def leaf_hash(row: bytes) -> bytes:
    return hashlib.sha256(LEAF + row).digest()


def _levels(leaves: list[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last."""
    levels = [leaves]
    level = leaves
    sha = hashlib.sha256
    while len(level) > 1:
        up = [sha(NODE + a + b).digest() for a, b in zip(level[0::2], level[1::2], strict=False)]
        if len(level) % 2:
            up.append(level[-1])
        levels.append(up)
        level = up
    return levels


def merkle_root(leaves: list[bytes] | bytes) -> str:
    """The root (hex) of the tree over `leaves` (a list, or end to end); that of no
    records is SHA-256 of nothing."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    if isinstance(leaves, bytes):
        # The first level straight from the bytes: a day's leaves are many.
        sha, blob = hashlib.sha256, leaves
        paired = len(blob) - len(blob) % 64
        level = [sha(NODE + blob[at : at + 64]).digest() for at in range(0, paired, 64)]
        if paired < len(blob):
            level.append(blob[paired:])
        leaves = level
    return _levels(leaves)[-1][0].hex()


def inclusion_path(leaves: list[bytes], index: int) -> list[list[str]]:
    """The siblings from leaf `index` up to the root: ["L" | "R", hash hex] each."""
    return _path(_levels(leaves), index)


def complete_proofs(proofs: list[dict], blob: bytes) -> str | None:
    """Give each proof of one seal, whose leaves are `blob`, its path (the tree built
    once); else why not (those leaves do not give the seal's root)."""
    levels = _levels(split_leaves(blob))
    sealed = proofs[0]["seal"]
    if not levels[-1] or levels[-1][0].hex() != sealed["root"]:
        return f"the leaves kept with seal version {sealed['version']} of {sealed['day']} do not give its root"  # fmt: skip
    for proof in proofs:
        proof["path"] = _path(levels, proof["index"])
    return None


def path_from_siblings(proof: dict) -> str | None:
    """Give a proof whose sibling hashes the database gave end to end (`siblings`, hex,
    migration 0016, from a tree whose root it found to be the seal's) its path; else why
    not (they are not as many as the leaf's place has). Checking each proof against its
    root is `check_proof`'s, as `export verify` does."""
    siblings = proof.pop("siblings")
    sealed = proof["seal"]
    steps = path_steps(proof["index"], sealed["records"])
    if len(siblings) != 64 * len(steps):
        return f"the path given for seal version {sealed['version']} of {sealed['day']} has the wrong length"  # fmt: skip
    proof["path"] = [[side, siblings[64 * n : 64 * n + 64]] for n, (_, _, side) in enumerate(steps)]
    return None


def _path(levels: list[list[bytes]], index: int) -> list[list[str]]:
    return [[side, levels[at][sibling].hex()] for at, sibling, side in path_steps(index, len(levels[0]))]  # fmt: skip


def path_steps(index: int, records: int) -> list[tuple[int, int, str]]:
    """The path of leaf `index` in a tree of `records` leaves: (level, sibling's place,
    "L" when the sibling is on the left) each; a level's odd last node goes up with no
    sibling, so it has no step there."""
    steps = []
    level, width = 0, records
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            steps.append((level, sibling, "L" if sibling < index else "R"))
        index //= 2
        level, width = level + 1, (width + 1) // 2
    return steps


def root_from_path(leaf: bytes, path: list[list[str]]) -> str:
    node = leaf
    for side, sibling in path:
        other = bytes.fromhex(sibling)
        node = hashlib.sha256(NODE + (other + node if side == "L" else node + other)).digest()
    return node.hex()


def split_leaves(blob: bytes) -> list[bytes]:
    return [blob[at : at + 32] for at in range(0, len(blob), 32)]


def signed_text(day: str, version: int, records: int, root: str) -> bytes:
    """What a seal's signature covers."""
    return f"voiplog day seal 1\n{day}\n{version}\n{records}\n{root}\n".encode()


def seal_hash(row: dict) -> str:
    """A seal row's hash, as `voiplog_seal_hash` computes it."""
    sealed_at = row["sealed_at"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    signature = bytes(row["signature"]).hex() if row["signature"] is not None else ""
    text = "|".join(
        (
            str(row["id"]),
            row["day"].isoformat(),
            str(row["version"]),
            str(row["record_count"]),
            row["root"],
            sealed_at,
            row["sealed_by"],
            row["prev_hash"],
            signature,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Sealed:
    day: str
    version: int
    records: int
    root: str
    seconds: float


# The schema of the voiplog_seal extension, where it is installed.
EXTENSION_SCHEMA = (
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'voiplog_seal'"
)


def root_column(schema: str | None) -> str:
    """SQL over a `leaves` column: their root (hex) as the extension in `schema` computes
    it, or, without the extension, the leaves themselves (see `root_of`)."""
    if schema is None:
        return "leaves"
    return '"' + schema.replace('"', '""') + '".voiplog_merkle_root(leaves)'


def root_of(value) -> str:
    """The root from what `root_column` selected."""
    return value if isinstance(value, str) else merkle_root(bytes(value))


def _extension_schema(connection) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(EXTENSION_SCHEMA)
        found = cursor.fetchone()
    return found[0] if found else None


def _root(connection, function: str, day: str) -> tuple[int, str]:
    """(record count, root) of the leaves `function(day)` gives."""
    column = root_column(_extension_schema(connection))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT records, {column} FROM {function}(%s)", (day,))
        count, value = cursor.fetchone()
    return count, root_of(value)


def day_root(connection, day: str, form: int = FORM) -> tuple[int, str]:
    """(record count, root) of a day as its records are now, in leaf `form`."""
    return _root(connection, DAY_HASHES[form], day)


def day_hashes(connection, day: str, form: int = FORM) -> tuple[int, bytes]:
    """(record count, leaves end to end) of a day as its records are now, in leaf `form`:
    what its root is computed from (the keys, not computed, name the leaves)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT records, leaves FROM {DAY_HASHES[form]}(%s)", (day,))
        count, blob = cursor.fetchone()
    return count, bytes(blob)


def day_leaves(connection, day: str, form: int = FORM) -> tuple[int, list[str], list[bytes]]:
    """(record count, keys, leaves) of a day as its records are now, in leaf `form`."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT records, keys, leaves FROM {DAY_LEAVES[form]}(%s)", (day,))
        count, keys, blob = cursor.fetchone()
    return count, keys.split("\n") if keys else [], split_leaves(bytes(blob))


def stage_root(connection, day: str) -> tuple[int, str]:
    """(record count, root) of a day as its records are now, in the form of new seals;
    the database keeps its leaves and their keys for `voiplog_seal_add` called in the
    same transaction without keys and leaves (they do not travel back)."""
    return _root(connection, "voiplog_seal_stage", day)


def seal_day(connection, day: str, version: int, signer=None) -> Sealed | None:
    """Seal `day` as `version` (the last one + 1) in one transaction; None when its
    records are those of its last seal (no version is added)."""
    started = time.perf_counter()
    count, root = stage_root(connection, day)
    signature = certificate = None
    if signer is not None:
        signature = signer.sign(signed_text(day, version, count, root))
        certificate = signer.certificate_pem.decode()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_seal_add(%s, %s, %s, %s, %s, %s, %s, %s)",
            (day, version, count, root, None, None, signature, certificate),
        )
        (made,) = cursor.fetchone()
    connection.commit()
    if made is None:
        return None
    return Sealed(day, version, count, root, time.perf_counter() - started)


def seal_closed_days(connection, before: dt.date, signer=None) -> list[Sealed]:
    """Seal every day partition before `before` that has no seal or took records since."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT day, version, root FROM voiplog_days_to_seal(%s)", (before,))
        due = cursor.fetchall()
    connection.commit()
    made = []
    for day, version, _root in due:
        try:
            sealed = seal_day(connection, day.isoformat(), (version or 0) + 1, signer)
        except psycopg2.errors.SerializationFailure:
            connection.rollback()  # another writer sealed it meanwhile
            continue
        if sealed is not None:
            made.append(sealed)
    return made


# -- verification -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """Something that does not match: a day, a record of it, or a seal row."""

    day: str | None
    what: str
    key: str | None = None

    def line(self) -> str:
        where = self.day or "chain"
        return f"{where}: {self.what}" + (f": {self.key}" if self.key else "")


@dataclass
class Report:
    days_checked: int = 0
    records_checked: int = 0
    seals_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hashed_by: str = "SQL"  # or "the voiplog_seal extension": what computed the leaves

    @property
    def ok(self) -> bool:
        return not self.findings


_SEAL_COLUMNS = (
    "id, day, version, record_count, root, sealed_at, sealed_by, prev_hash, hash, signature, "
    "certificate"
)


def _seal_rows(connection) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_SEAL_COLUMNS} FROM day_seal ORDER BY id")
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def check_chain(rows: list[dict], report: Report) -> None:
    """Every seal row's hash, its link to the row before it and its signature."""
    from voiplog.export import signing

    prev, expected_id = _ZERO, 1
    signed_days: set[str] = set()
    for row in rows:
        day = row["day"].isoformat()
        report.seals_checked += 1
        if row["id"] != expected_id:
            report.findings.append(
                Finding(None, f"seal rows {expected_id}..{row['id'] - 1} are missing")
            )
        if row["prev_hash"] != prev:
            report.findings.append(
                Finding(day, f"broken link: seal row {row['id']} does not follow the row before it")
            )
        if seal_hash(row) != row["hash"]:
            report.findings.append(
                Finding(day, f"seal row {row['id']} (version {row['version']}) was altered")
            )
        if row["signature"] is None and day in signed_days:
            # Whoever sealed it again lacked the key that signed it before.
            report.findings.append(
                Finding(day, f"seal version {row['version']} is not signed, an earlier one was")
            )
        if row["signature"] is not None:
            signed_days.add(day)
            why = signing.check(
                (row["certificate"] or "").encode(),
                signed_text(day, row["version"], row["record_count"], row["root"]),
                bytes(row["signature"]),
            )
            if why is not None:
                report.findings.append(
                    Finding(day, f"seal version {row['version']}: signature: {why}")
                )
        prev, expected_id = row["hash"], row["id"] + 1


def _day_partitions(connection) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_date(substr(c.relname, 6), 'YYYYMMDD') FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'cdr'::regclass "
            "AND c.relname ~ '^cdr_p[0-9]{8}$'"
        )
        return {day.isoformat() for (day,) in cursor.fetchall()}


def verify(connection, days: list[str] | None = None, today: dt.date | None = None) -> Report:
    """Check the seal chain and the given days (all sealed days still stored when None)."""
    report = Report()
    if _extension_schema(connection) is not None:
        report.hashed_by = "the voiplog_seal extension"
    rows = _seal_rows(connection)
    check_chain(rows, report)
    last: dict[str, dict] = {}
    for row in rows:
        last[row["day"].isoformat()] = row
    stored = _day_partitions(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT day FROM day_dirty")
        dirty = {day.isoformat() for (day,) in cursor.fetchall()}
    connection.rollback()
    today = today or dt.datetime.now(dt.UTC).date()
    if days is None:
        days = sorted(d for d in last if d in stored)
        unsealed = sorted(d for d in stored if d not in last and d < today.isoformat())
        if unsealed:
            report.notes.append(f"days over but not sealed yet: {', '.join(unsealed)}")
        for day in sorted(d for d in last if d not in stored):
            report.notes.append(f"{day}: purged (seal version {last[day]['version']} kept)")
    for day in days:
        seal = last.get(day)
        if seal is None:
            report.findings.append(Finding(day, "no seal"))
            continue
        if day not in stored:
            report.notes.append(f"{day}: purged (seal version {seal['version']} kept)")
            continue
        _verify_day(connection, day, seal, day in dirty, report)
    return report


def _verify_day(connection, day: str, seal: dict, dirty: bool, report: Report) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT form FROM day_seal_leaves WHERE seal_id = %s", (seal["id"],))
        found = cursor.fetchone()
    # The form the kept leaves name first; then the others (the leaves, or their form,
    # may be gone or wrong): each hashes the whole row, so either matching will do.
    first = found[0] if found else FORM
    forms = [first, *(f for f in DAY_LEAVES if f != first)]
    for form in forms:
        count, root = day_root(connection, day, form)
        connection.rollback()
        matches = count == seal["record_count"] and root == seal["root"]
        if matches:
            break
    report.days_checked += 1
    report.records_checked += count
    if matches:
        return
    report.findings.append(
        Finding(
            day,
            f"records do not match seal version {seal['version']} "
            f"({count} records now, {seal['record_count']} sealed)"
            + (" (it took records since, and awaits sealing again)" if dirty else ""),
        )
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT keys, leaves FROM day_seal_leaves WHERE seal_id = %s", (seal["id"],))
        kept = cursor.fetchone()
    connection.rollback()
    if kept is None:
        report.findings.append(Finding(day, "the leaves of its seal are gone: records not named"))
        return
    sealed_keys = kept[0].split("\n") if kept[0] else []
    sealed_leaves = split_leaves(bytes(kept[1]))
    if merkle_root(sealed_leaves) != seal["root"] or len(sealed_keys) != len(sealed_leaves):
        report.findings.append(Finding(day, "the leaves kept with its seal do not match the seal"))
        return
    _count, keys, leaves = day_leaves(connection, day, first)
    connection.rollback()
    before = dict(zip(sealed_keys, sealed_leaves, strict=True))
    now = dict(zip(keys, leaves, strict=True))
    for key in sealed_keys:
        if key not in now:
            report.findings.append(Finding(day, "record missing", key))
        elif now[key] != before[key]:
            report.findings.append(Finding(day, "record changed", key))
    for key in keys:
        if key not in before:
            report.findings.append(Finding(day, "record added", key))


# -- proofs --------------------------------------------------------------------


class ProofError(Exception):
    """No proof can be given (message says why)."""


def prove(connection, uid: str) -> dict:
    """The inclusion proof of record `uid` against the last seal of its day.

    The proof carries the row as the leaf hashes it (hex, with its columns'
    names and types to read it, and as JSON for people), the sibling hashes up
    to the root, and the seal (day, version, count, root, hash, signature):
    with it, a record exported earlier can be shown to be one of the sealed
    day, after the day was purged too (see `purge_log.seals`).
    """
    found = _record_leaf(connection, uid, FORM)
    if not found:
        raise ProofError(f"no stored record has uid {uid}")
    if len(found) > 1:
        raise ProofError(f"uid {uid} names {len(found)} stored records")
    table, day, key, row, columns, doc = found[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_SEAL_COLUMNS}, l.keys, l.leaves, l.form FROM day_seal s "
            "JOIN day_seal_leaves l ON l.seal_id = s.id WHERE s.day = %s "
            "ORDER BY s.version DESC LIMIT 1",
            (day,),
        )
        found_seal = cursor.fetchone()
    connection.rollback()
    if found_seal is None:
        raise ProofError(f"{day}, the day of record {uid}, is not sealed yet")
    names = [*(c.strip() for c in _SEAL_COLUMNS.split(",")), "keys", "leaves", "form"]
    seal = dict(zip(names, found_seal, strict=True))
    # The record as the seal's leaves have it (then as the other forms do, as `verify`
    # tries them): its key among the seal's, its row hashing to the leaf there.
    keys = {key: at for at, key in enumerate(seal["keys"].split("\n") if seal["keys"] else [])}
    leaves = split_leaves(bytes(seal["leaves"]))
    named = False
    for form in [seal["form"], *(f for f in RECORD_LEAF if f != seal["form"])]:
        table, day, key, row, columns, doc = found[0] if form == FORM else _record_leaf(connection, uid, form)[0]  # fmt: skip
        row, index = bytes(row), keys.get(key)
        named = named or index is not None
        leaf = leaf_hash(row)
        if index is not None and leaves[index] == leaf:
            break
    else:
        if not named:
            raise ProofError(
                f"record {uid} came after seal version {seal['version']} of {day}: "
                "it is in the day's next seal"
            )
        raise ProofError(
            f"record {uid} does not match seal version {seal['version']} of {day}: "
            "it was changed after the day was sealed"
        )
    return {
        "uid": uid,
        "stored_in": table,
        "row": row.hex(),
        "columns": columns,
        "record": orjson.loads(doc),
        "leaf": leaf.hex(),
        "index": index,
        "path": inclusion_path(leaves, index),
        "seal": {
            "day": day.isoformat(),
            "version": seal["version"],
            "records": seal["record_count"],
            "root": seal["root"],
            "hash": seal["hash"],
            "signature": bytes(seal["signature"]).hex() if seal["signature"] else None,
            "certificate": seal["certificate"],
        },
    }


def _record_leaf(connection, uid: str, form: int) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tbl, day, key, row_bytes, columns, doc FROM {RECORD_LEAF[form]}(%s)", (uid,)
        )
        found = cursor.fetchall()
    connection.rollback()
    return found


def check_proof(proof: dict, root: str | None = None) -> str | None:
    """None when `proof` leads from its row to its seal's root (or to `root`); else why not."""
    leaf = leaf_hash(bytes.fromhex(proof["row"]))
    if leaf.hex() != proof["leaf"]:
        return "the row does not hash to the proof's leaf"
    wanted = root or proof["seal"]["root"]
    if root_from_path(leaf, proof["path"]) != wanted:
        return "the path does not lead to the seal's root"
    return None


# -- reading a row's binary form ---------------------------------------------------
# record_send: the number of columns, then for each its type OID, its length
# (-1: NULL) and its value in the type's binary form. Composite values have the
# same layout; arrays have dimensions, a null flag, their element type and the
# elements. Only the types of the record tables occur.

_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_COMPOSITES = {
    "media_stream": [name for name, _ in _ingest.MEDIA_FIELDS],
    "subscriber_info": [name for name, _ in _ingest.SUBSCRIBER_FIELDS],
    "remote_info": [name for name, _ in _ingest.REMOTE_FIELDS],
}
_SCALARS = {
    25: lambda b: b.decode("utf-8"),  # text
    1043: lambda b: b.decode("utf-8"),  # varchar
    21: lambda b: struct.unpack(">h", b)[0],
    23: lambda b: struct.unpack(">i", b)[0],
    20: lambda b: struct.unpack(">q", b)[0],
    701: lambda b: struct.unpack(">d", b)[0],
    16: lambda b: b == b"\x01",
    1184: lambda b: _PG_EPOCH + dt.timedelta(microseconds=struct.unpack(">q", b)[0]),
    869: lambda b: str(ipaddress.ip_address(b[4:])),  # inet: family, bits, is_cidr, length
    3802: lambda b: orjson.loads(b[1:]),  # jsonb: version 1, then its text
    114: orjson.loads,  # json
}


def _fields(data: bytes, at: int = 0) -> list[tuple[int, bytes | None]]:
    (count,) = struct.unpack_from(">i", data, at)
    at += 4
    out = []
    for _ in range(count):
        oid, length = struct.unpack_from(">Ii", data, at)
        at += 8
        if length < 0:
            out.append((oid, None))
        else:
            out.append((oid, data[at : at + length]))
            at += length
    return out


def _value(type_name: str, oid: int, data: bytes | None):
    if data is None:
        return None
    if type_name.endswith("[]"):
        element = type_name[:-2]
        ndim, _nulls, element_oid = struct.unpack_from(">iiI", data)
        if ndim == 0:
            return []
        (size, _lower) = struct.unpack_from(">ii", data, 12)
        at, items = 20, []
        for _ in range(size):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            items.append(None if length < 0 else _value(element, element_oid, data[at : at + length]))  # fmt: skip
            at += max(length, 0)
        return items
    if type_name in _COMPOSITES:
        names = _COMPOSITES[type_name]
        return {
            name: _value(_BY_OID.get(f_oid, ""), f_oid, f_data)
            for name, (f_oid, f_data) in zip(names, _fields(data), strict=True)
        }
    if oid not in _SCALARS:
        raise ValueError(f"a value of type {type_name} (OID {oid}) cannot be read")
    return _SCALARS[oid](data)


_BY_OID = {25: "text", 1043: "text", 21: "smallint", 23: "integer", 20: "bigint", 701: "double precision", 16: "boolean", 1184: "timestamp with time zone", 869: "inet", 3802: "jsonb", 114: "json"}  # fmt: skip


def decode_row(proof: dict) -> dict:
    """The columns of a proof's row, by name: times as UTC datetimes, addresses as text."""
    row = bytes.fromhex(proof["row"])
    return {
        name: _value(type_name, oid, data)
        for (name, type_name), (oid, data) in zip(proof["columns"], _fields(row), strict=True)
    }


_TIMES = ("started_at", "ringing_at", "answered_at", "ended_at", "requested_at")


def _moment(value):
    if not isinstance(value, str):
        return value
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)


def _same(mine, theirs) -> bool:
    if isinstance(mine, dt.datetime):
        return mine == _moment(theirs)
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return mine.keys() == theirs.keys() and all(_same(mine[k], theirs[k]) for k in mine)
    if isinstance(mine, list) and isinstance(theirs, list):
        return len(mine) == len(theirs) and all(map(_same, mine, theirs))
    if isinstance(mine, float) and isinstance(theirs, int | float):
        return mine == float(theirs)
    return mine == theirs


def proves_record(proof: dict, record: dict) -> bool:
    """Whether the row a proof hashes is `record` as a lawful-access run returned it
    (every key of it; what the store adds to a record, and its annotations, aside)."""
    stored = decode_row(proof)
    stored.update(stored.pop("extra", None) or {})
    for key, value in record.items():
        if key in ("stored_in", "conflicts", "stored_at", "inserted_by"):
            continue
        if not _same(stored.get(key), value):
            return False
    return True
