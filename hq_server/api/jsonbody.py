"""JSON request bodies parsed within bounds: UTF-8 only, at most `max_items` values nested at most
`max_depth` deep, no lone UTF-16 surrogates.

The values are counted in the text before it is parsed, because parsing is where a small body
becomes a large object tree: 20 MiB of `[],` are 7 million lists, half a GiB of memory. Outside
strings, every value but the outermost one is either the first item of a non-empty array or
object or follows a comma, so a text holds 1 + commas + `[` and `{` - empty `[]` and `{}` values
(object keys are not counted).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import HTTPException

# A JSON string, escapes included (the unrolled form: no backtracking on long strings). One left
# open runs to the end of the text (a lone backslash there included): the match never fails, so
# a text of `"\"\"\"...` with no closing quote is read once, not once a quote (quadratic). The text
# is no JSON then, and the parser refuses it at that string without building what follows.
_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_WHITESPACE = b" \t\r\n"
# \uD800-\uDFFF: the only way a JSON text can hold a lone surrogate (raw ones are not UTF-8).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"
_CONTAINERS = frozenset({dict, list})


def parse_json(raw: bytes, max_items: int, max_depth: int, *, surrogates: bool = False) -> Any:
    """The JSON value of `raw`.

    413 past `max_items` values (counted before parsing), 400 past `max_depth` levels or for
    text that is not UTF-8, 422 for a string holding a lone surrogate (named by its place in the
    body) unless `surrogates` (the route cleans text itself); a syntax error raises
    json.JSONDecodeError, which FastAPI answers with its own 422.
    """
    raw = raw.removeprefix(_BOM)
    check_items(raw, max_items)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            status_code=400, detail=f"body is not UTF-8 text (byte {exc.start}): JSON must be UTF-8"
        ) from None
    try:
        value = json.loads(text)
    except RecursionError:  # the parser's own bound (about 1,000 levels)
        raise _too_deep(max_depth) from None
    # Depth costs no memory worth counting (the values are bounded already): checked on the
    # parsed value, which is cheaper than on the text.
    if _deeper_than(value, max_depth):
        raise _too_deep(max_depth)
    if not surrogates and _SURROGATE_ESCAPE.search(raw):
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


def check_items(raw: bytes, max_items: int) -> None:
    """413 if the JSON text `raw` holds more than `max_items` values."""
    if raw.count(b"[") + raw.count(b"{") + raw.count(b",") + 1 <= max_items:
        return  # bounded even if every bracket and comma were structure
    bare = _STRING.sub(b"", raw).translate(None, _WHITESPACE)
    opened = bare.count(b"[") + bare.count(b"{")
    items = 1 + bare.count(b",") + opened - bare.count(b"[]") - bare.count(b"{}")
    if items > max_items:
        raise HTTPException(
            status_code=413,
            detail=f"JSON body holds more than {max_items} values (setting max_json_items)",
        )


def _too_deep(max_depth: int) -> HTTPException:
    return HTTPException(
        status_code=400,
        detail=f"JSON body nested deeper than {max_depth} levels (setting max_json_depth)",
    )


def _deeper_than(value: Any, max_depth: int) -> bool:
    """True if arrays and objects nest more than `max_depth` levels in `value`."""
    if type(value) not in _CONTAINERS:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        for child in item.values() if type(item) is dict else item:
            if type(child) in _CONTAINERS:  # json.loads makes plain dicts and lists only
                if depth >= max_depth:
                    return True
                if child:  # an empty one adds a level but holds none
                    stack.append((child, depth + 1))
    return False


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
