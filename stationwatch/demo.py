"""`stationwatch demo`: HQ on 127.0.0.1:8080 (SQLite), the simulated station and an enrolled agent.

Everything runs as real child processes, the way they run in production, with state under one
data folder so a second run picks up where the first stopped (same tickets, same agent).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

SIM_DEVICES = {
    "tx1": "FM transmitter 1 (SNMP)",
    "sw1": "Station switch (SNMP)",
    "pbx1": "PBX maintenance CLI (SSH)",
    "tx2": "Standby transmitter maintenance port (serial)",
}


def _cmd() -> list[str]:
    exe = Path(sys.executable).with_name("stationwatch")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "stationwatch"]


def _capture(args: list[str]) -> str:
    out = subprocess.run([*_cmd(), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def _wait_for(
    what: str, probe: Callable[[], bool], deadline_s: float, procs: list[subprocess.Popen[bytes]]
) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"demo: {p.args!r} exited with {p.returncode}")
        if probe():
            return
        time.sleep(0.2)  # polling a child's readiness, not synchronising on a guess
    raise SystemExit(f"demo: {what} did not come up within {deadline_s:.0f} s")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def write_agent_config(
    manifest: dict[str, Any], agent_dir: Path, hq_url: str, poll_s: float = 5.0
) -> Path:
    """Write the demo agent's site config and its 0600 credentials file from a sim manifest."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    devices: list[dict[str, object]] = []
    creds: dict[str, dict[str, str]] = {}
    for dev_id, info in manifest["devices"].items():
        dev: dict[str, object] = {
            "id": dev_id,
            "name": SIM_DEVICES.get(dev_id, dev_id),
            "profile": info["profile"],
        }
        if info["protocol"] == "snmp":
            dev["snmp"] = {
                "host": info["host"],
                "port": info["port"],
                "version": "2c",
                "timeout_s": 1.0,
                "retries": 1,
            }
            creds[dev_id] = {"community": info["community"]}
        elif info["protocol"] == "ssh":
            dev["ssh"] = {"host": info["host"], "port": info["port"], "timeout_s": 5.0}
            creds[dev_id] = {"username": info["username"], "password": info["password"]}
        else:
            dev["serial"] = {"port": info["port"], "baudrate": 9600, "timeout_s": 1.0}
        devices.append(dev)
    config = {
        "site": "demo-station",
        "hq": {"url": hq_url},
        "state_dir": "state",
        "credentials_file": "credentials.yaml",
        "intervals": {"poll_s": poll_s, "upload_s": 1, "heartbeat_s": 15},
        "devices": devices,
    }
    creds_path = agent_dir / "credentials.yaml"
    fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        yaml.safe_dump(creds, f, sort_keys=False)
    os.chmod(creds_path, 0o600)
    path = agent_dir / "site.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run(argv: list[str]) -> int:
    """Entry point for `stationwatch demo`."""
    p = argparse.ArgumentParser(prog="stationwatch demo", description=__doc__)
    p.add_argument("--data-dir", type=Path, default=Path("var"))
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level of HQ, the simulator and the agent (libraries: warning unless debug)",
    )
    args = p.parse_args(argv)
    log = ["--log-level", args.log_level]
    data = args.data_dir.resolve()
    hq_dir, sim_dir, agent_dir = data / "hq", data / "sim", data / "agent"
    hq_url = f"http://127.0.0.1:{args.port}"
    sw = _cmd()
    hq_opts = ["--data-dir", str(hq_dir)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _capture(["hq", "db", "upgrade", *hq_opts])
        token_file = data / "admin.token"
        if not token_file.exists():
            token_file.write_text(
                _capture(
                    [
                        *["hq", "token", "create", "--role", "admin", "--name", "demo-admin"],
                        *["--days", "365", *hq_opts],
                    ]
                )
                + "\n"
            )
            token_file.chmod(0o600)
        admin = token_file.read_text().strip()
        # The console's login: user "admin" with a password made here, kept beside the token.
        password_file = data / "admin.password"
        if not password_file.exists():
            password = secrets.token_urlsafe(12)
            subprocess.run(
                [*_cmd(), "hq", "user", "add", "admin", "--role", "admin", *hq_opts],
                input=password + "\n",
                check=True,
                capture_output=True,
                text=True,
            )
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        enroll: str | None = None
        if not (agent_dir / "state" / "agent.token").exists():
            new_site = ["Demo FM station", "--customer", "Demo Broadcasting Co.", *hq_opts]
            added = subprocess.run(
                [*_cmd(), "hq", "site", "add", *new_site], capture_output=True, text=True
            )
            if added.returncode == 0:
                enroll = added.stdout.strip()
            else:  # the agent's state was removed: its new box replaces the enrolled one
                enroll = _capture(["hq", "site", "reenroll", "Demo FM station", *hq_opts])

        procs.append(
            subprocess.Popen([*sw, "hq", "serve", "--port", str(args.port), *hq_opts, *log])
        )
        _wait_for("HQ", lambda: _http_ok(f"{hq_url}/healthz"), 60, procs)
        manifest_path = sim_dir / "manifest.json"
        manifest_path.unlink(missing_ok=True)
        procs.append(
            subprocess.Popen(
                [
                    *sw,
                    "sim",
                    "run",
                    "--workdir",
                    str(sim_dir),
                    "--manifest",
                    str(manifest_path),
                    *log,
                ]
            )
        )
        _wait_for("simulated station", manifest_path.exists, 60, procs)
        manifest = json.loads(manifest_path.read_text())
        site = write_agent_config(manifest, agent_dir, hq_url)
        agent_cmd = [*sw, "agent", "run", "--config", str(site), *log]
        env = dict(os.environ)
        if enroll:
            env["STATIONWATCH_ENROLL_TOKEN"] = enroll
        procs.append(subprocess.Popen(agent_cmd, env=env))

        q = shlex.quote
        curl = f"curl -s -H 'Authorization: Bearer {admin}'"
        print(
            f"""
StationWatch demo is running (Ctrl-C stops it; state is kept in {data}).

  console:      {hq_url}/   log in as admin, password {password}
  HQ API:       {hq_url}/api/v1   (API docs: {hq_url}/docs)
  admin token:  {admin}

Inject a fault on the simulated transmitter and watch the grade-1 ticket open (the console's
overview shows it without a reload):
  {q(sw[0])} sim set tx1 off_air
  {curl} {hq_url}/api/v1/tickets | python3 -m json.tool
  {curl} '{hq_url}/api/v1/alarms?active=true' | python3 -m json.tool
Put it back on air (the alarm clears; the ticket stays open for an engineer):
  {q(sw[0])} sim reset tx1
Other faults: sim set sw1 port_down | sim set sw1 fan_alarm | sim set pbx1 trunk_down |
              sim set tx2 fan_alarm | sim set tx1 hang   (see: {q(sw[0])} sim status)
""",
            flush=True,
        )
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes pause() when a child dies
        while not stop["now"]:
            for proc in procs:
                if proc.poll() is not None:
                    print(f"demo: {proc.args!r} exited with {proc.returncode}", file=sys.stderr)
                    return 1
            signal.pause()
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"demo: {' '.join(map(str, exc.cmd))} failed:\n{exc.stderr}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
