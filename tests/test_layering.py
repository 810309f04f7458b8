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


# Which part of voiplog may import which: a module imports only parts of a lower
# layer (and its own part). Parts of one layer never import each other: calls
# and flows, for one, share what they need through lower layers (the flow key in
# packet, the records and end reasons in cdr, RTP stream state in rtp).
LAYERS = {
    "__init__": 0, "errors": 0, "_allocator": 0, "_collector": 0, "settings": 0, "_extensions": 0, "_frozen": 0, "_overrides": 0,
    # The configuration validates into the settings and imports no protocol code.
    "packet": 1, "config": 1,
    "capture": 2, "sip": 2, "rtp": 2,
    "cdr": 3,
    "calls": 4, "flows": 4, "enrich": 4,
    "ndpi": 5,
    "_fastpath": 5,  # the pipeline's fast path: it reads the pipeline it is handed
    "apps": 6,
    "pipeline": 6,  # beside apps, which it never imports: the classifier is handed in
    "export": 8, "sinks": 8,
    "store": 9,
    "wiring": 10,
    "daemon": 11,
    "cli": 12, "__main__": 13,
}  # fmt: skip
# Imports of another package than voiplog's parts: the store's Alembic scripts.
OUTSIDE = {"migrations"}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _voiplog_imports(path: Path) -> list[tuple[int, str]]:
    """Every voiplog module `path` imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("voiplog")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "voiplog":
                found += [(node.lineno, f"voiplog.{a.name}") for a in node.names]
            elif node.module.startswith("voiplog."):
                found.append((node.lineno, node.module))
    return found


def test_every_part_of_voiplog_has_a_layer():
    parts = {
        p.name if p.is_dir() else p.stem
        for p in PACKAGE.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    }
    assert parts - set(LAYERS) == set()


def test_imports_go_down_the_layers_only():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        source = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for line, module in _voiplog_imports(path):
            target = _part(module)
            if target == source or target in OUTSIDE or target == "__version__":
                continue
            if LAYERS[target] >= LAYERS[source]:
                wrong.append(f"voiplog/{rel}:{line}: {source} (layer {LAYERS[source]}) imports {module} (layer {LAYERS[target]})")  # fmt: skip
    assert wrong == []
