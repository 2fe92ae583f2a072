"""Benchmark: peak RSS and CPU of `stationwatch agent run` polling 50 devices of the simulator.

    .venv/bin/python -m benchmarks.agent_rss [--seconds 35] [--poll 10]

Two sites: 50 SNMP devices (clones of the simulated transmitter and switch), and a mixed one
with 5 of the 50 on SSH (clones of the simulated PBX), so paramiko is loaded too. HQ is absent
on purpose (events stay in the outbox): this measures the agent, not the uplink.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

SW = str(Path(sys.executable).with_name("stationwatch"))


def site(manifest: dict[str, Any], kind: str, poll_s: float, root: Path) -> Path:
    """A 50-device site config (and 0600 credentials) pointing at the simulator."""
    devices: list[dict[str, Any]] = []
    creds: dict[str, dict[str, Any]] = {}
    for i in range(50):
        if kind == "mixed" and i % 10 == 0:
            info = manifest["devices"]["pbx1"]
            dev: dict[str, Any] = {
                "id": f"pbx{i}",
                "profile": info["profile"],
                "ssh": {"host": info["host"], "port": info["port"]},
            }
            creds[dev["id"]] = {"username": info["username"], "password": info["password"]}
        else:
            info = manifest["devices"]["tx1" if i % 2 else "sw1"]
            dev = {
                "id": f"d{i}",
                "profile": info["profile"],
                "snmp": {"host": info["host"], "port": info["port"]},
            }
            creds[dev["id"]] = {"community": info["community"]}
        devices.append(dev)
    d = root / kind
    d.mkdir(parents=True)
    (d / "credentials.yaml").write_text(yaml.safe_dump(creds))
    (d / "credentials.yaml").chmod(0o600)
    config = {
        "site": f"rss-{kind}",
        "hq": {"url": "http://127.0.0.1:9"},
        "state_dir": "state",
        "credentials_file": "credentials.yaml",
        "intervals": {"poll_s": poll_s},
        "backups": {"enabled": False},
        "devices": devices,
    }
    (d / "site.yaml").write_text(yaml.safe_dump(config))
    return d / "site.yaml"


def measure(config: Path, seconds: float) -> tuple[float, float]:
    """Peak RSS (MiB) and CPU seconds of one agent run."""
    proc = subprocess.Popen(
        [SW, "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        p = psutil.Process(proc.pid)
        peak, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, p.memory_info().rss)
            time.sleep(0.5)  # sampling interval of the measurement
        cpu = p.cpu_times()
        return peak / 2**20, cpu.user + cpu.system
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    """Run both sites and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=35.0)
    ap.add_argument("--poll", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sw-rss-") as tmp:
        root = Path(tmp)
        manifest_path = root / "manifest.json"
        sim = subprocess.Popen(
            [
                SW,
                "sim",
                "run",
                "--workdir",
                str(root / "sim"),
                "--manifest",
                str(manifest_path),
                "--ephemeral-ports",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not manifest_path.exists():
                if time.monotonic() > deadline or sim.poll() is not None:
                    raise SystemExit("the simulator did not start")
                time.sleep(0.2)
            manifest = json.loads(manifest_path.read_text())
            print("| site (50 devices) | peak RSS | CPU s | window s | poll s | load 1 min |")
            print("|---|---:|---:|---:|---:|---:|")
            for kind in ("snmp", "mixed"):
                rss, cpu = measure(site(manifest, kind, args.poll, root), args.seconds)
                print(
                    f"| {kind} | {rss:.1f} MiB | {cpu:.1f} | {args.seconds:.0f} | "
                    f"{args.poll:g} | {os.getloadavg()[0]:.1f} |"
                )
        finally:
            sim.terminate()
            sim.wait(30)


if __name__ == "__main__":
    main()
