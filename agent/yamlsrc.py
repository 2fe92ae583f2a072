"""YAML loading that remembers where each value came from, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]
# Site, credentials and station files are a few KiB; anything near this is a mistake.
MAX_FILE_BYTES = 1024 * 1024


class YamlSource:
    """A parsed YAML file plus the line of every mapping key and sequence item in it."""

    def __init__(self, path: Path, data: Any, lines: dict[Loc, int]) -> None:
        self.path = path
        self.data = data
        self._lines = lines

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of a value's path, or of its nearest parent that has one."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self._lines:
                return self._lines[loc[:n]]
        return None

    def where(self, loc: Loc) -> str:
        """'FILE:LINE' (or 'FILE') for a value's path."""
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*loc, key)
            _walk(value_node, child, lines)
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


class _RefusedAlias(yaml.MarkedYAMLError):
    """An anchor or alias in a file that may not have them."""


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases: an alias can stand for a whole tree, so a few
    lines of them ("billion laughs") expand to gigabytes in memory."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """Refuse an alias or an anchor before anything is built from it."""
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise _RefusedAlias(
                problem=f"YAML aliases are not allowed (*{event.anchor}): write the value out",
                problem_mark=mark,
            )
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _RefusedAlias(
                problem=f"YAML anchors and aliases are not allowed (&{anchor}): write each "
                "value out",
                problem_mark=mark,
            )
        node: yaml.Node | None = super().compose_node(parent, index)
        return node


def read_limited(path: Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """A config file's text; ValueError naming the file if it is unreadable, not UTF-8, or
    larger than max_bytes (read no further than that)."""
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > max_bytes:
        raise ValueError(
            f"{path}: larger than {max_bytes // 1024} KiB, the most a config file may be: "
            "is it the right file?"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text") from None


def load_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> YamlSource:
    """Parse a user's YAML file (no anchors or aliases, at most max_bytes); raise ValueError
    with file and line on any problem."""
    text = read_limited(path, max_bytes)
    loader = _PlainLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ValueError(f"{where}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlSource(path, data, lines)
