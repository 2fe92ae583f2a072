"""Real receivers on 127.0.0.1 that check requests the way each vendor documents its server side.

One threaded HTTP server plays every vendor at once, each on its own path:

- DingTalk custom robot  POST /robot/send?access_token=T[&timestamp=ms&sign=s]
    unknown token -> errcode 300001; a signed robot recomputes
    sign = base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")) from the query's
    timestamp and compares; a timestamp more than an hour from now, or a wrong sign -> 310000.
- WeCom group robot      POST /cgi-bin/webhook/send?key=K
    unknown key -> errcode 93000; markdown over 4096 bytes or text over 2048 -> 40058.
- Feishu custom bot      POST /open-apis/bot/v2/hook/<token>
    unknown token -> code 19001; a signed bot recomputes
    sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b"")) from the body's
    timestamp; wrong, missing or more than an hour off -> 19021; over 20 KB -> 9499.
- Generic webhook        POST /hook  X-StationWatch-Signature: sha256=HMAC(secret, raw body)
    wrong signature -> HTTP 401.
- An SMS gateway (the shape of common Chinese providers' HTTP APIs)
    POST /sms/send  JSON {"apikey", "mobile", "text"} -> {"code": 0, "msg": "OK"}, a wrong
    apikey -> HTTP 200 {"code": 2, "msg": "apikey invalid"};
    GET /sms/get?apikey=&mobile=&text= with basic auth -> "OK:<id>" or "ERR:<reason>".

The robots answer HTTP 200 with their JSON result, as the vendors do. Any path under /slow/
holds the request until `release` is set (the receiver of a slow endpoint).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.peers import free_port

HOUR = 3600


@dataclass
class Received:
    """One request a vendor receiver got, and what it answered."""

    vendor: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    answer: Any = None
    at: float = field(default_factory=time.time)  # wall-clock arrival (latency checks)

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.body)


@dataclass
class Vendors:
    """The registered robots, bots and accounts, and every request received."""

    base: str
    dingtalk: dict[str, str | None] = field(default_factory=dict)  # token -> secret
    wecom: set[str] = field(default_factory=set)  # keys
    feishu: dict[str, str | None] = field(default_factory=dict)  # token -> secret
    webhook_secret: str = ""
    sms_apikey: str = ""
    sms_login: tuple[str, str] = ("", "")
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_receive: list[Any] = field(default_factory=list)  # callbacks(Received) run on arrival

    def of(self, vendor: str) -> list[Received]:
        """The requests one vendor receiver got."""
        with self.lock:
            return [r for r in self.received if r.vendor == vendor]


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's sign (before URL encoding), as its server recomputes it."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def feishu_sign(secret: str, timestamp: str) -> str:
    """Feishu's sign, as its server recomputes it (the string is the key, the message empty)."""
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _dingtalk(v: Vendors, query: dict[str, str], body: Any) -> Any:
    token = query.get("access_token", "")
    if token not in v.dingtalk:
        return {"errcode": 300001, "errmsg": "token is not exist"}
    secret = v.dingtalk[token]
    if secret is not None:
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > HOUR * 1000:
            return {"errcode": 310000, "errmsg": "invalid timestamp"}
        if not hmac.compare_digest(sign, dingtalk_sign(secret, timestamp)):
            return {"errcode": 310000, "errmsg": "sign not match"}
    if not isinstance(body, dict) or body.get("msgtype") != "markdown":
        return {"errcode": 40035, "errmsg": "缺少参数 msgtype"}
    markdown = body.get("markdown")
    if not (
        isinstance(markdown, dict)
        and isinstance(markdown.get("title"), str)
        and markdown["title"]
        and isinstance(markdown.get("text"), str)
        and markdown["text"]
    ):
        return {"errcode": 40035, "errmsg": "缺少参数 markdown.title/text"}
    at = body.get("at", {})
    if not isinstance(at, dict) or not all(isinstance(m, str) for m in at.get("atMobiles", [])):
        return {"errcode": 40035, "errmsg": "at.atMobiles"}
    return {"errcode": 0, "errmsg": "ok"}


def _wecom(v: Vendors, query: dict[str, str], body: Any) -> Any:
    if query.get("key", "") not in v.wecom:
        return {"errcode": 93000, "errmsg": "invalid webhook url, hint: [local receiver]"}
    kind = body.get("msgtype") if isinstance(body, dict) else None
    part = body.get(kind) if isinstance(body, dict) and kind else None
    if kind not in ("markdown", "text") or not isinstance(part, dict):
        return {"errcode": 40008, "errmsg": "invalid message type"}
    content = part.get("content")
    if not isinstance(content, str) or not content:
        return {"errcode": 44004, "errmsg": "empty content"}
    limit = 4096 if kind == "markdown" else 2048
    if len(content.encode()) > limit:
        return {"errcode": 40058, "errmsg": f"{kind}.content exceed max length {limit}"}
    if "mentioned_mobile_list" in part and kind != "text":
        return {"errcode": 40058, "errmsg": "mentioned_mobile_list only for text"}
    return {"errcode": 0, "errmsg": "ok"}


def _feishu(v: Vendors, token: str, raw: bytes, body: Any) -> Any:
    if token not in v.feishu:
        return {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
    if len(raw) > 20 * 1024:
        return {"code": 9499, "msg": "Bad Request"}
    if not isinstance(body, dict):
        return {"code": 9499, "msg": "Bad Request"}
    secret = v.feishu[token]
    if secret is not None:
        timestamp, sign = body.get("timestamp"), body.get("sign")
        fail = {
            "code": 19021,
            "msg": "sign match fail or timestamp is not within one hour from current time",
        }
        if not isinstance(timestamp, str) or not timestamp.isdigit() or not isinstance(sign, str):
            return fail
        if abs(time.time() - int(timestamp)) > HOUR:
            return fail
        if not hmac.compare_digest(sign, feishu_sign(secret, timestamp)):
            return fail
    kind = body.get("msg_type")
    if kind == "interactive":
        card = body.get("card")
        ok = isinstance(card, dict) and isinstance(card.get("elements"), list) and card["elements"]
    elif kind == "post":
        post = body.get("content", {}).get("post", {})
        ok = isinstance(post, dict) and any(
            isinstance(p, dict) and p.get("title") and isinstance(p.get("content"), list)
            for p in post.values()
        )
    elif kind == "text":
        ok = isinstance(body.get("content", {}).get("text"), str)
    else:
        ok = False
    if not ok:
        return {"code": 9499, "msg": "Bad Request"}
    return {"code": 0, "data": {}, "msg": "success"}


class _Handler(BaseHTTPRequestHandler):
    vendors: Vendors

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the slow endpoint's test)

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._handle(self.rfile.read(length))

    def _handle(self, raw: bytes) -> None:
        v = self.vendors
        parts = urlsplit(self.path)
        query = {k: vals[0] for k, vals in parse_qs(parts.query).items()}
        headers = {k.lower(): val for k, val in self.headers.items()}
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = parts.path
        slow = path.startswith("/slow/")
        if slow:
            path = path.removeprefix("/slow")
        vendor = (
            "dingtalk"
            if path == "/robot/send"
            else "wecom"
            if path == "/cgi-bin/webhook/send"
            else "feishu"
            if path.startswith("/open-apis/bot/v2/hook/")
            else "webhook"
            if path == "/hook"
            else "sms"
            if path.startswith("/sms/")
            else "unknown"
        )
        received = Received(vendor, self.command, path, query, headers, raw)
        with v.lock:
            v.received.append(received)
            callbacks = list(v.on_receive)
        for callback in callbacks:
            callback(received)
        if slow:
            v.release.wait(30)  # longer than any client timeout in the tests
        status, content_type = 200, "application/json"
        if vendor == "dingtalk":
            answer = _dingtalk(v, query, body)
        elif vendor == "wecom":
            answer = _wecom(v, query, body)
        elif vendor == "feishu":
            answer = _feishu(v, path.rpartition("/")[2], raw, body)
        elif vendor == "webhook":
            expected = (
                "sha256=" + hmac.new(v.webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
            )
            good = hmac.compare_digest(headers.get("x-stationwatch-signature", ""), expected)
            status, answer = (200, b"") if good and headers.get("idempotency-key") else (401, b"")
        elif path == "/sms/send":
            if not isinstance(body, dict) or body.get("apikey") != v.sms_apikey:
                answer = {"code": 2, "msg": "apikey invalid"}
            elif not body.get("mobile") or not body.get("text"):
                answer = {"code": 3, "msg": "mobile or text missing"}
            else:
                answer = {"code": 0, "msg": "OK", "sid": len(v.received)}
        elif path == "/sms/get":
            login = base64.b64encode(":".join(v.sms_login).encode()).decode()
            if headers.get("authorization") != f"Basic {login}":
                status, answer = 401, b"ERR:unauthorized"
            elif query.get("apikey") != v.sms_apikey:
                answer = b"ERR:apikey"
            else:
                answer = f"OK:{len(v.received)}".encode()
            content_type = "text/plain"
        else:
            status, answer = 404, {"error": "no such path"}
        received.answer = answer
        self._answer(status, answer, content_type)


class _Server(ThreadingHTTPServer):
    # HQ sends pages side by side (16 at once): a listen backlog of 5 (the default) drops
    # connections on a loaded machine, which the sender sees as a timeout.
    request_queue_size = 128


def serve_vendors() -> Iterator[Vendors]:
    """Start the receivers on a free port of 127.0.0.1; stop them when the generator closes."""
    port = free_port()
    vendors = Vendors(base=f"http://127.0.0.1:{port}")
    handler = type("Handler", (_Handler,), {"vendors": vendors})
    server = _Server(("127.0.0.1", port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield vendors
    finally:
        vendors.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
