"""Request bodies read with a size bound, gzip-decoded when `Content-Encoding: gzip` says so."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

_GZIP_WBITS = 16 + zlib.MAX_WBITS


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"request body larger than {limit} bytes")


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed if gzip; 413 past `limit` bytes, 400/415 on bad encoding."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise HTTPException(
            status_code=415, detail=f"unsupported Content-Encoding {encoding!r}: use gzip"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)

    gzip = encoding == "gzip"
    inflater = zlib.decompressobj(_GZIP_WBITS) if gzip else None
    received = 0
    out = bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
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
                raise _too_large(limit)
        if inflater is not None:
            if received and not inflater.eof:
                raise HTTPException(status_code=400, detail="truncated gzip body")
            if inflater.unused_data:
                raise HTTPException(status_code=400, detail="data after the end of the gzip body")
    except zlib.error as exc:
        raise HTTPException(status_code=400, detail=f"invalid gzip body: {exc}") from None
    return bytes(out)


class BoundedBodyRequest(Request):
    """A Request whose body() is size-bounded and gzip-aware (limit from app settings)."""

    async def body(self) -> bytes:
        """The decoded body, read once."""
        if not hasattr(self, "_body"):
            limit: int = self.app.state.settings.max_body_bytes
            self._body = await read_bounded_body(self, limit)
        return self._body


class BoundedBodyRoute(APIRoute):
    """Route class giving endpoints a BoundedBodyRequest (so pydantic bodies may be gzip)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the normal handler so it sees the bounded, decoded body."""
        handler = super().get_route_handler()

        async def bounded_handler(request: Request) -> Response:
            return await handler(BoundedBodyRequest(request.scope, request.receive))

        return bounded_handler
