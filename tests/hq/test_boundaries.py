"""HQ depends on the agent side only through the shared wire protocol and grade scheme."""

from __future__ import annotations

import ast
from pathlib import Path

import hq_server

ALLOWED_FROM_OTHER_PACKAGES = {"protocol.wire", "protocol.grades"}
OTHER_PACKAGES = ("agent", "checks", "collectors", "simulators")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_hq_imports_only_the_wire_protocol_and_grading() -> None:
    root = Path(hq_server.__file__).parent
    offending = {
        f"{path.relative_to(root)}: {name}"
        for path in root.rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in OTHER_PACKAGES and name not in ALLOWED_FROM_OTHER_PACKAGES
    }
    assert offending == set()
