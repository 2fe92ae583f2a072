"""Command output into a closed pipe (`stationwatch hq token list | head -1`): stop quietly."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

# What a shell reports for a command killed by SIGPIPE (128 + 13), as `yes | head -1` does.
EXIT_BROKEN_PIPE = 141


def quiet_on_broken_pipe(command: Callable[[], int]) -> int:
    """Run a command; if its reader goes away, stop without a traceback (exit 141)."""
    try:
        code = command()
        # Flushed here, not at interpreter exit, where a closed pipe can no longer be caught.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Point stdout and stderr at /dev/null so that Python's own flush at exit does not
        # complain about the closed pipe again.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            for stream in (sys.stdout, sys.stderr):
                os.dup2(devnull, stream.fileno())
        return EXIT_BROKEN_PIPE
