"""Agent benchmark (issue 4): outbox throughput, and the agent's RSS and CPU with 50 devices.

1. Outbox (agent/outbox.py, SQLite WAL, synchronous=FULL) on the local disk: events/s written
   with `record` in batches of 1 and of 50 realistic FaultChanges (each call one fsync'd
   transaction, the active-fault set updated with it), then read with `pending(500)` and deleted
   with `ack` until empty (events/s acknowledged, no network).
2. The agent as a real process: HQ (SQLite) and the simulated station (`stationwatch sim run
   --ephemeral-ports`) are started, and an agent config with 50 devices is generated from the
   simulator's manifest (the bundled station has 4 devices, so several device ids share one
   simulated endpoint: SNMP transmitter and switch clones, SSH PBX clones, and the one serial
   port). The agent runs with poll_s 30 ("idle") and then poll_s 1 ("busy"); after a warm-up its
   RSS (with any children) is sampled every second and its CPU seconds are counted over a window.

    .venv/bin/python -m benchmarks.outbox_bench                 # about 4 minutes
    .venv/bin/python -m benchmarks.outbox_bench --window 30 --skip-agent
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from agent.outbox import Outbox
from benchmarks.hq_procs import (
    Hq,
    child,
    hq_server,
    loadavg,
    machine,
    median,
    stationwatch_cmd,
    wait_until,
)
from checks.tracker import ActiveFault, FaultChange
from protocol.grades import Grade
from protocol.wire import EventKind
from stationwatch.demo import write_agent_config

TARGET_RSS_MIB = 75.0  # issue 4: agent RSS with 50 devices
TARGET_IDLE_RSS_MB = 60.0  # docs/architecture.md: idle RSS <= 60 MB (decimal megabytes)
MiB = 2**20

Results = dict[str, Any]


# ---- outbox --------------------------------------------------------------------------------


class FaultSource:
    """Realistic fault changes over 50 devices: raises, grade updates and clears."""

    CODES = ("power_drop", "vswr_high", "fan_fault", "temp_high", "port_down", "psu_lost")

    def __init__(self) -> None:
        self.active: dict[str, ActiveFault] = {}
        self._n = 0

    def changes(self, count: int) -> list[FaultChange]:
        """The next `count` changes, applied to `active` as the tracker would."""
        out = []
        for _ in range(count):
            self._n += 1
            n = self._n
            device = f"dev{n % 50:02d}"
            code = self.CODES[n % len(self.CODES)]
            component = f"Gi0/{n % 24}" if code == "port_down" else ""
            change = FaultChange(
                kind=EventKind.RAISE,
                device_id=device,
                code=code,
                component=component,
                grade=Grade(1 + n % 5),
                title=f"{code} on {device}",
                detail="forward power 612 W below the 750 W threshold for 3 polls",
                observed_at=time.time(),
                values={"forward_power_w": 612.0, "reflected_power_w": 14.5, "vswr": 1.32},
            )
            key = change.key
            if key in self.active:
                kind = EventKind.CLEAR if n % 3 else EventKind.UPDATE
                change = FaultChange(
                    kind, device, code, component, change.grade, change.title,
                    change.detail, change.observed_at, change.values,
                )  # fmt: skip
            if change.kind is EventKind.CLEAR:
                self.active.pop(key, None)
            else:
                self.active[key] = ActiveFault(
                    device, code, component, change.grade, change.title, change.observed_at
                )
            out.append(change)
        return out


def bench_outbox(work: Path, batch: int, events: int) -> Results:
    """record() `events` events in batches of `batch`, then pending()+ack() them all."""
    path = work / f"outbox-{batch}.sqlite3"
    classes = {f"dev{i:02d}": "transmitter" for i in range(50)}
    outbox = Outbox(path, classes, max_events=10 * events)
    source = FaultSource()
    try:
        mode = outbox._db.execute("PRAGMA synchronous").fetchone()[0]
        calls = [source.changes(batch) for _ in range(events // batch)]
        load_before = loadavg()
        per_call: list[float] = []
        t0 = time.perf_counter()
        for changes in calls:
            t1 = time.perf_counter()
            outbox.record(changes, source.active)
            per_call.append(time.perf_counter() - t1)
        write_s = time.perf_counter() - t0
        written = outbox.depth()
        t0 = time.perf_counter()
        acked = 0
        for _ in range(events):  # bounded: each round acks up to 500
            pending = outbox.pending(500)
            if not pending:
                break
            acked += outbox.ack(e.event_id for e in pending)
        ack_s = time.perf_counter() - t0
        left = outbox.depth()
    finally:
        outbox.close()
    return {
        "batch": batch,
        "events": written,
        "synchronous": {2: "FULL", 3: "EXTRA"}.get(mode, str(mode)),
        "write_s": round(write_s, 2),
        "written_per_s": round(written / write_s),
        "record_p50_ms": round(median(per_call) * 1000, 2),
        "acked": acked,
        "ack_s": round(ack_s, 2),
        "acked_per_s": round(acked / ack_s) if ack_s else None,
        "left": left,
        "load_before": load_before,
        "load_after": loadavg(),
    }


# ---- agent process -------------------------------------------------------------------------


def fifty_devices(manifest: dict[str, Any], count: int = 50) -> dict[str, Any]:
    """A manifest with `count` devices: clones of the simulator's SNMP and SSH devices."""
    devices: dict[str, Any] = manifest["devices"]
    snmp = [d for d, info in devices.items() if info["protocol"] == "snmp"]
    ssh = [d for d, info in devices.items() if info["protocol"] == "ssh"]
    serial = [d for d, info in devices.items() if info["protocol"] not in ("snmp", "ssh")]
    out: dict[str, Any] = {d: devices[d] for d in serial[:1]}  # a serial port has one reader
    ssh_clones = min(5, count // 10) if ssh else 0
    for i in range(ssh_clones):
        out[f"{ssh[i % len(ssh)]}-{i:02d}"] = devices[ssh[i % len(ssh)]]
    i = 0
    while len(out) < count:
        base = snmp[i % len(snmp)]
        out[f"{base}-{i:02d}"] = devices[base]
        i += 1
    return {**manifest, "devices": out}


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [proc]


def _rss_cpu(proc: psutil.Process) -> tuple[int, float]:
    rss, cpu = 0, 0.0
    for p in _tree(proc):
        try:
            rss += p.memory_info().rss
            t = p.cpu_times()
            cpu += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return rss, cpu


def _device_states(hq: Hq, site: str) -> dict[str, int]:
    """How many devices the site's agent last reported per state (its heartbeat, in HQ's DB)."""
    path = hq.db_url.removeprefix("sqlite:///")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        counts: dict[str, int] = {}
        rows = db.execute(
            "SELECT a.device_states FROM agents a JOIN sites s ON s.id = a.site_id "
            "WHERE s.name = ?",
            (site,),
        )
        for (states,) in rows:
            for state in json.loads(states or "{}").values():
                counts[state] = counts.get(state, 0) + 1
        return counts
    finally:
        db.close()


def measure_agent(
    hq: Hq, manifest: dict[str, Any], work: Path, poll_s: float, warmup: float, window: float
) -> Results:
    """Run the agent with 50 devices at `poll_s`; RSS and CPU over `window` after `warmup`."""
    agent_dir = work / f"agent-poll{poll_s:g}"
    site = write_agent_config(fifty_devices(manifest), agent_dir, hq.url, poll_s=poll_s)
    site_name = f"bench-agent-{poll_s:g}"
    token = hq.site_enrollment_token(site_name)
    argv = [*stationwatch_cmd(), "agent", "run", "--config", str(site), "--enroll-token", token]
    with child(f"agent-poll{poll_s:g}", argv, work) as proc:
        ps = psutil.Process(proc.popen.pid)
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"agent exited with {proc.popen.returncode}: {proc.tail()}")
            time.sleep(0.5)
        load_before = loadavg()
        rss0, cpu0 = _rss_cpu(ps)
        samples = [rss0]
        t0 = time.monotonic()
        while time.monotonic() - t0 < window:
            time.sleep(1.0)
            if proc.popen.poll() is not None:
                raise RuntimeError(f"agent exited with {proc.popen.returncode}: {proc.tail()}")
            samples.append(_rss_cpu(ps)[0])
        rss1, cpu1 = _rss_cpu(ps)
        elapsed = time.monotonic() - t0
        log = proc.log_path.read_text(errors="replace").splitlines()
        log_errors = sum(1 for line in log if " ERROR " in line)
        states = _device_states(hq, site_name)
    return {
        "poll_s": poll_s,
        "devices": len(fifty_devices(manifest)["devices"]),
        "device_states": states,
        "window_s": round(elapsed),
        "rss_start_mib": round(rss0 / MiB, 1),
        "rss_max_mib": round(max(samples) / MiB, 1),
        "rss_mean_mib": round(sum(samples) / len(samples) / MiB, 1),
        "rss_end_mib": round(rss1 / MiB, 1),
        "rss_max_mb": round(max(samples) / 1e6, 1),
        "cpu_s": round(cpu1 - cpu0, 2),
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "log_error_lines": log_errors,
        "load_before": load_before,
        "load_after": loadavg(),
    }


@contextmanager
def simulator(work: Path) -> Iterator[dict[str, Any]]:
    """The simulated station on ephemeral loopback ports; its manifest."""
    sim_dir = work / "sim"
    manifest = sim_dir / "manifest.json"
    argv = [*stationwatch_cmd(), "sim", "run", "--workdir", str(sim_dir)]
    argv += ["--manifest", str(manifest), "--ephemeral-ports"]
    sim_dir.mkdir(parents=True, exist_ok=True)
    with child("sim", argv, work) as proc:
        wait_until("simulator manifest", manifest.exists, 60, proc)
        time.sleep(0.5)  # the manifest is written once all endpoints listen; let it be complete
        yield dict(json.loads(manifest.read_text()))


# ---- report --------------------------------------------------------------------------------


def report(out: Results) -> str:
    """The results as Markdown tables."""
    lines = [f"Machine: {out['machine']}", ""]
    if out.get("outbox"):
        lines += [
            "| record() batch | sync | events | written/s | record p50 ms | acked/s | load |",
            "|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in out["outbox"]:
            lines.append(
                f"| {r['batch']} | {r['synchronous']} | {r['events']:,} | "
                f"{r['written_per_s']:,} | {r['record_p50_ms']} | {r['acked_per_s']:,} | "
                f"{r['load_before']} |"
            )
    if out.get("agent"):
        lines += [
            "",
            "| agent, 50 devices | window s | RSS max MiB | RSS mean MiB | CPU s | CPU % of 1 core "
            "| device states | load |",
            "|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for r in out["agent"]:
            mode = "idle (poll_s 30)" if r["poll_s"] >= 30 else f"busy (poll_s {r['poll_s']:g})"
            lines.append(
                f"| {mode} | {r['window_s']} | {r['rss_max_mib']} | {r['rss_mean_mib']} | "
                f"{r['cpu_s']} | {r['cpu_pct_of_one_core']} | {r['device_states']} | "
                f"{r['load_before']} |"
            )
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables (and verdicts against the targets)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.outbox_bench", description=__doc__)
    p.add_argument("--single", type=int, default=2_000, help="events recorded one per call")
    p.add_argument("--batched", type=int, default=20_000, help="events recorded 50 per call")
    p.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    p.add_argument("--window", type=float, default=60.0, help="seconds measured per mode")
    p.add_argument("--poll", default="30,5,1", help="agent poll_s values, comma-separated")
    p.add_argument("--skip-agent", action="store_true")
    p.add_argument("--skip-outbox", action="store_true")
    p.add_argument("--dir", type=Path, help="work directory (default: a temp dir on /tmp)")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so children are stopped, the temp dir
    # and the PostgreSQL schema removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    out: Results = {"machine": machine(), "outbox": [], "agent": []}
    print(f"machine: {out['machine']}", flush=True)
    base = args.dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sw-agent-bench-", dir=base) as tmp:
        work = Path(tmp)
        if not args.skip_outbox:
            for batch, events in ((1, args.single), (50, args.batched)):
                res = bench_outbox(work, batch, events)
                print(f"[outbox] {res}", flush=True)
                out["outbox"].append(res)
        if not args.skip_agent:
            with hq_server(work / "hq-run") as hq, simulator(work) as manifest:
                for poll_s in [float(v) for v in args.poll.split(",") if v.strip()]:
                    res = measure_agent(hq, manifest, work, poll_s, args.warmup, args.window)
                    print(f"[agent] {res}", flush=True)
                    out["agent"].append(res)
    out["finished"] = machine()
    print()
    print(report(out))
    for r in out["agent"]:
        ok = r["rss_max_mib"] < TARGET_RSS_MIB
        print(
            f"target agent RSS < {TARGET_RSS_MIB:g} MiB with 50 devices (poll_s {r['poll_s']:g}): "
            f"{'met' if ok else 'MISSED'} ({r['rss_max_mib']} MiB)"
        )
        if r["poll_s"] >= 30:
            ok = r["rss_max_mb"] <= TARGET_IDLE_RSS_MB
            print(
                f"target idle RSS <= {TARGET_IDLE_RSS_MB:g} MB: {'met' if ok else 'MISSED'} "
                f"({r['rss_max_mb']} MB)"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
