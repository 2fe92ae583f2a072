"""The dependency rule of docs/architecture.md, checked on the source (imports read with ast).

Every import counts, also those inside functions and under TYPE_CHECKING: a cycle hidden in a
function is still a cycle. A failure names the importing file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "collectors", "checks", "agent", "hq_server", "simulators", "stationwatch")

# Which of our top-level packages each package may import (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "collectors": frozenset({"protocol"}),
    "checks": frozenset({"protocol", "collectors"}),
    "agent": frozenset({"protocol", "collectors", "checks"}),
    "hq_server": frozenset({"protocol"}),
    "simulators": frozenset({"protocol", "collectors", "checks", "agent"}),
    "stationwatch": frozenset(PACKAGES),
}
# Single modules allowed beyond that: the one helper every command line shares.
ALLOWED_MODULES: dict[str, frozenset[str]] = {"hq_server.cli": frozenset({"stationwatch.pipes"})}

# hq_server's layers, lowest first: a module may import its own package and the layers below,
# never a higher layer nor another package of its own layer (hq_server/__init__.py says why
# each package sits where it does). Top-level modules (the composition root: app, cli,
# scheduler, serving) sit above every package.
HQ_LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"core", "channels"}),
    frozenset({"store"}),
    frozenset({"access"}),
    frozenset({"customers"}),
    frozenset({"oncall"}),
    frozenset({"tickets"}),
    frozenset({"alarms", "jobs"}),
    frozenset({"sites"}),
    frozenset({"api", "web"}),
)


@dataclass(frozen=True)
class Import:
    """One import statement's target module, as written in a source file."""

    source: str  # importing module, dotted
    target: str  # imported module (or the module a name is imported from), dotted
    path: Path
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> Iterator[Path]:
    for package in PACKAGES:
        base = ROOT / package
        if base.is_dir():
            yield from (p for p in sorted(base.rglob("*.py")) if "migrations" not in p.parts)


def _imports(path: Path, modules: set[str]) -> Iterator[Import]:
    source = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = source.split(".") if is_package else source.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                # `from pkg import module` imports the module, not only the package.
                yield Import(source, sub if sub in modules else target, path, node.lineno)


def _graph() -> tuple[set[str], list[Import]]:
    paths = list(_sources())
    modules = {_module_name(p) for p in paths}
    found = [i for p in paths for i in _imports(p, modules)]
    return modules, [i for i in found if i.target.split(".")[0] in PACKAGES]


def _hq_layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not (ROOT / "hq_server" / parts[1]).is_dir()):
        return len(HQ_LAYERS)  # hq_server itself or a top-level module: the composition root
    for rank, layer in enumerate(HQ_LAYERS):
        if parts[1] in layer:
            return rank
    raise AssertionError(f"{module}: package hq_server.{parts[1]} is in no layer of HQ_LAYERS")


def test_packages_import_only_what_the_rule_allows() -> None:
    """protocol imports nothing of ours; HQ never the agent; collectors never checks; ..."""
    _, imports = _graph()
    broken = sorted(
        {
            f"{i.path.relative_to(ROOT)}:{i.line}: {i.source} imports {i.target}"
            for i in imports
            if (top := i.source.split(".")[0]) != (other := i.target.split(".")[0])
            and other not in ALLOWED[top]
            and i.target not in ALLOWED_MODULES.get(i.source, frozenset())
        }
    )
    assert not broken, "imports across packages the rule forbids:\n" + "\n".join(broken)


def test_hq_layers_import_only_downwards() -> None:
    """Inside hq_server: api/web -> sites -> alarms/jobs -> tickets -> access -> store -> core."""
    _, imports = _graph()
    broken = sorted(
        {
            f"{i.path.relative_to(ROOT)}:{i.line}: {i.source} imports {i.target} ({why})"
            for i in imports
            if i.source.startswith("hq_server.")
            and i.target.startswith("hq_server.")
            and (why := _layer_breach(i.source, i.target))
        }
    )
    assert not broken, "hq_server imports against its layers:\n" + "\n".join(broken)


def _layer_breach(source: str, target: str) -> str:
    """Why `source` may not import `target`, or "" if it may."""
    here, there = _hq_layer(source), _hq_layer(target)
    if there > here:
        return "a higher layer"
    same_package = source.split(".")[:2] == target.split(".")[:2]
    if there == here < len(HQ_LAYERS) and not same_package:
        return "another package of the same layer"
    return ""


def test_no_import_cycles_between_modules() -> None:
    """No module reaches itself through its imports (Tarjan's strongly connected components)."""
    modules, imports = _graph()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for i in imports:
        if i.target in modules and i.target != i.source:
            edges[i.source].add(i.target)
    cycles = [sorted(c) for c in _components(edges) if len(c) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_nothing_imports_the_agent_runner() -> None:
    """The agent's parts get what they need through their constructors, never the runner."""
    _, imports = _graph()
    allowed = {"agent.cli", "stationwatch.cli", "stationwatch.demo"}
    bad = [
        f"{i.path.relative_to(ROOT)}:{i.line}: {i.source}"
        for i in imports
        if i.target == "agent.runner" and i.source not in allowed
    ]
    assert not bad, "agent.runner imported by:\n" + "\n".join(bad)


def test_hq_has_few_top_level_modules() -> None:
    """hq_server keeps its code in packages; beside them only the composition root."""
    top = sorted(p.name for p in (ROOT / "hq_server").glob("*.py"))
    assert len(top) <= 8, top


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_known(package: str) -> None:
    """A new top-level package must be added to ALLOWED (and to docs/architecture.md)."""
    assert package in ALLOWED


def _components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


# Documents that are not part of the repository, and paths that leave it (built from pieces so
# that this file does not cite them itself).
_OUTSIDE = tuple(
    "".join(parts)
    for parts in (
        ("DESIGN", ".md"),
        ("PLATFORM", ".md"),
        ("STYLE", ".md"),
        ("../", "shared"),
        ("/work", "/"),
    )
)


def test_no_file_cites_a_path_outside_the_repository() -> None:
    """Code and docs point to docs/architecture.md and to files of the repository only."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    cited: list[str] = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".service", ".txt", ""}:
            continue
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        cited += [f"{name.decode()}: {ref}" for ref in _OUTSIDE if ref in text]
    assert not cited, "files citing paths outside the repository:\n" + "\n".join(cited)


def test_the_architecture_document_exists_and_the_readme_links_it() -> None:
    """docs/architecture.md is the project's own map."""
    assert (ROOT / "docs" / "architecture.md").is_file()
    assert "docs/architecture.md" in (ROOT / "README.md").read_text(encoding="utf-8")
