"""Request bodies read with a size bound, gzip-decoded when `Content-Encoding: gzip` says so, and
parsed as JSON within bounds, off the event loop; each call authenticated before its body is read.

The order of a call (BoundedBodyRoute): the bearer token and its role are checked first (401 /
403 before a byte of the body is read, so a caller without a token costs next to nothing); a
route without a token (login, enrollment) reads at most `max_anonymous_body_bytes`, the others
`max_body_bytes`, all of it within `body_timeout` (else 408 and the connection is closed); then
the JSON is counted (`max_json_items`, `max_json_depth`) and parsed in a worker thread
(hq_server.api.jsonbody).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from hq_server.api.deps import authorize, route_access
from hq_server.api.jsonbody import parse_json
from hq_server.core.settings import Settings

_GZIP_WBITS = 16 + zlib.MAX_WBITS
# Bodies up to this size are parsed on the event loop: a thread costs more than they do.
_PARSE_INLINE_BYTES = 64 * 1024


def _too_large(limit: int, setting: str) -> HTTPException:
    return HTTPException(
        status_code=413, detail=f"request body larger than {limit} bytes (setting {setting})"
    )


def _body_too_slow(timeout: float) -> HTTPException:
    return HTTPException(
        status_code=408,
        detail=f"request body not received within {timeout:g} s (setting body_timeout)",
        headers={"Connection": "close"},
    )


async def read_bounded_body(request: Request, limit: int, setting: str = "max_body_bytes") -> bytes:
    """The request body, decompressed if gzip; 413 past `limit` bytes (naming `setting`), 400/415
    on bad encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPException(
            status_code=415, detail=f"unsupported Content-Encoding {encoding!r}: use gzip"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit, setting)

    gzip = encoding == "gzip"
    inflater = zlib.decompressobj(_GZIP_WBITS) if gzip else None
    received = 0
    out = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit, setting)
            if inflater is None:
                out += chunk
                continue
            if inflater.eof:
                if chunk:
                    raise HTTPException(
                        status_code=400, detail="data after the end of the gzip body"
                    )
                continue
            out += inflater.decompress(chunk, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise _too_large(limit, setting)
        if inflater is not None:
            if received and not inflater.eof:
                raise HTTPException(status_code=400, detail="truncated gzip body")
            if inflater.unused_data:
                raise HTTPException(status_code=400, detail="data after the end of the gzip body")
    except zlib.error as exc:
        raise HTTPException(status_code=400, detail=f"invalid gzip body: {exc}") from None
    return bytes(out)


class BoundedBodyRequest(Request):
    """A Request whose body() is size-bounded and gzip-aware and whose json() is bounded and
    parsed off the event loop (limits from the app's settings)."""

    anonymous = False
    # The route cleans lone surrogates from its text itself (see cleans_text).
    keeps_surrogates = False

    async def body(self) -> bytes:
        """The decoded body, read once."""
        if not hasattr(self, "_body"):
            settings: Settings = self.app.state.settings
            if self.anonymous:
                limit, setting = settings.max_anonymous_body_bytes, "max_anonymous_body_bytes"
            else:
                limit, setting = settings.max_body_bytes, "max_body_bytes"
            # All of it within body_timeout: a client trickling its body must not hold a
            # worker for as long as it likes (408, and the connection is closed).
            try:
                with anyio.fail_after(settings.body_timeout):
                    self._body = await read_bounded_body(self, limit, setting)
            except TimeoutError:
                raise _body_too_slow(settings.body_timeout) from None
        return self._body

    async def json(self) -> Any:
        """The body's JSON value, read and parsed once (see hq_server.api.jsonbody)."""
        if not hasattr(self, "_json"):
            raw = await self.body()
            settings: Settings = self.app.state.settings
            parse = partial(
                parse_json,
                raw,
                settings.max_json_items,
                settings.max_json_depth,
                surrogates=self.keeps_surrogates,
            )
            if len(raw) <= _PARSE_INLINE_BYTES:
                self._json = parse()
            else:  # a big body must not stall every other call while it is parsed
                self._json = await anyio.to_thread.run_sync(parse, limiter=_parse_limiter(self))
        return self._json


def _parse_limiter(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter of big JSON parses: one at a time. The parser holds the GIL for the
    whole text; two at once would leave the event loop less time and finish no sooner."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "json_parse_limiter", None)
    if limiter is None:  # made on the event loop, which runs one call at a time
        limiter = anyio.CapacityLimiter(1)
        state.json_parse_limiter = limiter
    return limiter


def _refuse_nul(request: Request) -> None:
    """422 for a NUL character in a query or path parameter (no database stores it)."""
    errors = [
        {"type": "string_nul", "loc": [where, name], "msg": "must not contain a NUL character"}
        for where, items in (
            ("query", request.query_params.multi_items()),
            ("path", request.path_params.items()),
        )
        for name, value in items
        if isinstance(value, str) and "\x00" in value
    ]
    if errors:
        raise RequestValidationError(errors)


E = TypeVar("E", bound=Callable[..., Any])


def cleans_text(endpoint: E) -> E:
    """Mark an endpoint whose body model replaces lone surrogates itself (agent events: one bad
    character must not cost the batch), so the parser lets them through."""
    endpoint.cleans_text = True  # type: ignore[attr-defined]
    return endpoint


class BoundedBodyRoute(APIRoute):
    """Route class authenticating before the body is read and giving endpoints a
    BoundedBodyRequest (so pydantic bodies may be gzip)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the normal handler: authenticate first, then let it see the bounded body."""
        handler = super().get_route_handler()
        checks = route_access(self.dependant)
        keeps_surrogates = getattr(self.endpoint, "cleans_text", False)

        async def bounded_handler(request: Request) -> Response:
            bounded = BoundedBodyRequest(request.scope, request.receive)
            bounded.keeps_surrogates = keeps_surrogates
            if checks:
                await authorize(bounded, checks)
            else:
                bounded.anonymous = True
            _refuse_nul(bounded)
            return await handler(bounded)

        return bounded_handler
