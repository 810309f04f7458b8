"""voiplog.rtp is sans-IO: it imports nothing that reaches sockets, files or clocks."""

import ast
from pathlib import Path

import voiplog.rtp

# voiplog._extensions chooses the compiled RtpStream or its pure-Python reference.
ALLOWED = {"__future__", "struct", "voiplog.rtp", "voiplog._extensions"}


def test_rtp_imports_only_pure_modules():
    for path in Path(voiplog.rtp.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert any(name == ok or name.startswith(ok + ".") for ok in ALLOWED), (
                    f"{path.name} imports {name}"
                )
