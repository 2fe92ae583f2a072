"""The control HTTP API of the simulated station (JSON over HTTP on 127.0.0.1).

    GET    /healthz                                  {"status": "ok", ...}
    GET    /devices                                  {"devices": [device, ...]}
    GET    /devices/{id}                             device
    POST   /devices/{id}/conditions                  body {"condition": "off_air", "value": null}
    DELETE /devices/{id}/conditions/{condition}
    POST   /devices/{id}/reset
    POST   /reset                                    every device
    POST   /devices/{id}/traps                       send a v2c trap or inform, body:
           {"preset": "linkDown"} or {"trap_oid": "1.3.6...", "varbinds": [[oid, type, value]]},
           optional "target": "127.0.0.1:PORT", "inform": false, "community": "public"
    POST   /devices/{id}/trap_storm                  {"count": N, "rate": per_s, + as above}

A device is {"id", "protocol", "endpoint", "profile", "active_conditions": {name: value},
"allowed_conditions": [...]}. Errors are {"error": message} with 400 or 404.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from simulators.errors import ConditionError, SimulatorError, UnknownDeviceError


class Station(Protocol):
    """What the control API drives (simulators.station.SimulatedStation); a protocol here, so
    that the station, which starts this server, is not imported back."""

    @property
    def devices(self) -> Mapping[str, Any]: ...
    def device_status(self) -> list[dict[str, Any]]: ...
    def device_info(self, device_id: str) -> dict[str, Any]: ...
    def set_condition(self, device_id: str, condition: str, value: Any = None) -> None: ...
    def clear_condition(self, device_id: str, condition: str) -> None: ...
    # Traps take many keyword options; the control API passes the request's own.
    @property
    def send_trap(self) -> Callable[..., dict[str, Any]]: ...
    @property
    def trap_storm(self) -> Callable[..., dict[str, Any]]: ...
    def reset(self, device_id: str | None = None) -> None: ...


logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
_TRAP_FIELDS = {"preset", "trap_oid", "varbinds", "target", "community"}


class _ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server: ControlServer
    protocol_version = "HTTP/1.1"
    _body = b""

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's access log to logging (debug)."""
        logger.debug("control api: %s", format % args)

    def do_GET(self) -> None:
        """Read-only routes."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Set a condition, reset."""
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        """Clear a condition."""
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._body = b""
        try:
            self._body = self._read_body()  # always, so a kept-alive connection stays in step
            status, payload = self._route(method)
        except _ApiError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except UnknownDeviceError as exc:
            status, payload = HTTPStatus.NOT_FOUND, {"error": str(exc)}
        except ConditionError as exc:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        except SimulatorError as exc:
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": str(exc)}
        self._send(status, payload)

    def _route(self, method: str) -> tuple[HTTPStatus, Any]:
        station = self.server.station
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
        ok = HTTPStatus.OK
        match method, parts:
            case "GET", ["healthz"]:
                return ok, {"status": "ok", "devices": len(station.devices)}
            case "GET", ["devices"]:
                return ok, {"devices": station.device_status()}
            case "GET", ["devices", device_id]:
                return ok, station.device_info(device_id)
            case "POST", ["devices", device_id, "conditions"]:
                condition, value = self._condition_body()
                station.set_condition(device_id, condition, value)
                return ok, station.device_info(device_id)
            case "DELETE", ["devices", device_id, "conditions", condition]:
                station.clear_condition(device_id, condition)
                return ok, station.device_info(device_id)
            case "POST", ["devices", device_id, "traps"]:
                body = self._json_body(_TRAP_FIELDS | {"inform"})
                return ok, station.send_trap(device_id, **body)
            case "POST", ["devices", device_id, "trap_storm"]:
                body = self._json_body(_TRAP_FIELDS | {"count", "rate"})
                for key in ("count", "rate"):
                    if not isinstance(body.get(key), int | float) or isinstance(body[key], bool):
                        raise _ApiError(HTTPStatus.BAD_REQUEST, f"{key!r} must be a number")
                count, rate = body.pop("count"), body.pop("rate")
                if count != int(count):
                    raise _ApiError(HTTPStatus.BAD_REQUEST, "'count' must be a whole number")
                return ok, station.trap_storm(device_id, count=int(count), rate=float(rate), **body)
            case "POST", ["devices", device_id, "reset"]:
                station.reset(device_id)
                return ok, station.device_info(device_id)
            case "POST", ["reset"]:
                station.reset()
                return ok, {"devices": station.device_status()}
        known = ("healthz", "devices", "reset")
        if parts and parts[0] in known:
            raise _ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {self.path}")
        raise _ApiError(HTTPStatus.NOT_FOUND, f"no such resource: {self.path}")

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise _ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            raise _ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _json_body(self, allowed: set[str]) -> dict[str, Any]:
        """The JSON object body with only `allowed` keys, types checked for the trap fields."""
        try:
            body = json.loads(self._body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        unknown = set(body) - allowed
        if unknown:
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        for key in ("preset", "trap_oid", "target", "community"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise _ApiError(HTTPStatus.BAD_REQUEST, f"{key!r} must be a string")
        if "inform" in body and not isinstance(body["inform"], bool):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "'inform' must be true or false")
        if body.get("varbinds") is not None and not isinstance(body["varbinds"], list):
            raise _ApiError(
                HTTPStatus.BAD_REQUEST, "'varbinds' must be a list of [oid, type, value]"
            )
        return body

    def _condition_body(self) -> tuple[str, str | None]:
        if not self._body:
            raise _ApiError(HTTPStatus.BAD_REQUEST, 'expected a JSON body {"condition": ...}')
        try:
            body = json.loads(self._body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("condition"), str):
            raise _ApiError(HTTPStatus.BAD_REQUEST, 'body must be {"condition": "<name>", ...}')
        unknown = set(body) - {"condition", "value"}
        if unknown:
            raise _ApiError(HTTPStatus.BAD_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        value = body.get("value")
        if value is not None and not isinstance(value, str | int | float):
            raise _ApiError(HTTPStatus.BAD_REQUEST, "value must be a string, a number or null")
        return body["condition"], None if value is None else str(value)

    def _send(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload, indent=2).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ControlServer(ThreadingHTTPServer):
    """The control API server, bound to 127.0.0.1 only."""

    daemon_threads = True

    def __init__(self, station: Station, port: int) -> None:
        self.station = station
        try:
            super().__init__(("127.0.0.1", port), _Handler)
        except OSError as exc:
            raise SimulatorError(
                f"control API: cannot listen on tcp 127.0.0.1:{port}: {exc.strerror or exc}"
            ) from None
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-control"
        )
        self._thread.daemon = True

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()
