"""Lawful access: selectors normalised, requests registered, decided and run through Postgres.

Strategy: everything that decides whether a record may be read lives in the
database (migration 0005): the request's life cycle, the second-person rule,
the window and validity checks, the search itself and its audit row, all in
SECURITY DEFINER functions that the voiplog_requester and voiplog_approver
roles may call while they cannot read a record table. This module only turns
what an officer typed into the normalised selectors those functions search
for (keeping what was typed, which the audit trail repeats), calls them, and
turns the JSON they return back into records as the CDR contract has them.

A refusal (wrong state, expired, outside the window, self-approval) comes
back as a reason, not as an exception, so that its audit row is committed;
the caller commits and reports it. A refusal Postgres raises itself (a role
without the privilege) is reported afterwards through
`voiplog_audit_denied`, since the failed transaction took its own row with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from voiplog.cdr import format_ts

STATES = ("awaiting_approval", "approved", "disclosed", "rejected", "cancelled", "expired")
ROLES = ("caller", "callee", "any")
TEXT_SELECTORS = ("subscriber", "account", "access_line", "call_id", "app")
DEFAULT_MAX_RECORDS = 10_000
DEFAULT_SLACK_S = 60  # a CGNAT log's time and the record's may differ by this much
_APP_NAME = re.compile(r"^[a-z0-9_]{2,32}$")


class RequestError(ValueError):
    """A request or selector that cannot be registered as given (a usage error)."""


# ---------------------------------------------------------------- selectors


def _digits(entered: str) -> str:
    return re.sub(r"[\s().\-/]", "", entered)


def number_selector(
    entered: str, role: str = "any", region: str | None = None, national_prefix: str | None = None
) -> dict:
    """A phone number as searched: its E.164 form and the dial strings a record may hold.

    Records keep the user part of From/To as it was signalled, so one number
    is searched in every form it may have been written in: ``+912212345678``,
    ``912212345678``, ``00912212345678`` and, for a number of the default
    region, the national forms ``02212345678`` and ``2212345678``.
    """
    import phonenumbers

    if role not in ROLES:
        raise RequestError(f"number role {role!r}: give one of {', '.join(ROLES)}")
    text = _digits(entered)
    if not re.fullmatch(r"\+?[0-9]{3,20}", text):
        raise RequestError(f"number {entered!r} is not an E.164 number or a dial string")
    region = region.upper() if region else None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise RequestError(f"region {region!r} is not an ISO 3166 region code phonenumbers knows")
    if (
        national_prefix
        and region
        and not text.startswith(("+", "00"))
        and text.startswith(national_prefix)
    ):
        text = text[len(national_prefix) :]
    if not text.startswith("+") and region is None:
        raise RequestError(
            f"number {entered!r} has no country code: write it as +<country><number> "
            "or give the default region (--region, `region` in the request file)"
        )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise RequestError(f"number {entered!r}: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise RequestError(f"number {entered!r} is not a possible number for its country")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.national_significant_number(number)
    country = str(number.country_code)
    idd = "00"
    if region:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = meta.preferred_international_prefix or meta.international_prefix
        if prefix and prefix.isdigit():
            idd = prefix
    variants = [e164, country + national, idd + country + national]
    if region and phonenumbers.region_code_for_number(number) == region:
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        trunk = national_prefix or meta.national_prefix or ""
        variants += [trunk + national, national]
    unique = list(dict.fromkeys(v for v in variants if v))
    return {"type": "number", "value": e164, "role": role, "variants": unique}


def parse_moment(value: str | dt.datetime, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            else:
                moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise RequestError(f"{what}: {value!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        raise RequestError(f"{what}: {value!r} has no time zone; add Z or an offset")
    return moment.astimezone(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ip_selector(
    entered: str,
    port: int | None = None,
    at: str | dt.datetime | None = None,
    broad: bool = False,
    slack_s: int = DEFAULT_SLACK_S,
) -> dict:
    """An address (with port and time for a shared one) or, in a broad request, a network."""
    try:
        network = ipaddress.ip_network(entered.strip(), strict=False)
    except ValueError:
        raise RequestError(f"ip {entered!r} is not an IP address or network") from None
    is_host = network.prefixlen == network.max_prefixlen
    if not is_host and not broad:
        raise RequestError(
            f"ip {entered!r} is a network: a prefix is searched only in a request marked broad (--broad)"
        )
    selector: dict = {
        "type": "ip",
        "value": str(network.network_address) if is_host else str(network),
    }
    if port is not None:
        if not 1 <= int(port) <= 65535:
            raise RequestError(f"port {port} is outside 1..65535")
        selector["port"] = int(port)
    if at is not None:
        selector["at"] = _iso(parse_moment(at, "at"))
        selector["slack_s"] = int(slack_s)
    return selector


def text_selector(kind: str, value: str) -> dict:
    """A subscriber id, account, access line, Call-ID or app name, exact."""
    if kind not in TEXT_SELECTORS:
        raise RequestError(f"unknown selector type {kind!r}")
    text = str(value).strip()
    if not text:
        raise RequestError(f"{kind}: empty value")
    if kind == "app":
        text = text.lower()
        if not _APP_NAME.match(text):
            raise RequestError(f"app {value!r} is not an application name such as whatsapp")
    return {"type": kind, "value": text}


def normalise(entered: dict, region: str | None, national_prefix: str | None, broad: bool) -> dict:
    """One selector as entered (a dict with `type`, `value` and options) as searched."""
    kind = entered.get("type")
    value = entered.get("value")
    if not isinstance(value, str | int) or value == "":
        raise RequestError(f"selector {entered!r}: no value")
    if kind == "number":
        return number_selector(str(value), entered.get("role", "any"), region, national_prefix)
    if kind == "ip":
        return ip_selector(str(value), entered.get("port"), entered.get("at"), broad)
    return text_selector(str(kind), str(value))


# ----------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """A request as it will be registered."""

    case_ref: str
    agency: str
    officer_name: str
    officer_rank: str | None
    legal_basis: str
    authorisation_ref: str
    authorisation_sha256: str | None
    valid_from: dt.datetime
    valid_until: dt.datetime
    window_from: dt.datetime
    window_to: dt.datetime
    selectors_entered: list[dict]
    selectors: list[dict]
    broad: bool = False
    max_records: int = DEFAULT_MAX_RECORDS
    delivery: str | None = None


def load_request_file(path: str | Path) -> dict:
    """A request file (TOML, or JSON by its .json suffix) as flat fields."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestError(f"{path}: {exc.strerror}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"{path}: {exc}") from None
    flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for section in ("officer", "authorisation", "window"):
        for key, value in (data.get(section) or {}).items():
            flat[f"{section}.{key}"] = value
    known = {
        "case", "agency", "legal_basis", "max_records", "delivery", "broad", "region",
        "national_prefix", "selectors", "officer.name", "officer.rank", "authorisation.reference",
        "authorisation.document", "authorisation.sha256", "authorisation.valid_from",
        "authorisation.valid_until", "window.from", "window.to",
    }  # fmt: skip
    unknown = sorted(set(flat) - known)
    if unknown:
        raise RequestError(f"{path}: unknown key {unknown[0]!r}")
    if "authorisation.document" in flat:
        document = path.parent / str(flat.pop("authorisation.document"))
        flat["authorisation.sha256"] = sha256_of(document)
    return flat


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as document:
            for block in iter(lambda: document.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise RequestError(f"authorisation document {path}: {exc.strerror}") from None
    return digest.hexdigest()


def build_spec(fields: dict, now: dt.datetime | None = None) -> RequestSpec:
    """A RequestSpec from flat fields (a request file's, overridden by flags); checked."""
    now = now or dt.datetime.now(dt.UTC)

    def need(key: str) -> str:
        value = fields.get(key)
        if value is None or str(value).strip() == "":
            raise RequestError(f"missing {key!r} (flag or request file)")
        return str(value).strip()

    broad = bool(fields.get("broad", False))
    region = fields.get("region")
    national_prefix = fields.get("national_prefix")
    entered = list(fields.get("selectors") or [])
    if not entered:
        raise RequestError("no selector: give at least one number, ip, subscriber, account, access line, Call-ID or app")  # fmt: skip
    selectors = [normalise(s, region, national_prefix, broad) for s in entered]
    if all(s["type"] == "app" for s in selectors) and not broad:
        raise RequestError("an app name alone selects every call of that app: add a selector or mark the request broad")  # fmt: skip
    valid_from = parse_moment(
        fields.get("authorisation.valid_from") or now, "authorisation valid from"
    )
    valid_until = parse_moment(need("authorisation.valid_until"), "authorisation valid until")
    if valid_until <= valid_from:
        raise RequestError("the authorisation must be valid until after it is valid from")
    window_from = parse_moment(need("window.from"), "window from")
    window_to = parse_moment(need("window.to"), "window to")
    if window_to <= window_from:
        raise RequestError("the window must end after it starts")
    max_records = int(fields.get("max_records") or DEFAULT_MAX_RECORDS)
    if not 1 <= max_records <= 1_000_000:
        raise RequestError("max records must be between 1 and 1,000,000")
    sha = fields.get("authorisation.sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
        raise RequestError("authorisation sha256 must be 64 lower-case hex digits")
    return RequestSpec(
        case_ref=need("case"),
        agency=need("agency"),
        officer_name=need("officer.name"),
        officer_rank=str(fields.get("officer.rank") or "").strip() or None,
        legal_basis=need("legal_basis"),
        authorisation_ref=need("authorisation.reference"),
        authorisation_sha256=sha,
        valid_from=valid_from,
        valid_until=valid_until,
        window_from=window_from,
        window_to=window_to,
        selectors_entered=[dict(s) for s in entered],
        selectors=selectors,
        broad=broad,
        max_records=max_records,
        delivery=fields.get("delivery"),
    )


# ------------------------------------------------------------ the database


def register(connection, spec: RequestSpec, os_user: str, host: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_request_register(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, %s, %s)",
            (
                spec.case_ref, spec.agency, spec.officer_name, spec.officer_rank,
                spec.legal_basis, spec.authorisation_ref, spec.authorisation_sha256,
                spec.valid_from, spec.valid_until, spec.window_from, spec.window_to,
                json.dumps(spec.selectors_entered), json.dumps(spec.selectors), spec.broad,
                spec.max_records, spec.delivery, os_user, host,
            ),
        )  # fmt: skip
        return cursor.fetchone()[0]


def decide(
    connection,
    request_id: int,
    decision: str,
    os_user: str,
    host: str,
    reason: str | None = None,
    broad_seen: bool = False,
) -> str | None:
    """approve, reject or cancel; None when done, else why it was refused."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_request_decide(%s, %s, %s, %s, %s, %s)",
            (request_id, decision, reason, broad_seen, os_user, host),
        )
        return cursor.fetchone()[0]


def expire(connection, os_user: str, host: str) -> int:
    """Requests whose authorisation ran out become expired; how many did."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT voiplog_requests_expire(%s, %s)", (os_user, host))
        return cursor.fetchone()[0]


def report_denied(
    connection, action: str, request_id: int | None, reason: str, os_user: str, host: str
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_audit_denied(%s, %s, %s, %s, %s)",
            (action, request_id, reason, os_user, host),
        )


def requests(connection, state: str | None = None, request_id: int | None = None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM access_request WHERE (%(state)s IS NULL OR state = %(state)s) "
            "AND (%(id)s IS NULL OR id = %(id)s) ORDER BY id",
            {"state": state, "id": request_id},
        )
        names = [d.name for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class RunResult:
    ok: bool
    status: dict
    records: list[dict] = field(default_factory=list)
    # With proofs: one per record, in their order: an inclusion proof as `store prove`
    # gives it (without the record), or {"uid", "stored_in", "unproven": why}.
    proofs: list[dict] | None = None

    @property
    def reason(self) -> str:
        return self.status.get("reason", "")


def run(
    connection,
    request_id: int,
    os_user: str,
    host: str,
    count_only: bool = False,
    delivery: str | None = None,
    retention_days: int | None = None,
    narrow_from: dt.datetime | None = None,
    narrow_to: dt.datetime | None = None,
    proofs: bool = False,
) -> RunResult:
    """Run an approved request; the records as the contract has them (plus `stored_in`,
    and `conflicts` when other content arrived under a record's key). A matched call
    comes with the other legs of its session (same `session_uid`, migration 0009).
    With `proofs`, each record's inclusion proof against its day's seal, or why there
    is none (migration 0012)."""
    import orjson
    import psycopg2.extras

    function = "voiplog_request_run_proven" if proofs else "voiplog_request_run"
    # With proofs, the rows are read as they come: without the extension's paths each
    # sealed day brings its leaves (32 MB for 1,000,000 records), which are let go once
    # its proofs have their paths.
    streamed = proofs and not connection.autocommit
    with connection.cursor(name="voiplog_run" if streamed else None) as cursor:
        # orjson parses the documents (100,000 records are 150 MB of JSON) a few times faster.
        psycopg2.extras.register_default_jsonb(cursor, loads=orjson.loads)
        cursor.itersize = 2000
        cursor.execute(
            f"SELECT source, doc{', leaves' if proofs else ''} FROM {function}(%s, %s, %s, %s, %s, %s, %s, %s)",
            (request_id, count_only, os_user, host, delivery, retention_days, narrow_from, narrow_to),
        )  # fmt: skip
        rows = iter(cursor if streamed else cursor.fetchall())
        status = next(rows)[1]
        records, proven = _read_run(rows)
    result = RunResult(bool(status.get("ok")), status, records)
    if proofs and result.ok and not count_only:
        result.proofs = [
            proven.get((r["uid"], r["stored_in"]))
            or {"uid": r["uid"], "stored_in": r["stored_in"], "unproven": "not found among the proofs"}
            for r in records
        ]  # fmt: skip
    return result


def _whole_proof(doc: dict, day: dict) -> dict:
    """A proof as `voiplog store prove` lays it out, from a proof row and its day's seal
    row (migration 0016: the seal and the columns come once a day); its path is given
    next, from the siblings or the day's leaves."""
    proof = {
        "uid": doc["uid"],
        "stored_in": doc["stored_in"],
        "row": doc["row"],
        "columns": doc.get("columns") or day["columns"][doc["stored_in"]],
        "leaf": doc["leaf"],
        "index": doc["index"],
        "path": None,
        "seal": day["seal"],
    }
    if "siblings" in doc:
        proof["siblings"] = doc["siblings"]
    return proof


def _read_run(rows) -> tuple[list[dict], dict[tuple[str, str], dict]]:
    """The records of a run's rows after its status, and their proofs by (uid, table).
    A proof comes with its sibling hashes (the `voiplog_seal` extension at 1.1), or a
    sealed day's proofs come just before its leaves, which give them their paths."""
    from voiplog.store import seal

    records: list[dict] = []
    proven: dict[tuple[str, str], dict] = {}
    waiting: list[dict] = []  # the proofs of the day whose leaves come next
    day: dict = {}  # the seal and columns of the day whose proofs come next
    for source, doc, *leaves in rows:
        if source == "conflict":
            # Another arrival under the record's key, with other content (the
            # store kept the first): shown beside the record it contests.
            records[-1].setdefault("conflicts", []).append(doc)
        elif source == "seal":
            day = doc
        elif source == "proof":
            if "index" in doc:
                doc = _whole_proof(doc, day)
            proven[doc["uid"], doc["stored_in"]] = doc
            if "siblings" in doc:  # its path computed in the database
                why = seal.path_from_siblings(doc)
                if why:
                    proven[doc["uid"], doc["stored_in"]] = {"uid": doc["uid"], "stored_in": doc["stored_in"], "unproven": why}  # fmt: skip
            elif "index" in doc:
                waiting.append(doc)
        elif source == "leaves":
            why = seal.complete_proofs(waiting, bytes(leaves[0])) if waiting else None
            for p in waiting if why else ():
                proven[p["uid"], p["stored_in"]] = {"uid": p["uid"], "stored_in": p["stored_in"], "unproven": why}  # fmt: skip
            waiting = []
        else:
            records.append(contract_record(source, doc))
    return records, proven


def record_export(
    connection,
    request_id: int,
    records_seq: int,
    manifest_sha256: str,
    target: str,
    files: dict,
    os_user: str,
    host: str,
) -> int:
    """The `export` audit row of a bundle, beside the run (`records_seq`) that read its records.

    The database accepts it only for a run of the same request by the same
    login in the same transaction; the number of the new audit row.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT voiplog_export_record(%s, %s, %s, %s, %s, %s, %s)",
            (request_id, records_seq, manifest_sha256, target, json.dumps(files), os_user, host),
        )
        return cursor.fetchone()[0]


_TIMES = ("started_at", "ringing_at", "answered_at", "ended_at", "requested_at")
_INTERNAL = ("pop", "sensor")


def _contract_ts(value):
    if not isinstance(value, str):
        return value
    # Postgres writes a UTC session's timestamptz as 2026-03-01T10:00:00.48+00:00.
    if value.endswith("+00:00") and len(value) >= 25 and value[10] == "T":
        if len(value) == 25:
            return value[:19] + ".000000Z"
        if value[19] == "." and len(value) <= 32:
            return value[:20] + value[20:-6].ljust(6, "0") + "Z"
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return format_ts((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def contract_record(source: str, doc: dict) -> dict:
    """A record as the database returned it (JSON of the row) in the contract's form."""
    record = dict(doc)
    for key in _TIMES:
        if key in record:
            record[key] = _contract_ts(record[key])
    for stream in record.get("media") or ():
        if isinstance(stream, dict):
            for key in ("first_at", "last_at"):
                stream[key] = _contract_ts(stream.get(key))
    if isinstance(record.get("flags"), list):
        record["flags"] = list(record["flags"])
    record["stored_in"] = {"cdr": "cdr", "registration": "registration", "held": "held_record"}[source]  # fmt: skip
    return record


def describe_selector(selector: dict) -> str:
    """One selector as searched, in words."""
    kind = selector["type"]
    if kind == "number":
        return f"number {selector['value']} as {selector['role']} (searched as {', '.join(selector['variants'])})"  # fmt: skip
    if kind == "ip":
        text = f"ip {selector['value']}"
        if "port" in selector:
            text += f" port {selector['port']}"
        if "at" in selector:
            text += f" at {selector['at']} (±{selector.get('slack_s', DEFAULT_SLACK_S)} s)"
        return text
    return f"{kind.replace('_', ' ')} {selector['value']}"


def describe_entered(entered: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in entered.items())


def selectors_from_flags(
    numbers: Iterable[str],
    role: str,
    ips: Iterable[str],
    port: int | None,
    at: str | None,
    texts: Iterable[tuple[str, str]],
) -> list[dict]:
    """Selectors as entered on the command line (one dict each, as a request file has them)."""
    out: list[dict] = [{"type": "number", "value": n, "role": role} for n in numbers]
    for ip in ips:
        entry: dict = {"type": "ip", "value": ip}
        if port is not None:
            entry["port"] = port
        if at is not None:
            entry["at"] = at
        out.append(entry)
    out += [{"type": kind, "value": value} for kind, value in texts]
    return out
