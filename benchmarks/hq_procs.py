"""Shared helpers of the benchmarks: the machine, real child processes, HQ on SQLite or PostgreSQL.

Everything listens on loopback only, and every process started here is stopped by its context
manager (terminate, then kill after a grace period), whatever happens in between.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import httpx

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def stationwatch_cmd() -> list[str]:
    """The `stationwatch` command of this interpreter's environment."""
    exe = Path(sys.executable).with_name("stationwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loadavg() -> str:
    """The 1/5/15-minute load averages, e.g. '1.02 0.88 0.75'."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """One line describing this machine (CPU, cores, memory, OS, Python) and the date."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
                break
    except OSError:
        pass
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{when}; {cpu}, {os.cpu_count()} cores{mem}; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; load {loadavg()}"
    )


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile (nearest rank on the sorted values); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    """The median; nan when empty."""
    return statistics.median(values) if values else float("nan")


def wait_until(what: str, probe: Callable[[], bool], timeout_s: float, proc: Proc | None) -> None:
    """Poll `probe` every 0.1 s until true; fail after timeout_s or if `proc` exits first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}: {proc.tail()}")
        if probe():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout_s:.0f} s")


@dataclass
class Proc:
    """A child process with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    def tail(self, lines: int = 15) -> str:
        """The last lines of its output."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextmanager
def child(
    name: str,
    argv: list[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    open_files: tuple[int, int] | None = None,
) -> Iterator[Proc]:
    """Run argv as a child process for the duration of the block; always stopped afterwards.
    `open_files`: its RLIMIT_NOFILE (soft, hard)."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")

    def limits() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, open_files)

    popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=limits)
    proc = Proc(name, popen, log_path, log)
    try:
        yield proc
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=15)
        log.close()


def http_ok(url: str) -> bool:
    """True if GET url answers 200."""
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def pg_schema(prefix: str = "bench") -> Iterator[str]:
    """A fresh schema in PostgreSQL's `test` database as an HQ URL; dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def pg_available() -> str | None:
    """None if PostgreSQL answers on 127.0.0.1:5432, else why not."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(PG_SERVER, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


@dataclass
class Hq:
    """A running `stationwatch hq serve` and what is needed to talk to it."""

    url: str
    db_url: str
    admin_token: str
    proc: Proc
    _cli: list[str]

    def site_enrollment_token(self, site: str) -> str:
        """Create `site` (if missing) and return a one-time enrollment token for it."""
        return _capture([*self._cli, "site", "add", site])

    def enroll(self, site: str, hostname: str) -> str:
        """Enroll an agent at `site` through the API; its agent token."""
        body = {
            "enrollment_token": self.site_enrollment_token(site),
            "hostname": hostname,
            "agent_version": "bench",
        }
        resp = httpx.post(f"{self.url}/api/v1/enroll", json=body, timeout=30, trust_env=False)
        resp.raise_for_status()
        token: str = resp.json()["agent_token"]
        return token


def _capture(argv: list[str]) -> str:
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)
    return out.stdout.strip()


@contextmanager
def hq_server(
    work: Path,
    db_url: str | None = None,
    log_level: str = "warning",
    open_files: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Hq]:
    """HQ serving on a free loopback port: SQLite under `work`, or `db_url` (e.g. PostgreSQL);
    `open_files`: its RLIMIT_NOFILE (soft, hard); `env`: its environment (settings)."""
    sw = stationwatch_cmd()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "hq"
    db_opts = ["--data-dir", str(data_dir), *(["--db-url", db_url] if db_url else [])]
    cli = [*sw, "hq"]
    _capture([*cli, "db", "upgrade", *db_opts])
    admin = _capture([*cli, "token", "create", "--role", "admin", "--name", "bench", *db_opts])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*cli, "serve", "--port", str(port), "--log-level", log_level, *db_opts]
    with child("hq", argv, work, env=env, open_files=open_files) as proc:
        wait_until("HQ /healthz", lambda: http_ok(f"{url}/healthz"), 60, proc)
        resolved = db_url or f"sqlite:///{(data_dir / 'hq.sqlite3').resolve()}"
        # `hq` accepts the database options before its subcommand, too.
        yield Hq(url, resolved, admin, proc, [*cli, *db_opts])


def which_alertmanager() -> str | None:
    """The Alertmanager binary (Debian: prometheus-alertmanager), if installed."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
