"""Protocol logic stays pure: no sockets, files, clocks or database in sans-IO packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "voiplog"
PURE = ["packet", "sip", "rtp", "calls", "cdr", "enrich", "flows"]
FORBIDDEN = {"socket", "time", "select", "selectors", "asyncio", "sqlalchemy", "psycopg2", "pcapy", "logging", "threading", "subprocess"}  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_no_io(package):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {sorted(bad)}"


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_do_not_open_files(package):
    for path in sorted((PACKAGE / package).rglob("*.py")):
        tree = ast.parse(path.read_text())
        calls = [
            n for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
        ]  # fmt: skip
        assert not calls, f"{path.relative_to(PACKAGE.parent)} opens files"
