"""HQ under the attacks of issue 11, on a real `stationwatch hq serve` (SQLite, loopback).

1. Memory: HQ's RSS idle, then its peak (psutil, sampled every 20 ms) while 20 requests without a
   token, each a 17 KiB gzip body that inflates to 17 MiB of nested empty lists (`[[],[],...]`),
   go to 10 routes at once (events, heartbeat, backups, a job result, users, a ticket comment,
   site jobs, escalation chains, login, enrollment; 2 each); and the statuses they got.
2. Idle connections: N TCP connections (1,100 by default) are opened and left idle, no byte sent,
   for 30 s; meanwhile /healthz is asked once a second on a fresh connection: latency median and
   max, what HQ logged (lines besides the probes' access log, bytes) and how many of the idle
   connections HQ closed (header_timeout). HQ starts with the open files limit of a service
   without LimitNOFILE (soft 1,024 under a hard 4,096), as systemd gives by default.
3. Big bodies from a token holder: 4 agents post bodies of 499,000 values (just under
   max_json_items; ~1 MB, refused by the schema after parsing) back to back for 10 s while
   /healthz is probed: the JSON is parsed in a worker thread, not on the event loop.

    .venv/bin/python -m benchmarks.hq_attacks
    .venv/bin/python -m benchmarks.hq_attacks --connections 1100 --requests 20 --hold-seconds 30
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import socket
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.hq_procs import Hq, hq_server, loadavg, machine, median

MiB = 1024 * 1024
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
GZIP_JSON = {"Content-Encoding": "gzip", "Content-Type": "application/json"}

Results = dict[str, Any]


def bomb() -> bytes:
    """17 KiB of gzip inflating to 17 MiB of nested empty lists."""
    return gzip.compress(b"[" + b"[]," * 6_000_000 + b"[]]", 9)


def healthz_ms(url: str) -> float:
    """One /healthz on a fresh connection, in ms (inf if it did not answer 200 within 10 s)."""
    start = time.perf_counter()
    try:
        response = httpx.get(f"{url}/healthz", timeout=10, trust_env=False)
    except httpx.HTTPError:
        return float("inf")
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed if response.status_code == 200 else float("inf")


def memory_attack(hq: Hq, requests: int) -> Results:
    """Idle and peak RSS of HQ while `requests` gzip bombs without a token arrive at once."""
    process = psutil.Process(hq.proc.popen.pid)
    time.sleep(1.0)  # let startup garbage settle before the idle figure
    idle = process.memory_info().rss
    body = bomb()
    statuses: list[int] = []
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    def send(path: str) -> None:
        try:
            response = httpx.post(
                hq.url + path, content=body, headers=GZIP_JSON, timeout=120, trust_env=False
            )
            statuses.append(response.status_code)
        except httpx.HTTPError:
            statuses.append(0)

    sampler = threading.Thread(target=sample)
    senders = [
        threading.Thread(target=send, args=(BOMB_ROUTES[i % len(BOMB_ROUTES)],))
        for i in range(requests)
    ]
    start = time.perf_counter()
    sampler.start()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    peak = max(peak, process.memory_info().rss)
    return {
        "requests": requests,
        "body_bytes": len(body),
        "idle_rss_mib": idle / MiB,
        "peak_rss_mib": peak / MiB,
        "growth_mib": (peak - idle) / MiB,
        "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "seconds": elapsed,
    }


def connection_attack(hq: Hq, connections: int, hold_s: float) -> Results:
    """/healthz latency on fresh connections, once a second for `hold_s`, while `connections`
    idle ones are open; what HQ logged meanwhile and how many idle ones it closed."""
    log_before = hq.proc.log_path.stat().st_size
    lines_before = len(hq.proc.log_path.read_text(errors="replace").splitlines())
    latencies: list[float] = []
    with ExitStack() as stack:
        start = time.perf_counter()
        idle = [
            stack.enter_context(socket.create_connection(_address(hq.url), timeout=10))
            for _ in range(connections)
        ]
        opened_s = time.perf_counter() - start
        end = time.monotonic() + hold_s
        while time.monotonic() < end:
            latencies.append(healthz_ms(hq.url))
            time.sleep(max(0.0, 1.0 - latencies[-1] / 1000))
        closed = sum(1 for sock in idle if _closed_by_peer(sock))
    text = hq.proc.log_path.read_text(errors="replace")
    return {
        "connections": connections,
        "open_s": opened_s,
        "hold_s": hold_s,
        "probes": len(latencies),
        "healthz_median_ms": median(latencies),
        "healthz_max_ms": max(latencies),
        "answered": sum(1 for ms in latencies if ms != float("inf")),
        "closed_by_hq": closed,
        # Without the access-log line of each probe.
        "log_lines": len(text.splitlines()) - lines_before - len(latencies),
        "log_bytes": hq.proc.log_path.stat().st_size - log_before,
    }


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def big_bodies(hq: Hq, agents: int, seconds: float) -> Results:
    """/healthz latency while `agents` agents post bodies just under max_json_items."""
    tokens = [hq.enroll(f"bench-{i}", f"box{i}") for i in range(agents)]
    raw = json.dumps({"events": [[]] * 498_998}).encode()  # 499,000 values with the root
    body = gzip.compress(raw)
    stop = threading.Event()
    posted: list[tuple[int, float]] = []

    def post(token: str) -> None:
        headers = {**GZIP_JSON, "Authorization": f"Bearer {token}"}
        with httpx.Client(trust_env=False, timeout=60) as client:
            while not stop.is_set():
                start = time.perf_counter()
                response = client.post(f"{hq.url}/api/v1/events", content=body, headers=headers)
                posted.append((response.status_code, time.perf_counter() - start))

    posters = [threading.Thread(target=post, args=(t,)) for t in tokens]
    for poster in posters:
        poster.start()
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        latencies.append(healthz_ms(hq.url))
        time.sleep(0.1)
    stop.set()
    for poster in posters:
        poster.join()
    durations = [d for _, d in posted]
    return {
        "agents": agents,
        "body_bytes": len(raw),
        "posts": len(posted),
        "statuses": {str(s): [c for c, _ in posted].count(s) for s in {c for c, _ in posted}},
        "post_median_ms": median(durations) * 1000,
        "healthz_probes": len(latencies),
        "healthz_median_ms": median(latencies),
        "healthz_max_ms": max(latencies),
    }


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the three attacks and print Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=20, help="gzip bombs sent at once")
    parser.add_argument("--connections", type=int, default=1100, help="idle connections")
    parser.add_argument(
        "--hold-seconds", type=float, default=30.0, help="how long the idle connections stay"
    )
    parser.add_argument("--big-seconds", type=float, default=10.0, help="big-body phase")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * args.connections + 256
    if hard != resource.RLIM_INFINITY and hard < needed:
        print(f"need an open files hard limit of {needed}; it is {hard}", file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    hq_hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)

    results: Results = {"machine": machine()}
    with (
        tempfile.TemporaryDirectory(prefix="hq-attacks-") as tmp,
        hq_server(Path(tmp), log_level="info", open_files=(1024, hq_hard)) as hq,
    ):
        results["memory"] = memory_attack(hq, args.requests)
        results["connections"] = connection_attack(hq, args.connections, args.hold_seconds)
        results["big_bodies"] = big_bodies(hq, 4, args.big_seconds)
    results["load_after"] = loadavg()

    mem, conn, big = results["memory"], results["connections"], results["big_bodies"]
    print(f"Machine: {results['machine']}\n")
    print("| requests without a token | body (gzip) | idle RSS | peak RSS | growth | statuses |")
    print("|---:|---:|---:|---:|---:|---|")
    print(
        f"| {mem['requests']} | {mem['body_bytes'] / 1024:.1f} KiB | {mem['idle_rss_mib']:.0f} MiB"
        f" | {mem['peak_rss_mib']:.0f} MiB | {mem['growth_mib']:.0f} MiB | {mem['statuses']} |"
    )
    print(
        "\n| idle connections, held | /healthz answered | median | max | closed by HQ "
        "| other log lines | log bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {conn['connections']}, {conn['hold_s']:.0f} s | {conn['answered']}/{conn['probes']} "
        f"| {conn['healthz_median_ms']:.1f} ms | {conn['healthz_max_ms']:.1f} ms "
        f"| {conn['closed_by_hq']} | {conn['log_lines']} | {conn['log_bytes']} |"
    )
    print("\n| agents posting 499,000-value bodies | posts | post median | /healthz median | max |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {big['agents']} ({big['body_bytes'] / MiB:.1f} MiB each) | {big['posts']} "
        f"{big['statuses']} | {big['post_median_ms']:.0f} ms | {big['healthz_median_ms']:.1f} ms"
        f" | {big['healthz_max_ms']:.1f} ms |"
    )
    print(f"\nload after: {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
