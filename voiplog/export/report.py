"""`report.html`: the page of an evidence bundle that a person reads.

Strategy: one self-contained HTML file, written from the manifest (what was
asked, by whom, under which authorisation, what was found) and the records.
It fetches nothing and runs nothing: styles are inline, the timeline is an
SVG drawn here, and a Content-Security-Policy forbids every fetch, so that
the page reads the same offline, years later, and cannot call out when an
agency opens it. Every value from a record is escaped.

The page is for reading, not the evidence itself (that is `records.jsonl`
and the tables): past `MAX_TABLE_ROWS` calls the table stops and says so, and
the timeline draws the `MAX_TIMELINE_ROWS` subscribers with the most records,
the others in one row of their own.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo

MAX_TABLE_ROWS = 2000
MAX_TIMELINE_ROWS = 40
MAX_TIMELINE_BARS = 5000  # beyond, each row shows how many records began in each of
TIMELINE_BINS = 300  # these intervals, instead of one bar per record
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"  # fmt: skip

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1a1a1a; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
table.facts th { width: 16em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, monospace; font-size: 0.92em; word-break: break-all; }
.note { color: #555; }
svg text { font: 11px system-ui, sans-serif; fill: #1a1a1a; }
"""

# Timeline colours by what the record is.
_COLOURS = {
    "answered": "#1f6fb2",
    "unanswered": "#d98c1f",
    "app_call": "#2e8b57",
    "media": "#7a5195",
    "registration": "#888888",
}


def _e(value) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def _moment(value) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _when(value, zone: ZoneInfo) -> str:
    moment = _moment(value)
    if moment is None:
        return ""
    utc = moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if zone.key == "UTC":
        return f"{utc} UTC"
    return f"{utc} UTC<br><span class=note>{moment.astimezone(zone).strftime('%Y-%m-%d %H:%M:%S %Z')}</span>"  # fmt: skip


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{_e(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<table class=facts>{body}</table>"


def _who(part: dict) -> str:
    if not part or not part.get("db_role"):
        return ""
    return f"{_e(part.get('os_user'))} (database login {_e(part['db_role'])}) at {_e(part.get('at'))}"  # fmt: skip


def _selector(selector: dict) -> str:
    return ", ".join(f"{_e(k)}={_e(v)}" for k, v in selector.items())


def _category(record: dict) -> str:
    if record.get("kind") == "registration":
        return "registration"
    if record.get("disposition") == "app_call" or record.get("app"):
        return "app_call"
    if record.get("kind") in ("media", "encrypted"):
        return "media"
    return "answered" if record.get("answered_at") else "unanswered"


def _party(record: dict) -> str:
    subscriber = record.get("subscriber") if isinstance(record.get("subscriber"), dict) else {}
    if subscriber.get("id"):
        return str(subscriber["id"])
    return f"address {record.get('subscriber_ip') or record.get('source_ip') or record.get('caller_ip') or '?'}"  # fmt: skip


def _span(record: dict) -> tuple[dt.datetime, dt.datetime] | None:
    start = _moment(record.get("started_at") or record.get("requested_at"))
    if start is None:
        return None
    end = _moment(record.get("ended_at")) or start
    return start, max(end, start)


def _end(ip, port) -> str:
    if not ip:
        return ""
    host = f"[{ip}]" if ":" in str(ip) and port else str(ip)
    return f"{host}:{port}" if port else host


def _addresses(record: dict) -> str:
    """Signalling ends of a call; the first stream's or flow's ends of a session without one."""
    if record.get("caller_ip") or record.get("callee_ip"):
        pair = (_end(record.get("caller_ip"), record.get("caller_port")), _end(record.get("callee_ip"), record.get("callee_port")))  # fmt: skip
    else:
        streams = [s for key in ("media", "app_flows") for s in record.get(key) or () if isinstance(s, dict)]  # fmt: skip
        if not streams:
            return ""
        first = streams[0]
        pair = (_end(first.get("src_ip"), first.get("src_port")), _end(first.get("dst_ip"), first.get("dst_port")))  # fmt: skip
    return " → ".join(pair)


def _ticks(lo: dt.datetime, hi: dt.datetime, count: int = 8) -> list[dt.datetime]:
    """Round instants between lo and hi, about `count` of them."""
    span = (hi - lo).total_seconds()
    steps = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)  # fmt: skip
    step = next((s for s in steps if span / s <= count), 30 * 86400)
    first = int(lo.timestamp() // step + 1) * step
    return [
        dt.datetime.fromtimestamp(t, dt.UTC) for t in range(first, int(hi.timestamp()) + 1, step)
    ]


def _density(spans, index: dict, rows: int, lo, hi, x, top: int, row_h: int) -> str:
    """Records per row and interval, as bars whose height is the count (many records)."""
    bin_s = max((hi - lo).total_seconds() / TIMELINE_BINS, 1e-6)
    counts: Counter = Counter()
    for record, (start, _) in spans:
        row = index.get(_party(record), rows - 1)
        counts[row, min(int((start - lo).total_seconds() / bin_s), TIMELINE_BINS - 1)] += 1
    peak = max(counts.values())
    parts = []
    for (row, slot), n in sorted(counts.items()):
        at = lo + dt.timedelta(seconds=slot * bin_s)
        h = max((row_h - 6) * n / peak, 1.5)
        x0, x1 = x(at), x(at + dt.timedelta(seconds=bin_s))
        parts.append(
            f'<rect x="{x0:.1f}" y="{top + (row + 1) * row_h - 2 - h:.1f}" width="{max(x1 - x0 - 0.5, 1):.1f}" '
            f'height="{h:.1f}" fill="{_COLOURS["answered"]}"><title>{n} records from {at.isoformat()}</title></rect>'
        )
    minutes = bin_s / 60
    parts.append(
        f'<text x="{x(lo):.1f}" y="{top + rows * row_h + 14}">{len(spans)} records: bar height is the number '
        f"that began in each {minutes:.0f}-minute interval (at most {peak})</text>"
    )
    return "".join(parts)


def timeline_svg(records: list[dict], zone: ZoneInfo) -> str:
    """The records per subscriber over time, as an SVG of its own (no fonts or images fetched)."""
    spans = [(record, _span(record)) for record in records]
    spans = [(record, span) for record, span in spans if span is not None]
    if not spans:
        return "<p class=note>No record to draw.</p>"
    lo = min(span[0] for _, span in spans)
    hi = max(span[1] for _, span in spans)
    pad = max((hi - lo) * 0.02, dt.timedelta(seconds=30))
    lo, hi = lo - pad, hi + pad
    busiest = Counter(_party(record) for record, _ in spans)
    shown = sorted(sorted(busiest), key=lambda party: -busiest[party])[:MAX_TIMELINE_ROWS]
    rows = sorted(shown)
    others = len(busiest) - len(rows)
    if others:
        rows.append(f"{others} other subscribers")
    label_w, width, row_h, top = 190, 1100, 22, 34
    plot_w = width - label_w - 10
    height = top + row_h * len(rows) + 20
    scale = plot_w / max((hi - lo).total_seconds(), 1e-9)

    def x(moment: dt.datetime) -> float:
        return label_w + (moment - lo).total_seconds() * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of the records">'
    ]
    label_end = 0.0  # right edge of the last label drawn: labels never overlap
    for tick in _ticks(lo, hi):
        tx = x(tick)
        local = tick.astimezone(zone)
        label = tick.strftime("%m-%d %H:%M:%S") + ("" if zone.key == "UTC" else local.strftime(" (%H:%M %Z)"))  # fmt: skip
        parts.append(f'<line x1="{tx:.1f}" y1="{top - 6}" x2="{tx:.1f}" y2="{height - 20}" stroke="#e3e3e3"/>')  # fmt: skip
        half = len(label) * 3.2  # about half its width at 11 px
        if tx - half < label_end + 8 or tx + half > width:
            continue
        parts.append(f'<text x="{tx:.1f}" y="{top - 10}" text-anchor="middle">{_e(label)}</text>')
        label_end = tx + half
    index = {party: i for i, party in enumerate(rows)}
    for i, party in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="4" y="{y + 15}">{_e(party[:28])}</text>')
        parts.append(f'<line x1="{label_w}" y1="{y + row_h}" x2="{width - 10}" y2="{y + row_h}" stroke="#f0f0f0"/>')  # fmt: skip
    if len(spans) <= MAX_TIMELINE_BARS:
        for record, (start, end) in spans:
            y = top + index.get(_party(record), len(rows) - 1) * row_h + 4
            category = _category(record)
            x0, w = x(start), max((end - start).total_seconds() * scale, 2.0)
            title = f"{record.get('caller') or ''} → {record.get('callee') or ''} {start.isoformat()} ({category})"  # fmt: skip
            parts.append(
                f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                f'fill="{_COLOURS[category]}" data-uid="{_e(record.get("uid"))}"><title>{_e(title)}</title></rect>'
            )
        legend_y = height - 6
        for i, (name, colour) in enumerate(_COLOURS.items()):
            lx = label_w + i * 150
            parts.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')  # fmt: skip
            parts.append(f'<text x="{lx + 14}" y="{legend_y}">{_e(name.replace("_", " "))}</text>')
    else:
        parts.append(_density(spans, index, len(rows), lo, hi, x, top, row_h))
    parts.append("</svg>")
    return "".join(parts)


def _calls_table(records: list[dict], zone: ZoneInfo) -> str:
    calls = [record for record in records if record.get("kind") != "registration"]
    head = (
        "<tr><th>#</th><th>Start</th><th>Caller</th><th>Callee</th><th>Subscriber</th>"
        "<th>Addresses</th><th>Duration (s)</th><th>Disposition</th><th>App</th><th>uid</th></tr>"
    )
    body = []
    for n, record in enumerate(calls[:MAX_TABLE_ROWS], 1):
        app = record.get("app") if isinstance(record.get("app"), dict) else {}
        ends = _addresses(record)
        body.append(
            f"<tr><td class=num>{n}</td><td>{_when(record.get('started_at'), zone)}</td>"
            f"<td>{_e(record.get('caller'))}</td><td>{_e(record.get('callee'))}</td>"
            f"<td>{_e(_party(record))}</td><td class=mono>{_e(ends)}</td>"
            f"<td class=num>{_e(record.get('duration_s'))}</td><td>{_e(record.get('disposition'))}</td>"
            f"<td>{_e(app.get('name'))}</td><td class=mono>{_e(record.get('uid'))}</td></tr>"
        )
    more = ""
    if len(calls) > MAX_TABLE_ROWS:
        more = f"<p class=note>The first {MAX_TABLE_ROWS} of {len(calls)} calls are shown; calls.csv and records.jsonl hold them all.</p>"  # fmt: skip
    if not calls:
        return "<p>No call or media session was found.</p>"
    return f"<table class=calls>{head}{''.join(body)}</table>{more}"


def _registrations_table(records: list[dict], zone: ZoneInfo) -> str:
    registrations = [record for record in records if record.get("kind") == "registration"]
    if not registrations:
        return "<p>No registration was found.</p>"
    head = "<tr><th>Time</th><th>Address of record</th><th>Contact</th><th>Source</th><th>Result</th><th>Subscriber</th></tr>"  # fmt: skip
    body = "".join(
        f"<tr><td>{_when(r.get('requested_at'), zone)}</td><td>{_e(r.get('aor'))}</td>"
        f"<td>{_e(r.get('contact_uri'))}</td><td class=mono>{_e(r.get('source_ip'))}:{_e(r.get('source_port'))}</td>"
        f"<td>{_e(r.get('result'))}</td><td>{_e(_party(r))}</td></tr>"
        for r in registrations[:MAX_TABLE_ROWS]
    )
    return f"<table class=registrations>{head}{body}</table>"


def _proof_facts(proofs: dict | None) -> list[tuple[str, str]]:
    if proofs is None:
        return []
    return [
        (
            "Inclusion proofs (proofs.jsonl)",
            f"{_e(proofs['proven'])} records proven to be among the sealed records of their day; "
            f"{_e(proofs['unproven'])} without a proof (the reason is in the file)",
        )
    ]


def render(manifest: dict, records: list[dict]) -> bytes:
    """The page, UTF-8. `manifest` is the bundle's manifest without its `files` (hashed after)."""
    request, run, export = manifest["request"], manifest["run"], manifest["export"]
    zone = ZoneInfo(export["local_zone"])
    authorisation = request["authorisation"]
    kinds = Counter(_category(record) for record in records)
    subscribers = defaultdict(int)
    for record in records:
        subscribers[_party(record)] += 1
    title = f"Evidence export: request {request['id']}, case {request['case_ref']}"
    request_facts = _facts(
        [
            ("Request", _e(request["id"])),
            ("Case", _e(request["case_ref"])),
            ("Agency", _e(request["agency"])),
            (
                "Officer",
                _e(
                    " ".join(
                        filter(
                            None, (request["officer"].get("rank"), request["officer"].get("name"))
                        )
                    )
                ),
            ),
            ("Legal basis", _e(request["legal_basis"])),
            ("Authorisation", _e(authorisation["reference"])),
            (
                "Authorisation document SHA-256",
                f"<code>{_e(authorisation['document_sha256'])}</code>"
                if authorisation.get("document_sha256")
                else "none registered",
            ),
            (
                "Authorisation valid",
                f"{_e(authorisation.get('valid_from'))} to {_e(authorisation.get('valid_until'))}",
            ),
            (
                "Window searched",
                f"{_e(manifest['window']['from'])} to {_e(manifest['window']['to'])}",
            ),
            (
                "Selectors as entered",
                "<br>".join(_selector(s) for s in manifest["selectors"]["entered"]),
            ),
            ("Registered by", _who(request.get("registered", {}))),
            ("Approved by", _who(request.get("approved", {}))),
        ]
    )
    run_facts = _facts(
        [
            ("Run at", _e(run["at"])),
            (
                "Run by",
                f"{_e(run['os_user'])}@{_e(run['host'])} (database login {_e(run['db_role'])})",
            ),
            ("Audit entry of the run", _e(run["audit_seq"])),
            ("Records", _e(run["records"])),
            ("Truncated at the request's maximum", "yes" if run["truncated"] else "no"),
            *_proof_facts(manifest.get("proofs")),
            ("Exported at", _e(export["at"])),
            (
                "Produced by",
                f"{_e(export['software'])}, POP {_e(export['pop'])}, sensor {_e(export['sensor'])}",
            ),
            ("Local time zone", _e(export["local_zone"])),
        ]
    )
    counts = _facts(
        [
            ("Calls (SIP, answered)", _e(kinds["answered"])),
            ("Calls (SIP, not answered)", _e(kinds["unanswered"])),
            ("App calls", _e(kinds["app_call"])),
            ("Media sessions without signalling", _e(kinds["media"])),
            ("Registrations", _e(kinds["registration"])),
            ("Subscribers", _e(len(subscribers))),
        ]
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="referrer" content="no-referrer">
<title>{_e(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class=note>Call-detail records (metadata only: no audio, no content) produced for the request below.
The files of this bundle are listed with their SHA-256 in hashes.txt and manifest.json; manifest.json
is signed (manifest.json.p7s). This page is a reading aid: records.jsonl and the CSV tables are the records.</p>
<h2>Request and authorisation</h2>
{request_facts}
<h2>Run and export</h2>
{run_facts}
<h2>What was found</h2>
{counts}
<h2>Timeline</h2>
<p class=note>One row per subscriber; each bar is a record from its start to its end (UTC; local time in brackets).</p>
{timeline_svg(records, zone)}
<h2>Calls and sessions</h2>
{_calls_table(records, zone)}
<h2>Registrations</h2>
{_registrations_table(records, zone)}
</body>
</html>
"""
    return page.encode("utf-8")
