"""JSON request bodies parsed within bounds: UTF-8 only, at most `max_items` values nested at most
`max_depth` deep, no lone UTF-16 surrogates.

The values are counted in the text before it is parsed, because parsing is where a small body
becomes a large object tree: 20 MiB of `[],` are 7 million lists, half a GiB of memory. Every
value but the first one follows a `,`, `[` or `{` outside a string (a key follows `{` or `,` too,
so keys are counted as well: an upper bound, never an undercount).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException

# A JSON string, escapes included (the unrolled form: no backtracking on long strings).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# An innermost array or object, once strings and everything else but brackets are gone.
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# \uD800-\uDFFF: the only way a JSON text can hold a lone surrogate (raw ones are not UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"


def parse_json(raw: bytes, max_items: int, max_depth: int) -> Any:
    """The JSON value of `raw`.

    413 past `max_items` values, 400 past `max_depth` levels or for text that is not UTF-8, 422
    for a string holding a lone surrogate (named by its place in the body); a syntax error
    raises json.JSONDecodeError, which FastAPI answers with its own 422.
    """
    raw = raw.removeprefix(_BOM)
    check_bounds(raw, max_items, max_depth)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            status_code=400, detail=f"body is not UTF-8 text (byte {exc.start}): JSON must be UTF-8"
        ) from None
    try:
        value = json.loads(text)
    except RecursionError:  # only when max_depth is above the interpreter's own limit
        raise HTTPException(status_code=400, detail="JSON body nested too deep") from None
    if _SURROGATE_ESCAPE.search(raw):
        where = _surrogate_at(value, ())
        if where is not None:
            path, string = where
            raise HTTPException(
                status_code=422,
                detail=[
                    {
                        "type": "string_unicode",
                        "loc": ["body", *path],
                        "msg": f"{_escaped_surrogate(string)} is half of a UTF-16 pair, not a "
                        "character: send the text as valid Unicode",
                    }
                ],
            )
    return value


def check_bounds(raw: bytes, max_items: int, max_depth: int) -> None:
    """413 if `raw` holds more than `max_items` JSON values, 400 if nested past `max_depth`."""
    opened = raw.count(b"[") + raw.count(b"{")
    if opened + raw.count(b",") + 1 <= max_items and opened <= max_depth:
        return  # bounded even if every bracket and comma were structure
    bare = _STRING.sub(b"", raw)
    items = bare.count(b",") + bare.count(b"[") + bare.count(b"{") + 1
    if items > max_items:
        raise HTTPException(
            status_code=413,
            detail=f"JSON body holds more than {max_items} values (setting max_json_items)",
        )
    brackets = bare.translate(None, _NOT_BRACKETS)
    if len(brackets) <= max_depth:
        return
    # Each pass removes one level from every innermost pair; a document max_depth deep is gone
    # after max_depth passes. A pass that removes nothing means unbalanced brackets: that is a
    # syntax error, which the parser reports better.
    for _ in range(max_depth):
        reduced = _INNERMOST.sub(b"", brackets)
        if not reduced or reduced == brackets:
            return
        brackets = reduced
    raise HTTPException(
        status_code=400,
        detail=f"JSON body nested deeper than {max_depth} levels (setting max_json_depth)",
    )


def _surrogate_at(value: Any, path: tuple[str | int, ...]) -> tuple[list[str | int], str] | None:
    """The place (keys and indexes) of the first string holding a lone surrogate, and it."""
    # An explicit stack, not recursion: the depth is bounded, but this stays flat anyway.
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return list(where), item
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                if _SURROGATE.search(key):
                    return [*where, _printable(key)], key
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in reversed(list(enumerate(item))))
    return None


def _printable(text: str) -> str:
    """`text` with each lone surrogate written as its JSON escape."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escaped_surrogate(text: str) -> str:
    """The first lone surrogate of `text`, written as its JSON escape (e.g. \\ud800)."""
    found = _SURROGATE.search(text)
    return f"\\u{ord(found.group()):04x}" if found else "a lone surrogate"
