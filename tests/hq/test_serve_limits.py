"""The attacks of issue 11 against a real `stationwatch hq serve` process on loopback: a flood of
unauthenticated gzip bombs (memory), ~1,100 idle connections (file descriptors, log floods),
X-Forwarded-For from a local client (login throttle, audit)."""

from __future__ import annotations

import gzip
import resource
import selectors
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import select

from hq_server.store.db import Database
from hq_server.store.models import AuditEntry
from tests.peers import free_port

MiB = 1024 * 1024
IDLE_CONNECTIONS = 1100
# The kind of body that took HQ from ~110 MiB to ~2 GiB: 17 KiB of gzip, 17 MiB of `[],`.
BOMB = gzip.compress(b"[" + b"[]," * 6_000_000 + b"[]]", 9)
BOMB_ROUTES = [
    "/api/v1/events",
    "/api/v1/heartbeat",
    "/api/v1/backups",
    f"/api/v1/jobs/{uuid.uuid4()}/result",
    "/api/v1/users",
    "/api/v1/tickets/1/comment",
    "/api/v1/sites/1/jobs",
    "/api/v1/escalation-chains",
    "/api/v1/auth/token",
    "/api/v1/enroll",
]


@dataclass
class Served:
    """A running `hq serve`: its URL, process and log."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    data_dir: Path

    def log_lines(self) -> list[str]:
        """Everything it has written so far."""
        return self.log.read_text(errors="replace").splitlines()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(
    tmp_path: Path,
    sw: list[str],
    env: dict[str, str],
    open_files: tuple[int, int] | None = None,
    **settings: str,
) -> Iterator[Served]:
    """`hq serve` on a free port and a fresh SQLite data dir, with STATIONWATCH_* `settings` and
    the RLIMIT_NOFILE `open_files` (soft, hard); stopped afterwards."""
    data_dir = tmp_path / f"hq-{uuid.uuid4().hex[:6]}"
    port = free_port()
    child_env = {k: v for k, v in env.items() if not k.startswith("STATIONWATCH_")}
    child_env.update({f"STATIONWATCH_{k.upper()}": v for k, v in settings.items()})

    def limits() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    log = data_dir.with_suffix(".log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*sw, "hq", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=limits,
        )
    served = Served(f"http://127.0.0.1:{port}", port, proc, log, data_dir)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(served.url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hq serve did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.1)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def env(clean_env: dict[str, str]) -> dict[str, str]:
    """The environment of the children."""
    return clean_env


@pytest.fixture
def many_files() -> Iterator[None]:
    """This test process may open the idle connections (soft RLIMIT_NOFILE raised for it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * IDLE_CONNECTIONS + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open files limit ({hard}) is below the {needed} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class PeakRss:
    """The peak RSS of a process, sampled in a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def test_unauthenticated_gzip_bombs_do_not_grow_hq(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str]
) -> None:
    assert len(BOMB) < 18 * 1024
    with serving(tmp_path, stationwatch_cmd, env) as hq:
        idle = psutil.Process(hq.proc.pid).memory_info().rss
        statuses: list[int] = []

        def bomb(path: str) -> None:
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            response = httpx.post(
                hq.url + path, content=BOMB, headers=headers, timeout=60, trust_env=False
            )
            statuses.append(response.status_code)

        senders = [
            threading.Thread(target=bomb, args=(BOMB_ROUTES[i % len(BOMB_ROUTES)],))
            for i in range(20)
        ]
        with PeakRss(hq.proc.pid) as rss:
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join()
        grown = (rss.peak - idle) / MiB
        assert grown < 100, f"RSS grew by {grown:.0f} MiB (idle {idle / MiB:.0f} MiB)"
        assert sorted(set(statuses)) == [401, 413], statuses
        assert statuses.count(413) == 4  # login and enrollment: over the anonymous limit
        assert _healthy(hq.url)


def _open_idle(port: int, count: int, stack: ExitStack) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        sockets.append(sock)
    return sockets


def _open_files_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit in /proc")


def test_healthz_answers_while_1100_idle_connections_are_open(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str], many_files: None
) -> None:
    # systemd's default for a service: a soft limit of 1,024 under a higher hard limit.
    with serving(tmp_path, stationwatch_cmd, env, open_files=(1024, 4096)) as hq:
        assert _open_files_of(hq.proc.pid) == 4096
        assert any("raised the open files limit from 1024 to 4096" in x for x in hq.log_lines())
        before = len(hq.log_lines())
        with ExitStack() as stack:
            _open_idle(hq.port, IDLE_CONNECTIONS, stack)
            response = httpx.get(f"{hq.url}/healthz", timeout=5, trust_env=False)
            assert response.status_code == 200
            written = hq.log_lines()[before:]
        assert not [line for line in written if "Too many open files" in line]
        assert len(written) < 20, "\n".join(written[:40])


def _wait_closed(sockets: list[socket.socket], timeout_s: float) -> int:
    """Wait until HQ has closed each socket (EOF or reset); how many it closed in time."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed = 0
    deadline = time.monotonic() + timeout_s
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                data = ready.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(ready)
                closed += 1
    selector.close()
    return closed


def test_idle_connections_past_the_files_limit_are_shed_not_logged(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str], many_files: None
) -> None:
    # HQ cannot raise this limit: it takes fewer connections, closes the others at once and
    # the idle ones after header_timeout, and writes a few lines about it. header_timeout is
    # long enough for all the connections to be open before the first is closed, also on a
    # loaded machine (with 2 s the first ones were closed before the cap was reached).
    with serving(
        tmp_path, stationwatch_cmd, env, open_files=(1024, 1024), header_timeout="8"
    ) as hq:
        assert any("max_connections 4096 and listen_backlog" in x for x in hq.log_lines())
        before = len(hq.log_lines())
        with ExitStack() as stack:
            sockets = _open_idle(hq.port, IDLE_CONNECTIONS, stack)
            half = stack.enter_context(socket.create_connection(("127.0.0.1", hq.port)))
            half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
            assert _wait_closed([*sockets, half], timeout_s=40) == IDLE_CONNECTIONS + 1
            assert _healthy(hq.url)
            written = hq.log_lines()[before:]
        assert not [line for line in written if "Too many open files" in line]
        refusals = [line for line in written if "refused a connection" in line]
        assert 1 <= len(refusals) <= 2, refusals
        assert len(written) < 20, "\n".join(written[:40])


def _failed_logins(url: str, forwarded: Callable[[int], str], count: int) -> list[int]:
    statuses = []
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
        for i in range(count):
            response = client.post(
                "/api/v1/auth/token",
                json={"username": f"user{i}", "password": "wrong-password"},
                headers={"X-Forwarded-For": forwarded(i)},
            )
            statuses.append(response.status_code)
    return statuses


def _audit_clients(data_dir: Path) -> list[str]:
    db = Database(f"sqlite:///{data_dir / 'hq.sqlite3'}")
    try:
        with db.session() as session:
            return list(session.scalars(select(AuditEntry.client).order_by(AuditEntry.id)))
    finally:
        db.dispose()


def test_a_local_client_cannot_forward_its_way_past_the_login_throttle(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str]
) -> None:
    with serving(tmp_path, stationwatch_cmd, env) as hq:
        statuses = _failed_logins(hq.url, lambda i: f"203.0.113.{i}", 6)
        assert statuses == [401] * 5 + [429]
        assert set(_audit_clients(hq.data_dir)) == {"127.0.0.1"}


def test_a_configured_proxy_names_the_client(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str]
) -> None:
    with serving(tmp_path, stationwatch_cmd, env, trusted_proxies="127.0.0.1") as hq:
        statuses = _failed_logins(hq.url, lambda i: f"198.51.100.9, 203.0.113.{i}", 6)
        assert statuses == [401] * 6  # six clients, one failure each
        assert _audit_clients(hq.data_dir) == [f"203.0.113.{i}" for i in range(6)]


def _trickle_until_answered(sock: socket.socket, head: bytes, byte: bytes, limit_s: float) -> bytes:
    """Send `head`, then one `byte` every 0.2 s (a slow client, not a wait for HQ) until HQ
    answers; everything HQ sent until it closed the connection (fails after `limit_s`)."""
    sock.sendall(head)
    answer = b""
    deadline = time.monotonic() + limit_s
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    while time.monotonic() < deadline:
        if selector.select(timeout=0.2):
            data = sock.recv(65536)
            if not data:
                selector.close()
                return answer
            answer += data
        elif not answer:
            sock.sendall(byte)
    selector.close()
    pytest.fail(f"HQ neither answered nor closed within {limit_s} s; got {answer!r}")


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 4000\r\n\r\n{", b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"],
    ids=["content-length", "chunked"],
)
def test_a_slow_body_is_answered_408_and_closed(
    tmp_path: Path, stationwatch_cmd: list[str], env: dict[str, str], framing: bytes
) -> None:
    """A client that sends its headers and then trickles the body holds no worker past
    body_timeout: it gets a 408 and HQ closes the connection; HQ goes on answering."""
    with serving(tmp_path, stationwatch_cmd, env, body_timeout="2") as hq:
        head = (
            b"POST /api/v1/auth/token HTTP/1.1\r\nHost: hq\r\n"
            b"Content-Type: application/json\r\n" + framing
        )
        byte = b" " if b"Content-Length" in framing else b"1\r\n \r\n"
        with socket.create_connection(("127.0.0.1", hq.port), timeout=10) as sock:
            started = time.monotonic()
            answer = _trickle_until_answered(sock, head, byte, limit_s=30)
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b"connection: close" in answer.lower()
        assert b"body_timeout" in answer
        assert took >= 2  # not before the body's time was up
        assert _healthy(hq.url)
