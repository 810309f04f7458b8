"""Every reason a test can be skipped for is one the README's table explains."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# A word of each skip reason -> what the README's table says it needs.
EXPLAINED = {
    "corpus": "`../shared/corpus`",
    "tshark": "tshark",
    "live capture": "SIPp",
    "kamailio": "kamailio is missing",
    "libndpi": "libndpi",
    "libpcap": "libpcap",
    "systemd-analyze": "systemd-analyze",
    "psql": "psql",
    "chromium": "chromium",
    "libc": "glibc",
    "mallopt": "glibc",
    "tmpfs": "tmpfs",
    "another user": "another user",
    "embedded server": "embedded server",
    "app captures": "app captures are not fetched",
    "compiled extensions": "compiled extensions are not built",
    "voiplog_seal extension": "`voiplog_seal` PostgreSQL extension is not installed",
}


def _reasons() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            if node.func.attr == "skipif":
                texts = [k.value for k in node.keywords if k.arg == "reason"]
            elif node.func.attr == "skip" and isinstance(node.func.value, ast.Name):
                texts = node.args[:1]
            else:
                continue
            for text in texts:
                parts = text.values if isinstance(text, ast.JoinedStr) else [text]
                words = "".join(p.value for p in parts if isinstance(p, ast.Constant))
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", words))
    return found


def test_every_skip_reason_is_explained_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("| skipped when |", 1)[1].split("\n\n", 1)[0]
    reasons = _reasons()
    assert len(reasons) > 10
    for where, reason in reasons:
        keys = [key for key in EXPLAINED if key in reason]
        assert keys, f"{where}: skip reason {reason!r} is not one the README explains"
        assert all(EXPLAINED[key] in table for key in keys), (where, reason)
