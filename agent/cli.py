"""`stationwatch agent ...`: run the daemon, check a config, enroll, poll once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import LoadedConfig, load_config
from agent.errors import AgentError, ConfigError
from agent.logs import LEVELS, setup_logging
from agent.uplink import Uplink

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stationwatch agent", description="The station agent.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        choices=list(LEVELS),
        default="info",
        help="log level on stderr (default info; libraries log at warning unless debug)",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", parents=[common], help="run the agent daemon")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument(
        "--enroll-token",
        default=os.environ.get("STATIONWATCH_ENROLL_TOKEN"),
        help="one-time token; used only when the agent has no token yet",
    )
    run.add_argument("--log-format", choices=["text", "json"])
    chk = sub.add_parser("check-config", help="validate a site config and its credentials")
    chk.add_argument("config", type=Path)
    enr = sub.add_parser(
        "enroll", parents=[common], help="exchange a one-time enrollment token with HQ"
    )
    enr.add_argument("--config", type=Path, required=True)
    enr.add_argument("--token", required=True)
    st = sub.add_parser(
        "status",
        parents=[common],
        help="outbox depth, set-aside events, last upload and device states",
    )
    st.add_argument("--config", type=Path, required=True)
    poll = sub.add_parser(
        "poll", parents=[common], help="poll one device once and print its readings"
    )
    poll.add_argument("--config", type=Path, required=True)
    poll.add_argument("device")
    return p


def _load(path: Path) -> LoadedConfig:
    return load_config(path)


def check_config(path: Path) -> int:
    """Print every problem of a config; exit 0 only when there is none."""
    try:
        loaded = _load(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s); the agent would not start", file=sys.stderr)
        return 1
    for line in loaded.problems:
        print(line, file=sys.stderr)
    if loaded.problems:
        print(
            f"{path}: {len(loaded.problems)} problem(s); {len(loaded.bad_devices)} device(s) "
            "would be disabled",
            file=sys.stderr,
        )
        return 1
    print(
        f"{path}: OK, {len(loaded.devices)} device(s): "
        + ", ".join(f"{d.id} ({d.profile.name})" for d in loaded.devices)
    )
    return 0


async def _enroll(loaded: LoadedConfig, token: str) -> str:
    from agent.state import write_token

    cfg = loaded.agent
    uplink = Uplink(cfg.hq.url, None, ca_file=cfg.hq.ca_file, timeout_s=cfg.hq.timeout_s)
    try:
        resp = await uplink.enroll(token, socket.gethostname())
    finally:
        await uplink.aclose()
    write_token(cfg.state_dir, resp.agent_token)
    logger.info("site=%s enrolled as agent %d of site %r", cfg.site, resp.agent_id, resp.site_name)
    return resp.agent_token


async def _run(loaded: LoadedConfig, enroll_token: str | None) -> int:
    # Imported here so check-config stays fast and free of protocol libraries.
    from agent.runner import AgentRuntime
    from agent.state import read_token

    token = read_token(loaded.agent.state_dir)
    if token is None and enroll_token:
        token = await _enroll(loaded, enroll_token)
    if token is None:
        logger.warning(
            "site=%s not enrolled: events are kept in the outbox until "
            "`stationwatch agent enroll` is run",
            loaded.agent.site,
        )
    runtime = AgentRuntime(loaded, token)
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    await runtime.run(stop, reload)
    return 0


def status(loaded: LoadedConfig) -> int:
    """Print the outbox depth, set-aside events, last upload and per-device state from the
    agent's state dir."""
    import json
    import sqlite3
    import time

    from agent.state import DEVICE_STATES_KEY, LAST_UPLOAD_KEY, StateDir

    cfg = loaded.agent
    state = StateDir(cfg.state_dir)
    db_path = state.outbox
    enrolled = state.token.exists()
    print(f"site {cfg.site}   HQ {cfg.hq.url}   enrolled: {'yes' if enrolled else 'no'}")
    if not db_path.exists():
        print(f"no outbox at {db_path}: the agent has not run yet")
        return 0
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT k, v FROM meta").fetchall())
        depth = db.execute("SELECT count(*) FROM events").fetchone()[0]
        by_grade = db.execute("SELECT grade, count(*) FROM events GROUP BY grade").fetchall()
        active = db.execute("SELECT count(*) FROM active_faults").fetchone()[0]
        try:
            aside = db.execute(
                "SELECT event_id, reason FROM set_aside ORDER BY set_aside_at DESC, seq DESC "
                "LIMIT 3"
            ).fetchall()
        except sqlite3.OperationalError:  # an outbox of an agent version without the table
            aside = []
    finally:
        db.close()
    last = meta.get(LAST_UPLOAD_KEY)
    ago = f"{time.time() - float(last):.0f} s ago" if last else "never"
    grades = ", ".join(f"grade {g}: {n}" for g, n in by_grade) or "empty"
    print(
        f"outbox: {depth} event(s) waiting ({grades}); {meta.get('dropped', '0')} dropped; "
        f"last upload {ago}; last seq {meta.get('last_seq', '0')}; {active} fault(s) active"
    )
    set_aside = int(meta.get("set_aside", "0"))
    print(f"set aside: {set_aside} event(s) HQ refused for good (kept in the outbox, not resent)")
    for event_id, reason in aside:
        print(f"  {event_id}: {reason}")
    states = json.loads(meta.get(DEVICE_STATES_KEY, "{}"))
    profiles = {d.id: d.profile.name for d in loaded.devices}
    print(f"{'DEVICE':<16} {'STATE':<12} PROFILE")
    for dev_id in sorted(set(states) | set(profiles)):
        state = states.get(dev_id, "unknown")
        print(f"{dev_id:<16} {state:<12} {profiles.get(dev_id, '(not in config)')}")
    return 0


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """Print rows under a header, columns padded to their widest cell."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)).rstrip())


async def _poll(loaded: LoadedConfig, device_id: str) -> int:
    """Identify (as the daemon does) and poll one device; print its profile, readings, faults.

    Exit 0 when the readings came back, 1 when the device could not be identified or polled or
    gave none of its profile's key readings (profile mismatch), 2 for an unknown device.
    """
    import time

    from agent.config import AUTO_PROFILE, with_profile
    from agent.devices import grader_for
    from agent.state import StateDir
    from checks.profile_rules import builtin_profiles
    from checks.tracker import FaultTracker
    from collectors.base import ReadingSet
    from collectors.build import make_collector
    from collectors.errors import CollectorError
    from collectors.identify import identify_target
    from collectors.snmp import SnmpEngineHolder
    from collectors.targets import SnmpTarget
    from protocol.faults import PROFILE_MISMATCH
    from protocol.wire import EventKind

    devices = {d.id: d for d in loaded.devices}
    if device_id not in devices:
        print(
            f"no usable device {device_id!r} in {loaded.path}; devices: "
            f"{', '.join(devices) or 'none'}",
            file=sys.stderr,
        )
        return 2
    d = devices[device_id]
    engine = SnmpEngineHolder()
    try:
        if d.profile is AUTO_PROFILE:
            assert isinstance(d.target, SnmpTarget)  # config allows "auto" for SNMP only
            profiles = builtin_profiles()
            found = await identify_target(d.id, d.target, engine, profiles)
            if found.profile is None:
                print(f"{device_id}: not identified: {found.failure()}", file=sys.stderr)
                return 1
            try:
                d = with_profile(d, profiles[found.profile.name])
            except ValueError as exc:
                print(f"{device_id}: identified as {found.profile.name}: {exc}", file=sys.stderr)
                return 1
            how = "detected"
        else:
            how = "configured"
        p = d.profile
        print(f"profile: {p.name} ({how}) - {p.vendor} {p.model}")
        collector = make_collector(
            d.id,
            p,
            d.target,
            snmp_engine=engine,
            known_hosts=StateDir(loaded.agent.state_dir).known_hosts,
        )
        try:
            readings = await collector.collect()
        finally:
            await collector.close()
    except CollectorError as exc:
        print(f"{device_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    header = ("METRIC", "COMPONENT", "VALUE", "UNIT")
    _table([(r.metric, r.component, str(r.value), r.unit) for r in readings], header)
    # Grade the readings as the daemon would, with a fault memory of this poll only.
    changes = grader_for(d).on_readings(ReadingSet(readings), FaultTracker(), time.time())
    raised = [c for c in changes if c.kind is EventKind.RAISE]
    if raised:
        print()
        rows = [(c.code, c.component, str(int(c.grade)), c.detail) for c in raised]
        _table(rows, ("FAULT", "COMPONENT", "GRADE", "DETAIL"))
    mismatch = next((c for c in raised if c.code == PROFILE_MISMATCH), None)
    if mismatch is not None:
        print(f"{device_id}: profile mismatch (grade 4): {mismatch.detail}", file=sys.stderr)
        return 1
    return 0


def run(argv: list[str]) -> int:
    """Entry point for `stationwatch agent`."""
    args = _parser().parse_args(argv)
    if args.cmd == "check-config":
        return check_config(args.config)
    try:
        loaded = _load(args.config)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 1
    setup_logging(
        getattr(args, "log_format", None) or loaded.agent.log_format,
        level=LEVELS[args.log_level],
        site=loaded.agent.site,
    )
    if loaded.agent.hq.insecure:
        logger.warning(
            "site=%s talks plain HTTP to HQ at %s (hq.allow_insecure_http): the agent token "
            "and every event cross the network unencrypted",
            loaded.agent.site,
            loaded.agent.hq.url,
        )
    try:
        if args.cmd == "run":
            return asyncio.run(_run(loaded, args.enroll_token))
        if args.cmd == "enroll":
            asyncio.run(_enroll(loaded, args.token))
            print(f"enrolled; token saved in {loaded.agent.state_dir}")
            return 0
        if args.cmd == "status":
            return status(loaded)
        if args.cmd == "poll":
            return asyncio.run(_poll(loaded, args.device))
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2
