"""HQ ingest benchmark (issue 5), with Prometheus Alertmanager as the reference, in one run.

For each database (SQLite in a temp dir; PostgreSQL in a fresh schema of the `test` database,
dropped afterwards) a real `stationwatch hq serve` is started on a free loopback port and fed by
httpx clients acting as enrolled agents:

1. throughput: gzip batches of 500 events (RAISE / UPDATE / CLEAR over 2,000 fingerprints per
   agent), 1 agent sequentially and 4 agents (4 sites) in parallel; events/s and batch latency.
2. alarm-to-ticket latency: a RAISE of a new fingerprint is POSTed, then GET /api/v1/tickets is
   polled until its ticket shows. HQ answers a batch only after its transaction has committed, so
   the ack already implies the ticket is visible; both the ack time and the POST->visible time are
   reported, idle and while another agent keeps posting 500-event batches.
3. alarm storm: 100,000 RAISE/CLEAR events over 1,000 fingerprints (100 per fingerprint, half of
   them ending raised): at most 1,000 tickets may exist afterwards, and 500 alarms stay active.

Then the same alerts go to Alertmanager (Debian `prometheus-alertmanager`, if installed) through
POST /api/v2/alerts in batches of 500 (labels = the fingerprint; CLEAR = endsAt), and its groups
and alerts are counted through its API. Batches are built and compressed before the clock starts,
so the figures are the server's, not the generator's.

    .venv/bin/python -m benchmarks.hq_ingest            # everything (~6 min)
    .venv/bin/python -m benchmarks.hq_ingest --backends sqlite --events 10000 --storm-events 20000
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

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

BATCH = 500
FINGERPRINTS_PER_AGENT = 2_000
TARGET_EVENTS_PER_S = 5_000
TARGET_P99_S = 1.0
MAX_RETRIES = 20
RETRY_PAUSE_S = 0.5

Event = dict[str, Any]
Results = dict[str, Any]


# ---- workload ----------------------------------------------------------------------------


@dataclass
class Stream:
    """The events one agent sends, in seq order, with its site's name."""

    site: str
    events: list[Event] = field(default_factory=list)

    def batches(self, size: int = BATCH) -> list[list[Event]]:
        """The events cut into batches."""
        return [self.events[i : i + size] for i in range(0, len(self.events), size)]


def _event(
    seq: int, kind: str, device: str, code: str, grade: int, at: datetime, component: str = ""
) -> Event:
    return {
        "event_id": str(uuid.uuid4()),
        "seq": seq,
        "kind": kind,
        "device_id": device,
        "device_class": "transmitter",
        "code": code,
        "component": component,
        "grade": grade,
        "title": f"{code} on {device}",
        "detail": "",
        "observed_at": at.isoformat(),
        "values": {"forward_power_w": 812.5, "vswr": 1.21},
    }


def mixed_stream(site: str, n: int, seed: int, start: datetime) -> Stream:
    """n realistic events: per fingerprint RAISE, then CLEAR / repeated RAISE / grade UPDATE."""
    rng = random.Random(seed)
    codes = ["off_air", "power_drop", "vswr_high", "fan_fault", "temp_high", "psu_lost", "link"]
    fingerprints = [
        (f"dev{d:02d}", codes[c % len(codes)], f"port{c}" if c >= len(codes) else "")
        for d in range(50)
        for c in range(FINGERPRINTS_PER_AGENT // 50)
    ]
    active: dict[int, int] = {}  # fingerprint index -> grade
    stream = Stream(site)
    for seq in range(1, n + 1):
        i = rng.randrange(len(fingerprints))
        device, code, component = fingerprints[i]
        at = start + timedelta(milliseconds=10 * seq)
        if i not in active:
            kind, grade = "raise", rng.randint(1, 5)
            active[i] = grade
        else:
            roll = rng.random()
            if roll < 0.6:
                kind, grade = "clear", active.pop(i)
            elif roll < 0.8:
                kind, grade = "raise", active[i]
            else:
                kind, grade = "update", rng.randint(1, 5)
                active[i] = grade
        stream.events.append(_event(seq, kind, device, code, grade, at, component))
    return stream


def storm_stream(site: str, n: int, fingerprints: int, start: datetime) -> Stream:
    """n RAISE/CLEAR events round-robin over the fingerprints; odd ones start with a CLEAR."""
    stream = Stream(site)
    for seq in range(1, n + 1):
        i = (seq - 1) % fingerprints
        rnd = (seq - 1) // fingerprints
        kind = "raise" if (rnd + i % 2) % 2 == 0 else "clear"
        at = start + timedelta(milliseconds=seq)
        stream.events.append(_event(seq, kind, f"sw{i // 10:03d}", f"port_down_{i % 10}", 3, at))
    return stream


def gzip_body(events: list[Event]) -> bytes:
    """A batch as the agent's uplink sends it (JSON, gzip level 6)."""
    return gzip.compress(json.dumps({"events": events}).encode(), compresslevel=6)


# ---- HQ ----------------------------------------------------------------------------------


class AgentClient:
    """An enrolled agent's keep-alive connection to HQ."""

    def __init__(self, hq: Hq, token: str) -> None:
        self.client = httpx.Client(
            base_url=hq.url,
            timeout=120,
            trust_env=False,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
        )
        self.retries = 0
        self.acked = 0

    def post(self, body: bytes, expected: int) -> float:
        """POST one gzip batch; seconds taken, retries included. Fails unless all are acked.

        Like the agent's uplink, a 503/429 (HQ shedding load) is retried after a pause; the
        retries are counted.
        """
        t0 = time.perf_counter()
        for _attempt in range(MAX_RETRIES + 1):
            resp = self.client.post("/api/v1/events", content=body)
            if resp.status_code not in (429, 503):
                break
            self.retries += 1
            time.sleep(RETRY_PAUSE_S)
        elapsed = time.perf_counter() - t0
        if resp.status_code != 200:
            raise RuntimeError(f"HQ answered {resp.status_code}: {resp.text[:300]}")
        stored = len(resp.json()["stored"])
        if stored != expected:
            raise RuntimeError(f"HQ acknowledged {stored} of {expected} events")
        self.acked += stored
        return elapsed

    def close(self) -> None:
        """Close the connection."""
        self.client.close()


def _user(hq: Hq) -> httpx.Client:
    return httpx.Client(
        base_url=hq.url,
        timeout=30,
        trust_env=False,
        headers={"Authorization": f"Bearer {hq.admin_token}"},
    )


def bench_throughput(hq: Hq, streams: list[Stream], label: str) -> Results:
    """Post every stream's batches, one thread per agent, all at once; events/s overall."""
    agents = [AgentClient(hq, hq.enroll(s.site, f"box-{s.site}")) for s in streams]
    bodies = [[(gzip_body(b), len(b)) for b in s.batches()] for s in streams]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(agents) + 1)

    def run(agent: AgentClient, batches: list[tuple[bytes, int]]) -> None:
        barrier.wait()
        mine: list[float] = []
        try:
            for k, (body, n) in enumerate(batches, 1):
                mine.append(agent.post(body, n))
                if len(agents) == 1 and k % 40 == 0:
                    print(f"  {label}: {k}/{len(batches)} batches", file=sys.stderr, flush=True)
        except (RuntimeError, httpx.HTTPError) as exc:
            with lock:
                errors.append(str(exc))
        with lock:
            latencies.extend(mine)

    threads = [
        threading.Thread(target=run, args=(a, b), daemon=True)
        for a, b in zip(agents, bodies, strict=True)
    ]
    for t in threads:
        t.start()
    load_before = loadavg()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for a in agents:
        a.close()
    total = sum(a.acked for a in agents)
    return {
        "label": label,
        "agents": len(streams),
        "events": total,
        "events_planned": sum(len(s.events) for s in streams),
        "retries_503": sum(a.retries for a in agents),
        "seconds": round(wall, 2),
        "events_per_s": round(total / wall),
        "batch_p50_ms": round(median(latencies) * 1000, 1),
        "batch_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": errors[:3],
        "load_before": load_before,
        "load_after": loadavg(),
    }


def _ticket_visible(user: httpx.Client, site: str, fault_key: str, deadline: float) -> bool:
    while time.perf_counter() < deadline:
        resp = user.get("/api/v1/tickets", params={"site": site, "limit": 5})
        resp.raise_for_status()
        if any(t["fault_key"] == fault_key for t in resp.json()):
            return True
    return False


@contextmanager
def background_load(hq: Hq, seconds_max: float) -> Iterator[dict[str, int]]:
    """Another agent posting 500-event batches back to back while the block runs (bounded)."""
    stream = mixed_stream("load-site", 400 * BATCH, seed=99, start=datetime.now(UTC))
    agent = AgentClient(hq, hq.enroll(stream.site, "load-box"))
    bodies = [(gzip_body(b), len(b)) for b in stream.batches()]
    stop = threading.Event()
    done = {"events": 0}

    def run() -> None:
        end = time.monotonic() + seconds_max
        for body, n in bodies:
            if stop.is_set() or time.monotonic() > end:
                return
            try:
                agent.post(body, n)
            except (RuntimeError, httpx.HTTPError) as exc:
                print(f"  background load stopped: {exc}", file=sys.stderr, flush=True)
                return
            done["events"] += n

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield done
    finally:
        stop.set()
        thread.join(timeout=seconds_max)
        agent.close()


def bench_latency(
    hq: Hq, agent: AgentClient, samples: int, site: str, label: str, max_seconds: float = 120.0
) -> Results:
    """RAISE one new fingerprint at a time; time to ack and to the ticket's appearing in the API.

    `agent` is enrolled at `site`. Stops after `samples` samples or `max_seconds`.
    """
    user = _user(hq)
    ack: list[float] = []
    visible: list[float] = []
    first_get_hits = 0
    missing = 0
    load_before = loadavg()
    end = time.monotonic() + max_seconds
    try:
        for i in range(samples):
            if time.monotonic() > end:
                break
            ev = _event(i + 1, "raise", f"lat{i:04d}", "link_down", 2, datetime.now(UTC))
            body = gzip_body([ev])
            fault_key = f"lat{i:04d}:link_down"
            t0 = time.perf_counter()
            ack.append(agent.post(body, 1))
            t_ack = time.perf_counter()
            resp = user.get("/api/v1/tickets", params={"site": site, "limit": 5})
            resp.raise_for_status()
            if any(t["fault_key"] == fault_key for t in resp.json()):
                first_get_hits += 1
            elif not _ticket_visible(user, site, fault_key, t_ack + 10):
                missing += 1
                continue
            visible.append(time.perf_counter() - t0)
    finally:
        agent.close()
        user.close()
    return {
        "label": label,
        "samples": len(ack),
        "ack_p50_ms": round(median(ack) * 1000, 1),
        "ack_p99_ms": round(percentile(ack, 99) * 1000, 1),
        "visible_p50_ms": round(median(visible) * 1000, 1),
        "visible_p99_ms": round(percentile(visible, 99) * 1000, 1),
        "visible_on_first_get": f"{first_get_hits}/{len(ack)}",
        "never_visible": missing,
        "retries_503": agent.retries,
        "load_before": load_before,
        "load_after": loadavg(),
    }


def _count_tickets(db_url: str, site: str) -> tuple[int, int]:
    """(tickets, distinct fault keys) of `site`, read from HQ's database directly."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT t.fault_key) FROM tickets t "
                    "JOIN sites s ON s.id = t.site_id WHERE s.name = :site"
                ),
                {"site": site},
            ).one()
            return int(row[0]), int(row[1])
    finally:
        engine.dispose()


def bench_storm(hq: Hq, stream: Stream, fingerprints: int) -> Results:
    """The alarm storm: post it all, then count tickets (API and database) and active alarms."""
    result = bench_throughput(hq, [stream], "storm")
    with _user(hq) as user:
        resp = user.get("/api/v1/tickets", params={"site": stream.site, "limit": 1000})
        resp.raise_for_status()
        api_tickets = len(resp.json())
        resp = user.get(
            "/api/v1/alarms", params={"site": stream.site, "active": "true", "limit": 1000}
        )
        resp.raise_for_status()
        active = len(resp.json())
    db_tickets, distinct = _count_tickets(hq.db_url, stream.site)
    result |= {
        "fingerprints": fingerprints,
        "tickets_db": db_tickets,
        "tickets_distinct_fingerprints": distinct,
        "tickets_api_limit_1000": api_tickets,
        "active_alarms": active,
        "ok_at_most_one_ticket_per_fingerprint": db_tickets <= fingerprints
        and db_tickets == distinct,
    }
    return result


def hq_process_stats(hq: Hq) -> Results:
    """HQ's RSS and CPU seconds so far."""
    proc = psutil.Process(hq.proc.popen.pid)
    procs = [proc, *proc.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs)
    cpu = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    return {"hq_rss_mib": round(rss / 2**20, 1), "hq_cpu_s": round(cpu, 1)}


def run_hq(backend: str, work: Path, args: argparse.Namespace, out: Results) -> None:
    """All HQ measurements on one database backend."""
    now = datetime.now(UTC) - timedelta(hours=2)

    def measure(db_url: str | None) -> None:
        res: Results = {}
        with hq_server(work / backend, db_url) as hq:
            print(f"[{backend}] HQ up at {hq.url}; load {loadavg()}", flush=True)
            one = [mixed_stream("tp-1", args.events, seed=1, start=now)]
            res["throughput_1"] = bench_throughput(hq, one, "1 agent")
            print(f"[{backend}] {res['throughput_1']}", flush=True)
            per = args.events // 4
            four = [mixed_stream(f"tp4-{i}", per, seed=10 + i, start=now) for i in range(4)]
            res["throughput_4"] = bench_throughput(hq, four, "4 agents in parallel")
            print(f"[{backend}] {res['throughput_4']}", flush=True)
            idle_agent = AgentClient(hq, hq.enroll("lat-idle", "box-lat-idle"))
            res["latency_idle"] = bench_latency(
                hq, idle_agent, args.latency_samples, "lat-idle", "idle"
            )
            print(f"[{backend}] {res['latency_idle']}", flush=True)
            # Enrolled before the load starts: a writer can starve behind back-to-back batches.
            load_agent = AgentClient(hq, hq.enroll("lat-load", "box-lat-load"))
            with background_load(hq, seconds_max=150) as load:
                res["latency_load"] = bench_latency(
                    hq,
                    load_agent,
                    args.latency_samples,
                    "lat-load",
                    "under load (1 agent, 500/batch)",
                    max_seconds=90,
                )
            res["latency_load"]["background_events"] = load["events"]
            print(f"[{backend}] {res['latency_load']}", flush=True)
            storm = storm_stream("storm", args.storm_events, args.storm_fingerprints, now)
            res["storm"] = bench_storm(hq, storm, args.storm_fingerprints)
            print(f"[{backend}] {res['storm']}", flush=True)
            res |= hq_process_stats(hq)
        out[backend] = res

    if backend == "postgresql":
        reason = pg_available()
        if reason is not None:
            print(f"[postgresql] SKIPPED: PostgreSQL not available ({reason})", flush=True)
            out[backend] = {"skipped": reason}
            return
        with pg_schema() as url:
            measure(url)
    else:
        measure(None)


# ---- Alertmanager --------------------------------------------------------------------------

_AM_CONFIG = """\
route:
  receiver: "null"
  group_by: ["..."]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: "null"
"""


def _ts(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_alerts(stream: Stream) -> list[dict[str, Any]]:
    """The stream as Alertmanager alerts: labels = fingerprint; a CLEAR sets endsAt."""
    raised_at: dict[tuple[str, str, str], str] = {}
    alerts = []
    for ev in stream.events:
        key = (ev["device_id"], ev["code"], ev["component"])
        labels = {"alertname": ev["code"], "site": stream.site, "device": ev["device_id"]}
        if ev["component"]:
            labels["component"] = ev["component"]
        at = _ts(ev["observed_at"])
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"title": ev["title"], "grade": str(ev["grade"])},
        }
        if ev["kind"] == "clear":
            alert["startsAt"] = raised_at.pop(key, at)
            alert["endsAt"] = at
        else:
            alert["startsAt"] = raised_at.setdefault(key, at)
        alerts.append(alert)
    return alerts


@contextmanager
def alertmanager(binary: str, work: Path) -> Iterator[str]:
    """Alertmanager on a free loopback port with a temp config and storage; its URL."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "alertmanager.yml"
    config.write_text(_AM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={work / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip: a single instance, nothing listens beyond
        "--log.level=warn",
    ]
    with child("alertmanager", argv, work) as proc:
        wait_until("Alertmanager /-/ready", lambda: http_ok(f"{url}/-/ready"), 60, proc)
        yield url


def am_post(url: str, alerts: list[dict[str, Any]], label: str) -> Results:
    """POST alerts in batches of 500 (JSON; Alertmanager takes no gzip bodies); alerts/s."""
    bodies = [json.dumps(alerts[i : i + BATCH]).encode() for i in range(0, len(alerts), BATCH)]
    latencies: list[float] = []
    load_before = loadavg()
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        t0 = time.perf_counter()
        for body in bodies:
            t1 = time.perf_counter()
            resp = client.post(
                "/api/v2/alerts", content=body, headers={"Content-Type": "application/json"}
            )
            latencies.append(time.perf_counter() - t1)
            if resp.status_code != 200:
                raise RuntimeError(f"Alertmanager answered {resp.status_code}: {resp.text[:300]}")
        wall = time.perf_counter() - t0
    return {
        "label": label,
        "alerts": len(alerts),
        "seconds": round(wall, 2),
        "alerts_per_s": round(len(alerts) / wall),
        "batch_p50_ms": round(median(latencies) * 1000, 1),
        "batch_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "load_before": load_before,
        "load_after": loadavg(),
    }


def am_counts(url: str, site: str) -> Results:
    """Groups and (non-resolved) alerts of a site, through Alertmanager's API."""
    matcher = {"filter": f'site="{site}"'}
    with httpx.Client(base_url=url, timeout=60, trust_env=False) as client:
        groups = client.get("/api/v2/alerts/groups", params=matcher)
        groups.raise_for_status()
        alerts = client.get("/api/v2/alerts", params=matcher)
        alerts.raise_for_status()
    return {"groups": len(groups.json()), "alerts_not_resolved": len(alerts.json())}


def am_latency(url: str, samples: int) -> Results:
    """POST one new alert, then poll GET /api/v2/alerts until it shows."""
    visible: list[float] = []
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        for i in range(samples):
            name = f"lat{i:04d}"
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            alert = [{"labels": {"alertname": "link_down", "device": name}, "startsAt": now}]
            t0 = time.perf_counter()
            client.post("/api/v2/alerts", json=alert).raise_for_status()
            deadline = t0 + 10
            while time.perf_counter() < deadline:
                found = client.get("/api/v2/alerts", params={"filter": f'device="{name}"'})
                found.raise_for_status()
                if found.json():
                    visible.append(time.perf_counter() - t0)
                    break
    return {
        "samples": samples,
        "visible_p50_ms": round(median(visible) * 1000, 1),
        "visible_p99_ms": round(percentile(visible, 99) * 1000, 1),
        "never_visible": samples - len(visible),
    }


def run_alertmanager(work: Path, args: argparse.Namespace, out: Results) -> None:
    """The reference: the same alerts into Alertmanager."""
    binary = which_alertmanager()
    if binary is None:
        msg = (
            "Alertmanager not installed (Debian: apt-get install -y prometheus-alertmanager); "
            "skipping the reference part"
        )
        print(f"[alertmanager] SKIPPED: {msg}", flush=True)
        out["alertmanager"] = {"skipped": msg}
        return
    now = datetime.now(UTC) - timedelta(hours=2)
    res: Results = {"binary": binary}
    with alertmanager(binary, work / "alertmanager") as url:
        print(f"[alertmanager] up at {url}; load {loadavg()}", flush=True)
        one = mixed_stream("tp-1", args.events, seed=1, start=now)
        res["throughput_1"] = am_post(url, to_alerts(one), "1 client")
        res["throughput_1"] |= am_counts(url, "tp-1")
        print(f"[alertmanager] {res['throughput_1']}", flush=True)
        res["latency_idle"] = am_latency(url, args.latency_samples)
        print(f"[alertmanager] {res['latency_idle']}", flush=True)
        storm = storm_stream("storm", args.storm_events, args.storm_fingerprints, now)
        res["storm"] = am_post(url, to_alerts(storm), "storm")
        res["storm"] |= am_counts(url, "storm")
        print(f"[alertmanager] {res['storm']}", flush=True)
    out["alertmanager"] = res


# ---- report --------------------------------------------------------------------------------


def report(out: Results) -> str:
    """The results as Markdown tables."""
    lines = [f"Machine: {out['machine']}", ""]
    lines += [
        "| backend | workload | events | s | events/s | batch p50 ms | batch p99 ms | load |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for backend in ("sqlite", "postgresql"):
        res = out.get(backend, {})
        for key in ("throughput_1", "throughput_4", "storm"):
            r = res.get(key)
            if r:
                lines.append(
                    f"| {backend} | {r['label']} | {r['events']:,} | {r['seconds']} | "
                    f"{r['events_per_s']:,} | {r['batch_p50_ms']} | {r['batch_p99_ms']} | "
                    f"{r['load_before']} |"
                )
    am = out.get("alertmanager", {})
    for key in ("throughput_1", "storm"):
        r = am.get(key)
        if r:
            lines.append(
                f"| Alertmanager | {r['label']} | {r['alerts']:,} | {r['seconds']} | "
                f"{r['alerts_per_s']:,} | {r['batch_p50_ms']} | {r['batch_p99_ms']} | "
                f"{r['load_before']} |"
            )
    lines += [
        "",
        "| backend | latency | ack p50 ms | ack p99 ms | visible p50 ms | visible p99 ms | "
        "on 1st GET | load |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for backend in ("sqlite", "postgresql"):
        res = out.get(backend, {})
        for key in ("latency_idle", "latency_load"):
            r = res.get(key)
            if r:
                lines.append(
                    f"| {backend} | {r['label']} | {r['ack_p50_ms']} | {r['ack_p99_ms']} | "
                    f"{r['visible_p50_ms']} | {r['visible_p99_ms']} | "
                    f"{r['visible_on_first_get']} | {r['load_before']} |"
                )
    r = am.get("latency_idle")
    if r:
        lines.append(
            f"| Alertmanager | idle | - | - | {r['visible_p50_ms']} | {r['visible_p99_ms']} "
            "| - | - |"
        )
    lines += [
        "",
        "| storm | tickets / groups | distinct fingerprints | active alarms / alerts | "
        "at most 1 per fingerprint |",
        "|---|---:|---:|---:|---|",
    ]
    for backend in ("sqlite", "postgresql"):
        r = out.get(backend, {}).get("storm")
        if r:
            ok = "yes" if r["ok_at_most_one_ticket_per_fingerprint"] else "NO"
            lines.append(
                f"| {backend} | {r['tickets_db']} | {r['tickets_distinct_fingerprints']} | "
                f"{r['active_alarms']} | {ok} |"
            )
    r = am.get("storm")
    if r:
        lines.append(
            f"| Alertmanager | {r['groups']} groups | - | {r['alerts_not_resolved']} | - |"
        )
    for backend in ("sqlite", "postgresql"):
        res = out.get(backend, {})
        if "hq_rss_mib" in res:
            lines.append(
                f"\nHQ process on {backend} after the run: RSS {res['hq_rss_mib']} MiB, "
                f"CPU {res['hq_cpu_s']} s"
            )
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 if the storm left more tickets than fingerprints."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.hq_ingest", description=__doc__)
    p.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    p.add_argument("--events", type=int, default=20_000, help="throughput events per run")
    p.add_argument("--latency-samples", type=int, default=100)
    p.add_argument("--storm-events", type=int, default=100_000)
    p.add_argument("--storm-fingerprints", type=int, default=1_000)
    p.add_argument("--no-alertmanager", action="store_true")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so children are stopped, the temp dir
    # and the PostgreSQL schema removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    out: Results = {"machine": machine()}
    print(f"machine: {out['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
        work = Path(tmp)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            if backend not in ("sqlite", "postgresql"):
                p.error(f"unknown backend {backend!r}")
            run_hq(backend, work, args, out)
        if not args.no_alertmanager:
            run_alertmanager(work, args, out)
    out["finished"] = machine()
    print()
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    failed = [
        b
        for b in ("sqlite", "postgresql")
        if out.get(b, {}).get("storm", {}).get("ok_at_most_one_ticket_per_fingerprint") is False
    ]
    sla = out.get("sqlite", {}).get("throughput_1", {}).get("events_per_s")
    if sla is not None:
        verdict = "met" if sla >= TARGET_EVENTS_PER_S else "MISSED"
        print(f"\ntarget >= {TARGET_EVENTS_PER_S:,} events/s on SQLite (1 agent): {verdict}")
    for backend in ("sqlite", "postgresql"):
        lat = out.get(backend, {}).get("latency_idle")
        if lat:
            ok = lat["visible_p99_ms"] < TARGET_P99_S * 1000
            print(
                f"target alarm-to-ticket p99 < 1 s on {backend} (idle): {'met' if ok else 'MISSED'}"
            )
    if failed:
        print(f"FAILED: more than one ticket per fingerprint on {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
