"""`python -m hq_server ...` is the same as `stationwatch hq ...`."""

from __future__ import annotations

import sys

from hq_server.cli import run

raise SystemExit(run(sys.argv[1:]))
