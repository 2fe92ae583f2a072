"""Benchmark: the agent's SNMP poller against net-snmp `snmpd` on loopback, side by side with
net-snmp's `snmpget` and (when installed) Prometheus `snmp_exporter`.

    .venv/bin/python benchmarks/snmp_poller.py [--devices 1,50,500] [--oids 20] [--seconds 5]

net-snmp `snmpd` serves 20 numeric OIDs (`override` directives) on as many UDP ports of
127.0.0.1 as there are devices (a device = a distinct target; one snmpd per 100 ports). For
each device count, each contender polls every device for all 20 OIDs, round after round
(all devices at once), for at least --seconds:

- stationwatch: collectors.snmp.SnmpCollector (one GET of 20 OIDs per device, all devices
  concurrently on one event loop, one SnmpEngineHolder), in a child process that first imports
  agent.runner so its memory holds everything the agent process holds;
- net-snmp: one `snmpget` process per device with the same 20 OIDs, --pool at a time;
- snmp_exporter: one HTTP scrape per device (module with the same 20 OIDs), --scrape-pool
  at a time; skipped with a message when `prometheus-snmp-exporter` is not installed.

At the largest count stationwatch also runs with at most --max-inflight requests in pysnmp
at once (an asyncio.Semaphore around collect(); the agent has no such bound today). Then a
paced run, as the agent polls: the largest device count polled once by stationwatch,
start times spread evenly over --paced-window seconds (500 over 30 s = 1,000 devices/min).

Reported: varbinds/s (wall clock), CPU seconds per 1,000 varbinds (of the poller only: its
process, the snmpget children, the exporter process; snmpd is not counted), peak RSS (MiB),
and what 1,000 devices x 20 OIDs per minute would cost in CPU seconds per minute.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENTERPRISE = "1.3.6.1.4.1.55555.1"  # private test subtree served via snmpd `override`
COMMUNITY = "public"
EXPORTER = "prometheus-snmp-exporter"
MAX_DEVICES = 2000


def bench_oids(count: int) -> list[str]:
    """The numeric OIDs every device serves (integers 1..count)."""
    return [f"{ENTERPRISE}.{i}.0" for i in range(1, count + 1)]


@dataclass
class Result:
    """One contender at one device count."""

    tool: str
    devices: int
    rounds: int
    varbinds: int
    errors: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    note: str = ""

    @property
    def varbinds_per_s(self) -> float:
        """Throughput over the measured window."""
        return self.varbinds / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds per 1,000 varbinds."""
        return self.cpu_s / (self.varbinds / 1000) if self.varbinds else float("nan")

    @property
    def cpu_s_per_min_1000_devices(self) -> float:
        """CPU seconds one minute of 1,000 devices x 20 OIDs would take at this cost."""
        return self.cpu_per_1000 * 20.0


# --- peers ------------------------------------------------------------------------------------


def free_ports(count: int, kind: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (all held open while choosing)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, kind)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def snmp_get_ok(port: int, oid: str, env: dict[str, str]) -> bool:
    """Whether snmpd answers on that port."""
    result = subprocess.run(
        [
            "snmpget",
            "-v2c",
            "-c",
            COMMUNITY,
            "-On",
            "-t",
            "0.3",
            "-r",
            "0",
            f"127.0.0.1:{port}",
            oid,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=10,
    )
    return result.returncode == 0


PORTS_PER_SNMPD = 100  # snmpd listens on at most ~128 addresses and config lines are bounded


class Snmpd:
    """net-snmp snmpd processes serving the benchmark OIDs on many loopback UDP ports."""

    def __init__(self, workdir: Path, ports: list[int], oids: list[str]) -> None:
        binary = shutil.which("snmpd") or shutil.which("snmpd", path="/usr/sbin")
        if binary is None:
            raise SystemExit("snmpd not found: apt-get install snmpd")
        self.ports = ports
        self.env = {**os.environ, "SNMPCONFPATH": str(workdir)}
        (workdir / "snmp.conf").write_text("mibs :\n")
        self.procs: list[subprocess.Popen[bytes]] = []
        chunks = [ports[i : i + PORTS_PER_SNMPD] for i in range(0, len(ports), PORTS_PER_SNMPD)]
        try:
            for n, chunk in enumerate(chunks):
                self._start(binary, workdir / f"snmpd{n}", chunk, oids)
            for n, chunk in enumerate(chunks):
                self._ready(workdir / f"snmpd{n}", chunk, oids[0], self.procs[n])
        except BaseException:
            self.stop()
            raise

    def _start(self, binary: str, workdir: Path, ports: list[int], oids: list[str]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "snmpd.conf"
        lines = [
            "[snmp] mibs :",
            f"rocommunity {COMMUNITY} 127.0.0.1",
            "dontLogTCPWrappersConnects yes",
            "agentaddress " + ",".join(f"udp:127.0.0.1:{p}" for p in ports),
        ]
        lines += [f"override .{oid} integer {n}" for n, oid in enumerate(oids, start=1)]
        conf.write_text("\n".join(lines) + "\n")
        env = {**self.env, "SNMP_PERSISTENT_DIR": str(workdir / "persist")}
        self.procs.append(
            subprocess.Popen(
                [binary, "-f", "-Lf", str(workdir / "snmpd.log"), "-C", "-c", str(conf)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )

    def _ready(
        self, workdir: Path, ports: list[int], oid: str, proc: subprocess.Popen[bytes]
    ) -> None:
        deadline = time.monotonic() + 20
        while not all(snmp_get_ok(p, oid, self.env) for p in (ports[0], ports[-1])):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (workdir / "snmpd.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"snmpd did not start: {log}")
            time.sleep(0.1)  # readiness polling

    def stop(self) -> None:
        """Terminate every snmpd."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Exporter:
    """prometheus-snmp-exporter with a generated module for the benchmark OIDs."""

    def __init__(self, workdir: Path, oids: list[str]) -> None:
        binary = shutil.which(EXPORTER)
        assert binary is not None
        (self.port,) = free_ports(1, socket.SOCK_STREAM)
        metrics = [
            {
                "name": f"bench_m{n}",
                "oid": oid.removesuffix(".0"),
                "type": "gauge",
                "help": f"benchmark value {n}",
            }
            for n, oid in enumerate(oids, start=1)
        ]
        module = {
            "get": oids,
            "metrics": metrics,
            "version": 2,
            "retries": 1,
            "timeout": "2s",
            "auth": {"community": COMMUNITY},
        }
        config = workdir / "snmp.yml"
        config.write_text(json.dumps({"bench": module}, indent=1))  # JSON is valid YAML
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "exporter.log").open("wb"),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "exporter.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"snmp_exporter did not start: {log}") from None
                time.sleep(0.1)  # readiness polling

    def cpu_s(self) -> float:
        """User+system CPU seconds of the exporter process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def peak_rss_mib(self) -> float:
        """VmHWM (peak resident set) of the exporter process."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        """Terminate the exporter."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- contenders -------------------------------------------------------------------------------


def _maxrss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


async def _stationwatch(
    ports: list[int], oids: list[str], seconds: float, window: float = 0.0, inflight: int = 0
) -> Result:
    import agent.runner  # noqa: F401 - the agent process's import footprint, for an honest RSS
    from collectors.profiles import SnmpSource
    from collectors.snmp import SnmpCollector, SnmpEngineHolder
    from collectors.targets import SnmpTarget

    source = SnmpSource.model_validate(
        {"scalars": [{"metric": f"m{n}", "oid": oid} for n, oid in enumerate(oids, start=1)]}
    )
    holder = SnmpEngineHolder()
    await holder.warm_up()
    collectors = [
        SnmpCollector(
            f"d{i}",
            SnmpTarget.model_validate(
                {"host": "127.0.0.1", "port": port, "community": COMMUNITY, "timeout_s": 2}
            ),
            source,
            holder,
        )
        for i, port in enumerate(ports)
    ]

    gate = asyncio.Semaphore(inflight or len(collectors))

    async def one(c: Any) -> Any:
        async with gate:  # --inflight: at most that many requests in pysnmp at once
            return await c.collect()

    async def one_round() -> tuple[int, int]:
        results = await asyncio.gather(*(one(c) for c in collectors), return_exceptions=True)
        good = [r for r in results if isinstance(r, list)]
        return sum(len(r) for r in good), len(results) - len(good)

    if window > 0:
        await collectors[0].collect()  # warm-up of the engine only; the rest as in real life
        return await _paced(collectors, window, holder)
    await one_round()  # warm-up: transports created, first-request costs paid
    rounds = varbinds = errors = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    while True:
        got, failed = await one_round()
        rounds, varbinds, errors = rounds + 1, varbinds + got, errors + failed
        if time.perf_counter() - t0 >= seconds and rounds >= 2:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    holder.close()
    return Result(
        f"stationwatch, at most {inflight} in flight" if inflight else "stationwatch (pysnmp)",
        len(ports),
        rounds,
        varbinds,
        errors,
        wall,
        cpu,
        _maxrss_mib(resource.RUSAGE_SELF),
    )


async def _paced(collectors: list[Any], window: float, holder: Any) -> Result:
    """Each device polled once, start times spread evenly over the window (as an agent would)."""
    loop = asyncio.get_running_loop()
    slot = window / len(collectors)
    late: list[float] = []

    async def at(due: float, collector: Any) -> int:
        await asyncio.sleep(max(0.0, due - loop.time()))
        late.append(loop.time() - due)
        return len(await collector.collect())

    cpu0, t0 = time.process_time(), time.perf_counter()
    start = loop.time() + 0.05
    results = await asyncio.gather(
        *(at(start + i * slot, c) for i, c in enumerate(collectors)), return_exceptions=True
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    holder.close()
    good = [r for r in results if isinstance(r, int)]
    late.sort()
    p99 = late[max(0, int(len(late) * 0.99) - 1)] if late else 0.0
    per_min = len(collectors) / window * 60
    return Result(
        f"stationwatch paced, {per_min:,.0f} dev/min",
        len(collectors),
        1,
        sum(good),
        len(results) - len(good),
        wall,
        cpu,
        _maxrss_mib(resource.RUSAGE_SELF),
        f"{len(collectors)} polls spread over {window:g} s; start lateness p99 {p99 * 1000:.0f} ms",
    )


def _netsnmp(ports: list[int], oids: list[str], seconds: float, pool: int) -> Result:
    binary = shutil.which("snmpget") or "snmpget"
    conf = tempfile.mkdtemp(prefix="bench-snmpconf-")
    Path(conf, "snmp.conf").write_text("mibs :\n")
    env = {**os.environ, "SNMPCONFPATH": conf}

    def one(port: int) -> int:
        argv = [binary, "-v2c", "-c", COMMUNITY, "-On", "-t", "2", "-r", "1"]
        result = subprocess.run(
            [*argv, f"127.0.0.1:{port}", *oids],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
        return sum(" = " in line for line in result.stdout.splitlines())

    rounds = varbinds = errors = 0
    with ThreadPoolExecutor(max_workers=pool) as executor:
        list(executor.map(one, ports[: min(len(ports), pool)]))  # warm the page cache
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        while True:
            counts = list(executor.map(one, ports))
            rounds += 1
            varbinds += sum(counts)
            errors += sum(c < len(oids) for c in counts)
            if time.perf_counter() - t0 >= seconds and rounds >= 2:
                break
        wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    shutil.rmtree(conf, ignore_errors=True)
    return Result(
        f"net-snmp snmpget (pool {pool})",
        len(ports),
        rounds,
        varbinds,
        errors,
        wall,
        cpu,
        _maxrss_mib(resource.RUSAGE_CHILDREN),
        "RSS: largest single snmpget process",
    )


def _exporter(
    exporter: Exporter, ports: list[int], n_oids: int, seconds: float, pool: int
) -> Result:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def one(port: int) -> int:
        url = f"http://127.0.0.1:{exporter.port}/snmp?module=bench&target=127.0.0.1:{port}"
        try:
            with opener.open(url, timeout=30) as response:
                text = response.read().decode()
        except OSError:
            return 0
        return sum(line.startswith("bench_m") for line in text.splitlines())

    rounds = varbinds = errors = 0
    with ThreadPoolExecutor(max_workers=pool) as executor:
        list(executor.map(one, ports[: min(len(ports), pool)]))  # warm-up
        cpu0, t0 = exporter.cpu_s(), time.perf_counter()
        while True:
            counts = list(executor.map(one, ports))
            rounds += 1
            varbinds += sum(counts)
            errors += sum(c < n_oids for c in counts)
            if time.perf_counter() - t0 >= seconds and rounds >= 2:
                break
        wall, cpu = time.perf_counter() - t0, exporter.cpu_s() - cpu0
    return Result(
        f"snmp_exporter (scrape pool {pool})",
        len(ports),
        rounds,
        varbinds,
        errors,
        wall,
        cpu,
        exporter.peak_rss_mib(),
        "CPU and RSS of the exporter process (HTTP client not counted)",
    )


# --- driver -----------------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> None:
    """Child process: measure one contender, print its Result as JSON."""
    ports = json.loads(Path(args.ports_file).read_text())
    oids = bench_oids(args.oids)
    if args.worker == "stationwatch":
        result = asyncio.run(_stationwatch(ports, oids, args.seconds, args.window, args.inflight))
    else:
        result = _netsnmp(ports, oids, args.seconds, args.pool)
    print(json.dumps(asdict(result)))


def child(
    mode: str,
    ports: list[int],
    args: argparse.Namespace,
    workdir: Path,
    window: float = 0.0,
    inflight: int = 0,
) -> Result:
    """Run one measurement in a fresh process (clean RSS and CPU accounting)."""
    ports_file = workdir / f"ports-{mode}-{len(ports)}.json"
    ports_file.write_text(json.dumps(ports))
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", mode]
    argv += ["--ports-file", str(ports_file), "--oids", str(args.oids)]
    argv += ["--seconds", str(args.seconds), "--pool", str(args.pool)]
    argv += ["--window", str(window), "--inflight", str(inflight)]
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    return Result(**json.loads(done.stdout.strip().splitlines()[-1]))


def table(results: list[Result]) -> str:
    """The results as a Markdown table."""
    rows = [
        "| devices | poller | rounds | varbinds/s | CPU s / 1,000 varbinds "
        "| CPU s per min for 1,000 dev x 20 OIDs | peak RSS MiB | errors |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.devices} | {r.tool} | {r.rounds} | {r.varbinds_per_s:,.0f} "
            f"| {r.cpu_per_1000:.3f} | {r.cpu_s_per_min_1000_devices:.1f} "
            f"| {r.peak_rss_mib:.1f} | {r.errors} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; run as the driver or as a measuring child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1,50,500", help="comma list (default 1,50,500)")
    parser.add_argument("--oids", type=int, default=20, help="OIDs per device (default 20)")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum measured time each")
    parser.add_argument("--pool", type=int, default=8, help="concurrent snmpget processes")
    parser.add_argument("--scrape-pool", type=int, default=50, help="concurrent exporter scrapes")
    parser.add_argument("--skip", default="", help="comma list of: netsnmp, exporter, paced")
    parser.add_argument(
        "--paced-window",
        type=float,
        default=30.0,
        help="paced run: the largest device count polled once, spread over this many seconds "
        "(default 30: 500 devices = 1,000 devices/min)",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=32,
        help="also run stationwatch with at most this many requests in flight at the largest "
        "device count (0: don't)",
    )
    parser.add_argument("--window", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--inflight", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--worker", choices=["stationwatch", "netsnmp"], help=argparse.SUPPRESS)
    parser.add_argument("--ports-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    counts = [int(n) for n in args.devices.split(",") if n.strip()]
    if not counts or not all(1 <= n <= MAX_DEVICES for n in counts):
        parser.error(f"--devices: numbers between 1 and {MAX_DEVICES}")
    if not 1 <= args.oids <= 40:
        parser.error("--oids: 1..40 (one GET PDU)")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    oids = bench_oids(args.oids)
    print(
        f"# SNMP poller benchmark {started:%Y-%m-%d %H:%M} UTC on {platform.node()}: "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
        f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}",
        flush=True,
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="snmp-bench-") as tmp:
        workdir = Path(tmp)
        ports = free_ports(max(counts), socket.SOCK_DGRAM)
        snmpd = Snmpd(workdir, ports, oids)
        exporter: Exporter | None = None
        try:
            if "exporter" not in skip:
                if shutil.which(EXPORTER):
                    exporter = Exporter(workdir, oids)
                else:
                    print(
                        f"SKIPPED snmp_exporter: `{EXPORTER}` is not installed "
                        "(apt-get install prometheus-snmp-exporter)",
                        flush=True,
                    )
            for n in counts:
                targets = ports[:n]
                batch = [child("stationwatch", targets, args, workdir)]
                if n == max(counts) and n > args.max_inflight > 0:
                    batch.append(
                        child("stationwatch", targets, args, workdir, inflight=args.max_inflight)
                    )
                if "netsnmp" not in skip:
                    batch.append(child("netsnmp", targets, args, workdir))
                if exporter is not None:
                    batch.append(
                        _exporter(exporter, targets, args.oids, args.seconds, args.scrape_pool)
                    )
                for r in batch:
                    print(
                        f"{n:>4} devices  {r.tool:<34} {r.varbinds_per_s:>9,.0f} varbinds/s  "
                        f"{r.cpu_per_1000:.3f} CPU s/1000  {r.peak_rss_mib:6.1f} MiB  "
                        f"errors {r.errors}",
                        flush=True,
                    )
                results.extend(batch)
            if "paced" not in skip:
                r = child("stationwatch", ports, args, workdir, window=args.paced_window)
                print(f"paced: {r.tool}: errors {r.errors}, {r.note}", flush=True)
                results.append(r)
        finally:
            if exporter is not None:
                exporter.stop()
            snmpd.stop()
    load_after = os.getloadavg()
    print()
    print(table(results))
    for r in results:
        if r.note:
            print(f"- {r.tool} ({r.devices} devices): {r.note}")
    print(
        f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
        f"snmpd {shutil.which('snmpd') or '/usr/sbin/snmpd'}; OIDs per device {args.oids}"
    )
    if args.json:
        payload: dict[str, Any] = {
            "started": started.isoformat(),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "results": [
                asdict(r)
                | {
                    "varbinds_per_s": r.varbinds_per_s,
                    "cpu_s_per_1000_varbinds": r.cpu_per_1000,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
