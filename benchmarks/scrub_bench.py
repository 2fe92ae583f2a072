"""Config-backup scrubbing cost (issue 11): the agent's scrubber and HQ's independent check.

In-process, no peers. Each input is scrubbed by the agent's built-in rules (plus the MCU
profile's, the largest set) and checked by HQ's `unscrubbed_lines`, three times; the median is
reported in MB/s. With `--against REV` the scrubber and check of that git revision (read with
`git show`, loaded as separate modules) run on the same inputs, for a before/after comparison.

Inputs: the sample captures of tests/data/configs repeated to about 1 MB ("captures"); the
secret-line table of tests/secret_lines.py repeated to about 1 MB ("secret lines"); single
64 KiB lines built to make a careless regex backtrack (many quotes, dotted words, spaces after a
keyword, `a.password` runs), where the time must grow linearly with the line; and the texts that
were quadratic or worse before the issue 11 review, at 128 KiB and 1 MiB (PEM BEGINs without an
END, public-key begins without an end, a line of blanks, `auth sha <removed>` and
`key="<removed>"` runs, 1 MiB of secret lines): the same MB/s at both sizes is linear. Against a
revision before that review, leave out the 1 MiB ones (`--small`): they take hours there.

    .venv/bin/python -m benchmarks.scrub_bench                    # about 1 minute
    .venv/bin/python -m benchmarks.scrub_bench --against 18961df
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from benchmarks.hq_procs import machine
from collectors.profiles import builtin_profiles
from collectors.scrub import Scrubber
from hq_server.jobs.secret_check import unscrubbed_lines
from tests.secret_lines import SECRET_LINES

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000


def _inputs(small: bool = False) -> dict[str, str]:
    captures = "".join(p.read_text() for p in sorted((REPO / "tests/data/configs").glob("*.cfg")))
    table = "".join(f"{line.raw}\n" for line in SECRET_LINES)
    inputs = {
        "captures (~1 MB)": captures * (MB // len(captures) + 1),
        "secret lines (~1 MB)": table * (MB // len(table) + 1),
    }
    for name, unit in {
        "quotes": '"',
        "dotted words": "a.",
        "spaces after password": " ",
        "a.password runs": "a.password",
    }.items():
        line = unit * (65_536 // len(unit))
        if name == "spaces after password":
            line = "password" + line + "x"
        inputs[f"one 64 KiB line: {name}"] = line + "\n"
    for size in (128 * 1024, 1024 * 1024):
        if small and size > 128 * 1024:
            break
        for name, unit in {
            "PEM BEGINs": "-----BEGIN A-----",
            "public-key begins": "public-key-code begin\n",
            "blanks": " \t",
            "auth sha <removed>": "auth sha <removed> ",
            'key="<removed>"': 'key="<removed>" ',
            "secret lines": "enable secret 5 $1$abcd$Q9oFq1mYwV0n3bZkS7uJd.\n",
        }.items():
            inputs[f"{size // 1024} KiB of {name}"] = unit * (size // len(unit)) + "\n"
    return inputs


def _load(rev: str, path: str, name: str) -> ModuleType:
    """A module as it was at git revision `rev`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, f.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    Path(f.name).unlink()
    return module


def _check_path(rev: str) -> str:
    """Where HQ's secret check is at `rev` (it moved with the package layout)."""
    for path in ("hq_server/jobs/secret_check.py", "hq_server/secret_check.py"):
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{rev}:{path}"], cwd=REPO, capture_output=True
        )
        if found.returncode == 0:
            return path
    return "hq_server/backups.py"


def _mbps(fn: Callable[[str], object], text: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(text)
        times.append(time.perf_counter() - start)
    return len(text.encode()) / MB / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run and print a Markdown table."""
    p = argparse.ArgumentParser(prog="benchmarks.scrub_bench", description=__doc__)
    p.add_argument("--against", help="also measure this git revision's scrubber and HQ check")
    p.add_argument("--small", action="store_true", help="leave out the 1 MiB adversarial texts")
    args = p.parse_args(argv)
    spec = builtin_profiles()["generic_mcu_ssh"].backup
    columns: dict[str, tuple[Callable[[str], object], Callable[[str], object]]] = {
        "now": (Scrubber.for_backup(spec).scrub, unscrubbed_lines)
    }
    if args.against:
        old_scrub = _load(args.against, "collectors/scrub.py", "bench_old_scrub")
        old_hq = _load(args.against, _check_path(args.against), "bench_old_hq_check")
        columns[args.against] = (old_scrub.Scrubber.for_backup(spec).scrub, old_hq.unscrubbed_lines)
    print(f"{machine()}\n")
    head = " | ".join(f"agent MB/s ({c}) | HQ MB/s ({c})" for c in columns)
    print(f"| input | bytes | {head} |")
    print("|---|---:|" + "---:|" * (2 * len(columns)))
    for name, text in _inputs(args.small).items():
        cells = []
        for scrub, check in columns.values():
            cells += [f"{_mbps(scrub, text):.2f}", f"{_mbps(check, text):.2f}"]
        print(f"| {name} | {len(text.encode()):,} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
