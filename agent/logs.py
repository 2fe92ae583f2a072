"""Logging set-up: plain lines for journald (it adds the time), or JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime


class SiteFilter(logging.Filter):
    """Stamps every record with the site, so each line says which station it is about."""

    def __init__(self, site: str) -> None:
        super().__init__()
        self.site = site

    def filter(self, record: logging.LogRecord) -> bool:
        """Add `site` (and an empty `device` when the message has none) to the record."""
        record.site = self.site
        if not hasattr(record, "device"):
            record.device = ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record as JSON."""
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "site": getattr(record, "site", ""),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "device", ""):
            out["device"] = str(getattr(record, "device", ""))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: int = logging.INFO, site: str = "") -> None:
    """Configure the root logger once for a command-line entry point."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SiteFilter(site))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries(level)


# Loggers of the libraries the agent and the simulator use: a connection, a login or a
# request each log a line at INFO (paramiko's "Connected", "Auth granted" on every poll).
LIBRARY_LOGGERS = ("paramiko", "pysnmp", "asyncio", "httpx", "httpcore")
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def quiet_libraries(level: int) -> None:
    """Keep library loggers at WARNING, unless the process logs at DEBUG: then they log
    everything too (the chatter is what one debugs with)."""
    library_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
