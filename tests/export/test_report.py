"""`report.html`: self-contained, escaped, and shown by a real browser with no request to the network.

The browser is Debian's headless Chromium, run in a network namespace of its
own (`unshare --net`), so that nothing it tries leaves the machine. Its net
log tells the page's own requests (which carry the page as initiator) from
the browser's background ones; a page that does fetch something shows the
check catches it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from voiplog.export import report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs Debian's chromium and root for a network namespace of its own",
)
WINDOW = (1280, 1600)


def chromium(tmp_path: Path, page: Path, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [
            "unshare", "--net", "timeout", "90", CHROMIUM, "--headless", "--no-sandbox",
            "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update",
            f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *mode, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for (the browser's own update checks have no initiator)."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] == start_job and "url" in params and params.get("initiator") != "not an origin":  # fmt: skip
            urls.append(params["url"])
    return [url for url in urls if not url.startswith(("file:", "data:"))]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@needs_browser
def test_the_net_log_check_catches_a_page_that_fetches(tmp_path):
    page = tmp_path / "fetching.html"
    page.write_text('<!DOCTYPE html><p>x</p><img src="http://192.0.2.1/tracker.png">')
    net_log = tmp_path / "net.json"
    shown = chromium(tmp_path, page, f"--log-net-log={net_log}", f"--screenshot={tmp_path / 'x.png'}")  # fmt: skip
    assert net_log.exists(), shown.stderr[-2000:]
    assert page_requests(net_log) == ["http://192.0.2.1/tracker.png"]


@needs_browser
def test_the_report_of_a_real_export_renders_with_no_request_and_shows_the_calls(
    exported, tmp_path
):
    _, out, _ = exported
    page = out / "report.html"
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    calls = [r for r in records if r["kind"] != "registration"]

    net_log, shot = tmp_path / "net.json", tmp_path / "report.png"
    shown = chromium(tmp_path, page, f"--log-net-log={net_log}", f"--screenshot={shot}")
    assert shot.exists(), shown.stderr[-2000:]
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 20_000  # a page with tables and a picture, not a blank one
    assert page_requests(net_log) == []

    dom = chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    request_id = json.loads((out / "manifest.json").read_text())["request"]["id"]
    assert f"<h1>Evidence export: request {request_id}, case K-9</h1>" in dom.stdout
    table = dom.stdout.split('<table class="calls">', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == len(calls) + 1
    for call in calls:
        assert call["uid"] in table
        assert f'data-uid="{call["uid"]}"' in dom.stdout  # drawn on the timeline
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["case_ref"] in dom.stdout
    assert manifest["request"]["authorisation"]["reference"] in dom.stdout


MANIFEST = {
    "request": {
        "id": 3,
        "case_ref": "K-<1>",
        "agency": "State Police",
        "officer": {"name": "Meier", "rank": None},
        "legal_basis": "s. 100g",
        "authorisation": {
            "reference": "AG 1",
            "document_sha256": None,
            "valid_from": None,
            "valid_until": "2999-01-01T00:00:00.000000Z",
        },
        "registered": {
            "db_role": "vl_requester",
            "os_user": "alice",
            "at": "2026-03-02T08:00:00.000000Z",
        },
        "approved": {
            "db_role": "vl_approver",
            "os_user": "bob",
            "at": "2026-03-02T09:00:00.000000Z",
        },
    },
    "selectors": {"entered": [{"type": "number", "value": "0221"}], "searched": []},
    "window": {"from": "2026-03-01T00:00:00.000000Z", "to": "2026-03-02T00:00:00.000000Z"},
    "run": {
        "at": "2026-03-02T10:00:00.000000Z",
        "db_role": "vl_requester",
        "os_user": "alice",
        "host": "h",
        "audit_seq": 4,
        "records": 3,
        "truncated": False,
    },
    "export": {
        "at": "2026-03-02T10:00:01.000000Z",
        "software": "voiplog",
        "pop": "P",
        "sensor": "s",
        "local_zone": "Asia/Kolkata",
    },
}


def test_every_value_from_a_record_is_escaped_and_nothing_is_fetched_or_run():
    hostile = "<script>alert(1)</script><img src=http://192.0.2.1/x>"
    records = [
        {
            "uid": 'u"1',
            "kind": "sip",
            "caller": hostile,
            "callee": "+4930222",
            "started_at": "2026-03-01T10:00:00.000000Z",
            "answered_at": "2026-03-01T10:00:05.000000Z",
            "ended_at": "2026-03-01T10:05:00.000000Z",
            "subscriber": {"id": hostile},
            "disposition": "answered",
            "duration_s": 295.0,
        },
    ]
    page = report.render(MANIFEST, records).decode()
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-uid="u&quot;1"' in page
    assert "K-&lt;1&gt;" in page
    assert "default-src 'none'" in page
    tags = Tags()
    tags.feed(page)
    assert not tags.names & {"script", "img", "link", "iframe", "object", "embed", "base", "form"}
    assert not {name for name, _ in tags.attributes} & {"src", "href", "srcset", "action", "xlink:href"}  # fmt: skip
    assert not any(name.startswith("on") for name, _ in tags.attributes)  # no event handler
    assert "url(" not in tags.style


class Tags(HTMLParser):
    """The tags, attributes and style text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.names.add(tag)
        self.attributes += attrs
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def test_the_timeline_draws_one_row_per_subscriber_and_gathers_the_rest():
    records = [
        {
            "uid": f"u{i}",
            "kind": "sip",
            "started_at": f"2026-03-01T{10 + i % 12:02d}:00:00.000000Z",
            "ended_at": None,
            "subscriber": {"id": f"sub-{i:03d}"},
        }
        for i in range(report.MAX_TIMELINE_ROWS + 5)
    ]
    records.append({"uid": "busy", "kind": "sip", "started_at": "2026-03-01T12:00:00.000000Z", "subscriber": {"id": "sub-044"}})  # fmt: skip
    svg = report.timeline_svg(records, ZoneInfo("UTC"))
    assert svg.count("<rect") == len(records) + 5  # every record, and the legend's five
    assert "sub-044" in svg  # the busiest gets a row of its own
    assert "5 other subscribers" in svg
    calls = report.render(MANIFEST, records).decode()
    assert calls.count("data-uid=") == len(records)


def test_many_records_are_drawn_as_counts_per_interval():
    n = report.MAX_TIMELINE_BARS + 1
    records = [
        {
            "uid": f"u{i}",
            "kind": "sip",
            "started_at": f"2026-03-0{1 + i % 7}T{i % 24:02d}:{i % 60:02d}:00.000000Z",
            "subscriber": {"id": f"sub-{i % 3}"},
        }
        for i in range(n)
    ]
    svg = report.timeline_svg(records, ZoneInfo("UTC"))
    assert "data-uid" not in svg
    assert f"{n} records: bar height is the number that began in each" in svg
    bars = svg.count("<rect")
    assert 3 <= bars <= 3 * report.TIMELINE_BINS
    counted = sum(int(t.split(" records from")[0]) for t in svg.split("<title>")[1:])
    assert counted == n  # every record is in one bar
