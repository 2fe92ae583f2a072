"""Real child processes for end-to-end tests: started, waited for, logged, always stopped."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Procs:
    """Children of one test; their output goes to files shown when the test fails."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a child with stdout+stderr to <log_dir>/<name>.log."""
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or self.env)
        self.children[name] = proc
        return proc

    def stop(self, name: str, timeout: float = 15) -> int:
        """SIGTERM a child and wait for it; SIGKILL if it does not stop."""
        proc = self.children.pop(name)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every child still running."""
        for name in list(self.children)[::-1]:
            self.stop(name)

    def logs(self) -> str:
        """All children's output, for a failure report."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"----- {path.name} (last 4000 chars) -----\n{text[-4000:]}")
        return "\n".join(parts)

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll `probe` until it returns something truthy; fail if a child dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    died = f"{name} exited with {proc.returncode} while waiting for {what}"
                    raise AssertionError(f"{died}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.1)
