"""`stationwatch sim ...`: run the simulated station, and drive it through its control API.

run [--config FILE] [--workdir DIR] [--manifest FILE] [--ephemeral-ports]
set DEVICE CONDITION [--value V]      clear DEVICE CONDITION
reset [DEVICE]                        status [--json]
trap DEVICE (PRESET | --oid OID [--varbind OID TYPE VALUE]...) [--target H:P] [--inform]
storm DEVICE (PRESET | --oid OID) --count N --rate PER_S [--target H:P]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from simulators.errors import SimulatorError, StationConfigError

logger = logging.getLogger(__name__)

DEFAULT_CONTROL_URL = "http://127.0.0.1:18081"
DEFAULT_WORKDIR = Path("var/sim")


class CliError(Exception):
    """A failure to report on stderr (one line, no traceback)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stationwatch sim",
        description="Simulated station with real SNMP/SSH/serial endpoints.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="start the station and run until SIGINT/SIGTERM")
    p.add_argument(
        "--config",
        help="station file, or a bundled station name: demo (default) or full",
    )
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="default: ./var/sim")
    p.add_argument("--manifest", type=Path, help="default: <workdir>/manifest.json")
    p.add_argument("--ephemeral-ports", action="store_true", help="pick free ports (see manifest)")
    p.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log level on stderr (default info; libraries log at warning unless debug)",
    )
    p.set_defaults(func=_cmd_run)

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--control-url", default=DEFAULT_CONTROL_URL, help=DEFAULT_CONTROL_URL)
        q.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
        return q

    p = client("set", "activate a fault condition on a device")
    p.add_argument("device")
    p.add_argument("condition")
    p.add_argument("--value", help="condition parameter (e.g. the port for port_down)")
    p.set_defaults(func=_cmd_set)

    p = client("clear", "deactivate a fault condition on a device")
    p.add_argument("device")
    p.add_argument("condition")
    p.set_defaults(func=_cmd_clear)

    p = client("reset", "clear every condition of a device (or of all devices)")
    p.add_argument("device", nargs="?")
    p.set_defaults(func=_cmd_reset)

    p = client("status", "show devices, endpoints and active conditions")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(func=_cmd_status)

    def trap_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("device")
        q.add_argument("preset", nargs="?", help="a trap preset of the device (e.g. linkDown)")
        q.add_argument("--oid", help="snmpTrapOID instead of a preset")
        q.add_argument(
            "--varbind",
            nargs=3,
            action="append",
            metavar=("OID", "TYPE", "VALUE"),
            help="extra varbind (TYPE: net-snmp letter i s x o a c u t C, or a tag number)",
        )
        q.add_argument("--target", help="receiver 127.0.0.1:PORT (default: the station's)")
        q.add_argument("--community", help="trap community (default: the station's)")

    p = client("trap", "make an SNMP device send a v2c trap or inform")
    trap_args(p)
    p.add_argument("--inform", action="store_true", help="send an inform, retried until acked")
    p.set_defaults(func=_cmd_trap)

    p = client("storm", "make an SNMP device send many traps at a rate")
    trap_args(p)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, required=True, help="traps per second")
    p.set_defaults(func=_cmd_storm)
    return parser


def run(argv: list[str]) -> int:
    """Entry point of `stationwatch sim ARGS...`; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.func(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


# --- run --------------------------------------------------------------------------------------


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a manifest


def _cmd_run(args: argparse.Namespace) -> int:
    # Imported here: the client commands must start fast, without pysnmp and paramiko.
    from agent.logs import LEVELS, quiet_libraries
    from simulators.station import SimulatedStation, load_station_config

    level = LEVELS[args.log_level]
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    # paramiko's server logs "Connected" and "Auth granted" for every poll of every SSH device.
    quiet_libraries(level)
    try:
        config = load_station_config(args.config)
    except StationConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    workdir: Path = args.workdir
    manifest_path: Path = args.manifest or workdir / "manifest.json"
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        station = SimulatedStation(config, workdir, ephemeral_ports=args.ephemeral_ports)
        station.start()
    except SimulatorError as exc:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, StationConfigError) else 1
    try:
        manifest = station.manifest
        _write_json(manifest_path, manifest)
        for device_id, ep in manifest["devices"].items():
            where = ep["port"] if ep["protocol"] == "serial" else f"{ep['host']}:{ep['port']}"
            logger.info("%s: %s %s (profile %s)", device_id, ep["protocol"], where, ep["profile"])
        logger.info("control API %s; manifest %s", manifest["control_url"], manifest_path)
        while not stop.wait(0.5):
            pass
    finally:
        station.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if manifest_path.exists():
            manifest_path.unlink()
    logger.info("station stopped")
    return 0


# --- control API clients ----------------------------------------------------------------------


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    url = args.control_url.rstrip("/") + path
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--control-url must be an http(s) URL, not {args.control_url!r}")
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
    request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with opener.open(request, timeout=args.timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        raise CliError(f"{message} (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(
            f"cannot reach the simulator control API at {args.control_url}: {reason}"
        ) from None
    except ValueError as exc:
        raise CliError(f"the control API at {args.control_url} sent bad JSON: {exc}") from None


def _summary(device: dict[str, Any]) -> str:
    active = device.get("active_conditions") or {}
    shown = [f"{k}={v}" if v else k for k, v in active.items()]
    return f"{device['id']}: {', '.join(shown) if shown else 'normal'}"


def _cmd_set(args: argparse.Namespace) -> int:
    body = {"condition": args.condition, "value": args.value}
    device = _call(args, "POST", f"/devices/{quote(args.device, safe='')}/conditions", body)
    print(_summary(device))
    return 0


def _cmd_clear(args: argparse.Namespace) -> int:
    path = f"/devices/{quote(args.device, safe='')}/conditions/{quote(args.condition, safe='')}"
    print(_summary(_call(args, "DELETE", path)))
    return 0


def _cmd_reset(args: argparse.Namespace) -> int:
    if args.device:
        print(_summary(_call(args, "POST", f"/devices/{quote(args.device, safe='')}/reset")))
    else:
        for device in _call(args, "POST", "/reset")["devices"]:
            print(_summary(device))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    payload = _call(args, "GET", "/devices")
    if args.json:
        print(json.dumps(payload, indent=2))
        return 0
    rows = [("DEVICE", "PROTOCOL", "PROFILE", "ENDPOINT", "CONDITIONS")]
    for d in payload["devices"]:
        active = d.get("active_conditions") or {}
        conditions = ", ".join(f"{k}={v}" if v else k for k, v in active.items()) or "normal"
        rows.append((d["id"], d["protocol"], d["profile"], d["endpoint"], conditions))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[4])
    return 0


def _trap_body(args: argparse.Namespace) -> dict[str, Any]:
    if not args.preset and not args.oid:
        raise CliError("give a trap preset or --oid")
    body: dict[str, Any] = {"preset": args.preset, "trap_oid": args.oid}
    if args.varbind:
        numeric = {"i", "c", "u", "t", "C", "2", "65", "66", "67", "70"}
        body["varbinds"] = [
            [oid, kind, int(value) if kind in numeric and value.lstrip("-").isdigit() else value]
            for oid, kind, value in args.varbind
        ]
    for key in ("target", "community"):
        if getattr(args, key):
            body[key] = getattr(args, key)
    return {k: v for k, v in body.items() if v is not None}


def _cmd_trap(args: argparse.Namespace) -> int:
    body = _trap_body(args) | {"inform": bool(args.inform)}
    args.timeout = max(args.timeout, 30.0)  # an inform may be retried for a while
    result = _call(args, "POST", f"/devices/{quote(args.device, safe='')}/traps", body)
    if result.get("inform"):
        state = "acknowledged" if result.get("acked") else "NOT acknowledged"
        print(f"{args.device}: inform to {result['target']} {state} after {result['sent']} send(s)")
        return 0 if result.get("acked") else 1
    print(f"{args.device}: trap sent to {result['target']}")
    return 0


def _cmd_storm(args: argparse.Namespace) -> int:
    body = _trap_body(args) | {"count": args.count, "rate": args.rate}
    args.timeout = max(args.timeout, args.count / max(args.rate, 0.001) * 2 + 30)
    result = _call(args, "POST", f"/devices/{quote(args.device, safe='')}/trap_storm", body)
    print(
        f"{args.device}: {result['sent']} traps to {result['target']} in {result['seconds']} s "
        f"({result['rate']}/s)"
    )
    return 0


def main() -> None:
    """`python -m simulators ...`."""
    sys.exit(run(sys.argv[1:]))
