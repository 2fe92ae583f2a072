"""Dispatch `stationwatch <area> ...` to the area's own CLI, importing only what it needs.

The agent area must work on a station box that has no HQ dependencies installed, so areas are
imported lazily.
"""

from __future__ import annotations

import sys

from stationwatch.pipes import quiet_on_broken_pipe

USAGE = """usage: stationwatch <command> [args]

commands:
  agent run|check-config|enroll|poll   the station agent
  hq serve|db|token|site|agent|...     the HQ server (needs the 'hq' extra)
  sim run|set|clear|reset|status       the simulated station
  demo                                 HQ + simulated station + agent, on SQLite
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = sys.argv[1:] if argv is None else argv
    return quiet_on_broken_pipe(lambda: _dispatch(args))


def _dispatch(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    area, rest = args[0], args[1:]
    if area == "agent":
        from agent.cli import run as agent_run

        return int(agent_run(rest))
    if area in ("hq", "demo"):
        try:
            if area == "hq":
                from hq_server.cli import run as hq_run

                return int(hq_run(rest))
            from stationwatch.demo import run as demo_run

            return int(demo_run(rest))
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in (
                "fastapi",
                "uvicorn",
                "sqlalchemy",
                "alembic",
            ):
                print(
                    f"stationwatch {area} needs the HQ dependencies: "
                    "pip install 'stationwatch[hq]'",
                    file=sys.stderr,
                )
                return 2
            raise
    if area == "sim":
        from simulators.cli import run as sim_run

        return int(sim_run(rest))
    print(f"stationwatch: unknown command {area!r}\n\n{USAGE}", file=sys.stderr)
    return 2
