"""Paging latency (issue 14): ticket opened -> page received by a local webhook receiver,
p50/p99, idle and during an ingest storm, side by side in the same run with Prometheus
Alertmanager (Debian `prometheus-alertmanager`): new alert -> webhook with `group_wait: 0s`.

HQ: a real `stationwatch hq serve` (SQLite in a temp dir; PostgreSQL in a fresh schema of the
`test` database, dropped afterwards) with one engineer on duty for the sample site, whose
contact method is a signed generic webhook to a receiver on 127.0.0.1. A sample is a RAISE of a
new fingerprint POSTed alone as an agent does (gzip), at one of 60 sample sites in turn, each
with its own engineer on duty (the default rate limit, 5 pages per contact per 10 minutes,
holds for everyone); the receiver notes when the page about
that device arrives. Reported: from sending the POST, and from the ticket's `opened_at` (HQ's
clock, the same machine's) to arrival. During the storm a second agent posts 500-event batches
back to back at another site covered by another team (its pages rate-limited as configured).

Alertmanager: one instance, `group_by: ['...']` (a group per alert), `group_wait: 0s`, a
webhook receiver on 127.0.0.1; a sample is one new alert POSTed to /api/v2/alerts, timed to
its webhook's arrival; during its storm another thread posts 500-alert batches back to back.

    .venv/bin/python -m benchmarks.paging_latency                 # both databases (~3 min)
    .venv/bin/python -m benchmarks.paging_latency --backends sqlite --samples 30
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from benchmarks.hq_ingest import AgentClient, _event, gzip_body, storm_stream
from benchmarks.hq_procs import (
    Hq,
    child,
    free_port,
    hq_server,
    http_ok,
    loadavg,
    machine,
    median,
    percentile,
    pg_available,
    pg_schema,
    wait_until,
    which_alertmanager,
)

Results = dict[str, Any]
PASSWORD = "bench paging password 2026"  # noqa: S105 -- a throwaway HQ user
SAMPLE_SITE = "paging-sample"
STORM_SITE = "paging-storm"
PAGE_TIMEOUT_S = 15.0


class Receiver:
    """A webhook receiver on 127.0.0.1: wall-clock arrival of each request, by a key taken from
    its JSON body."""

    def __init__(self, key_of: Any) -> None:
        self.key_of = key_of
        self.arrived: dict[str, float] = {}
        self.count = 0
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    keys = receiver.key_of(json.loads(body))
                except (ValueError, KeyError, TypeError):
                    keys = []
                with receiver.cond:
                    receiver.count += 1
                    for key in keys:
                        receiver.arrived.setdefault(key, at)
                    receiver.cond.notify_all()

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, key: str, timeout: float = PAGE_TIMEOUT_S) -> float:
        """When the request about `key` arrived (waits for it)."""
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.arrived, timeout):
                raise RuntimeError(f"no webhook about {key} within {timeout:.0f} s")
            return self.arrived[key]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _page_keys(body: dict[str, Any]) -> list[str]:
    ticket = body.get("ticket") or {}
    return [str(ticket["device"])] if ticket.get("device") else []


def _am_keys(body: dict[str, Any]) -> list[str]:
    return [a["labels"].get("device", "") for a in body.get("alerts", [])]


def _stats(seconds: list[float]) -> Results:
    return {
        "n": len(seconds),
        "p50_ms": round(median(seconds) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1) if seconds else None,
    }


# ---- HQ ----------------------------------------------------------------------------------


def hq_env(receiver: Receiver) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return env | {
        "STATIONWATCH_ALLOW_PRIVATE_WEBHOOKS": "true",
        "STATIONWATCH_CHANNEL_ALLOW_INSECURE": "true",
        "STATIONWATCH_CHANNEL_EXTRA_HOSTS": "127.0.0.1",
        # The default rate limit (5 pages per contact per 10 minutes): the storm's engineer
        # gets 5 pages and a digest; the samples go to many engineers, a few each.
        "STATIONWATCH_CONSOLE_URL": "https://console.example.net",
    }


def setup_paging(hq: Hq, receiver: Receiver, contacts: int) -> None:
    """An engineer and a team per sample site, one for the storm site; grade 1 pages the
    on-duty engineer once (no repeats) through a signed webhook to the receiver."""
    api = httpx.Client(
        base_url=hq.url, timeout=30, trust_env=False,
        headers={"Authorization": f"Bearer {hq.admin_token}"},
    )  # fmt: skip
    try:
        sites = [(f"sample{k:03d}", f"{SAMPLE_SITE}-{k:03d}") for k in range(contacts)]
        for name, site in [*sites, ("storm", STORM_SITE)]:
            body = {"username": name, "role": "engineer", "password": PASSWORD}
            api.post("/api/v1/users", json=body).raise_for_status()
            contact = {"channels": [{"kind": "webhook", "url": receiver.url, "secret": "k" * 16}]}
            api.put(f"/api/v1/oncall/contacts/{name}", json=contact).raise_for_status()
            team = api.post(
                "/api/v1/oncall/teams",
                json={"name": name, "timezone": "Asia/Shanghai", "sites": [site]},
            )
            team.raise_for_status()
            rota = {"period": "weekly", "handover": "09:00", "starts_on": "2026-01-01",
                    "members": [name]}  # fmt: skip
            api.put(
                f"/api/v1/oncall/teams/{team.json()['id']}/rotations/primary", json=rota
            ).raise_for_status()
        policy = {"on_open": ["on_duty"], "on_raise": ["on_duty"], "repeat_minutes": None}
        api.put("/api/v1/paging/policies/1", json=policy).raise_for_status()
    finally:
        api.close()


@dataclass
class Sampler:
    """The sample sites' agents, used in turn, each with its own seq."""

    agents: list[tuple[str, AgentClient, Iterator[int]]]
    turn: Iterator[int] = field(default_factory=itertools.count)

    def next(self) -> tuple[str, AgentClient, int]:
        site, agent, seq = self.agents[next(self.turn) % len(self.agents)]
        return site, agent, next(seq)

    def close(self) -> None:
        for _, agent, _ in self.agents:
            agent.close()


def hq_samples(hq: Hq, sampler: Sampler, receiver: Receiver, n: int, tag: str) -> Results:
    """n tickets opened one after another; POST -> page and opened_at -> page."""
    from_post: list[float] = []
    devices = []
    sites = set()
    for i in range(n):
        site, agent, seq = sampler.next()
        sites.add(site)
        device = f"{tag}-{i:04d}-{uuid.uuid4().hex[:6]}"
        devices.append(device)
        event = _event(seq, "raise", device, "off_air", 1, datetime.now(UTC))
        body = gzip_body([event])
        t0 = time.time()
        agent.post(body, 1)
        try:
            from_post.append(receiver.wait(device) - t0)
        except RuntimeError:
            print(hq.proc.tail(40), flush=True)
            raise
    # opened_at of each sample's ticket, through the API.
    api = httpx.Client(
        base_url=hq.url, timeout=30, trust_env=False,
        headers={"Authorization": f"Bearer {hq.admin_token}"},
    )  # fmt: skip
    try:
        tickets = [
            t
            for site in sorted(sites)
            for t in api.get("/api/v1/tickets", params={"site": site, "limit": 500}).json()
        ]
    finally:
        api.close()
    opened = {t["device_id"]: datetime.fromisoformat(t["opened_at"]).timestamp() for t in tickets}
    from_open = [receiver.arrived[d] - opened[d] for d in devices if d in opened]
    return {"post_to_page": _stats(from_post), "opened_to_page": _stats(from_open)}


@contextmanager
def storm(post: Any, label: str) -> Iterator[Results]:
    """Run `post()` back to back in a thread for the duration of the block; counts batches."""
    stop = threading.Event()
    counts: Results = {"label": label, "batches": 0, "errors": 0}

    def run() -> None:
        while not stop.is_set():
            try:
                post()
                counts["batches"] += 1
            except Exception as exc:  # reported, the samples go on
                counts["errors"] += 1
                counts["last_error"] = str(exc)[:200]
                time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(1.0)  # let the storm get going before sampling (load, not synchronisation)
    try:
        yield counts
    finally:
        stop.set()
        thread.join(timeout=120)


def run_hq(backend: str, work: Path, args: argparse.Namespace) -> Results:
    with Receiver(_page_keys) as receiver:

        def body(db_url: str | None) -> Results:
            with hq_server(work / backend, db_url, env=hq_env(receiver)) as hq:
                setup_paging(hq, receiver, args.contacts)
                sampler = Sampler(
                    [
                        (site, AgentClient(hq, hq.enroll(site, "sampler")), itertools.count(1))
                        for site in (f"{SAMPLE_SITE}-{k:03d}" for k in range(args.contacts))
                    ]
                )
                storm_agent = AgentClient(hq, hq.enroll(STORM_SITE, "stormer"))
                try:
                    hq_samples(hq, sampler, receiver, 3, "warmup")
                    idle = hq_samples(hq, sampler, receiver, args.samples, "idle")
                    print(f"[hq {backend}] idle {idle}; load {loadavg()}", flush=True)
                    stream = storm_stream(STORM_SITE, 10**6, 1000, datetime.now(UTC))
                    batches = iter(stream.batches())
                    with storm(lambda: storm_agent.post(gzip_body(next(batches)), 500),
                               "hq") as counts:  # fmt: skip
                        stormy = hq_samples(hq, sampler, receiver, args.samples, "storm")
                    counts["events"] = counts["batches"] * 500
                    print(f"[hq {backend}] storm {stormy} ({counts}); load {loadavg()}", flush=True)
                    return {"idle": idle, "storm": stormy, "storm_load": counts}
                finally:
                    sampler.close()
                    storm_agent.close()

        if backend == "postgresql":
            with pg_schema("paging") as url:
                return body(url)
        return body(None)


# ---- Alertmanager --------------------------------------------------------------------------

_AM_CONFIG = """\
route:
  receiver: "hook"
  group_by: ["..."]
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: "hook"
    webhook_configs:
      - url: "{url}"
        send_resolved: false
"""


def _alert(device: str, site: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "off_air", "site": site, "device": device},
        "annotations": {"title": f"off_air on {device}", "grade": "1"},
        "startsAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def run_alertmanager(work: Path, args: argparse.Namespace) -> Results:
    binary = which_alertmanager()
    if binary is None:
        return {"skipped": "Alertmanager not installed (apt-get install prometheus-alertmanager)"}
    with Receiver(_am_keys) as receiver:
        work.mkdir(parents=True, exist_ok=True)
        (work / "am.yml").write_text(_AM_CONFIG.format(url=receiver.url))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [
            binary, f"--config.file={work / 'am.yml'}", f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            "--log.level=warn",
        ]  # fmt: skip
        with child("alertmanager", argv, work) as proc:
            wait_until("Alertmanager /-/ready", lambda: http_ok(f"{url}/-/ready"), 60, proc)
            client = httpx.Client(base_url=url, timeout=60, trust_env=False)
            storm_client = httpx.Client(base_url=url, timeout=120, trust_env=False)

            def samples(n: int, tag: str) -> Results:
                seconds = []
                for i in range(n):
                    device = f"{tag}-{i:04d}-{uuid.uuid4().hex[:6]}"
                    t0 = time.time()
                    client.post("/api/v2/alerts", json=[_alert(device, SAMPLE_SITE)])
                    seconds.append(receiver.wait(device) - t0)
                return {"post_to_page": _stats(seconds)}

            counter = iter(range(10**9))

            def storm_post() -> None:
                k = next(counter)
                batch = [_alert(f"st{(k * 500 + j) % 1000:04d}", STORM_SITE) for j in range(500)]
                storm_client.post("/api/v2/alerts", json=batch).raise_for_status()

            try:
                samples(3, "warmup")
                idle = samples(args.samples, "idle")
                print(f"[alertmanager] idle {idle}; load {loadavg()}", flush=True)
                with storm(storm_post, "alertmanager") as counts:
                    stormy = samples(args.samples, "storm")
                counts["alerts"] = counts["batches"] * 500
                print(f"[alertmanager] storm {stormy} ({counts}); load {loadavg()}", flush=True)
                return {"idle": idle, "storm": stormy, "storm_load": counts}
            finally:
                client.close()
                storm_client.close()


# ---- report ----------------------------------------------------------------------------------


def table(out: Results) -> str:
    rows = [
        "| system | when | from | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for system, res in out["systems"].items():
        if "skipped" in res:
            rows.append(f"| {system} | skipped: {res['skipped']} | | | | | |")
            continue
        for when in ("idle", "storm"):
            for frm, stats in res[when].items():
                rows.append(
                    f"| {system} | {when} | {frm.replace('_', ' ')} | {stats['n']} | "
                    f"{stats['p50_ms']} | {stats['p99_ms']} | {stats['max_ms']} |"
                )
    loads = [
        f"{system}: {res['storm_load']['batches']} storm batches of 500 during its samples"
        for system, res in out["systems"].items()
        if "storm_load" in res
    ]
    return "\n".join(rows) + "\n\n" + "; ".join(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument(
        "--contacts",
        type=int,
        default=60,
        help="sample sites, each with its own on-duty engineer (the rate limit is per contact)",
    )
    parser.add_argument("--no-alertmanager", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out: Results = {"machine": machine(), "systems": {}}
    print(out["machine"], flush=True)
    with tempfile.TemporaryDirectory(prefix="paging-bench-") as tmp:
        work = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "postgresql" and (why := pg_available()) is not None:
                out["systems"]["HQ postgresql"] = {"skipped": why}
                continue
            out["systems"][f"HQ {backend}"] = run_hq(backend, work, args)
        if not args.no_alertmanager:
            out["systems"]["Alertmanager"] = run_alertmanager(work / "am", args)
    print()
    print(table(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
