"""Ticket text search on SQLite: a folded column vs folding every row in a Python function.

Why tickets keep `title_folded` (revision 0007) rather than registering a Python casefold
function on each SQLite connection: both find any case of any script, but the function is
called once per row of every search (a LIKE '%...%' reads every row either way), from C into
Python. This measures the three ways on the same rows in one SQLite file:

- `lower(title) LIKE`: the old search (ASCII only: finds no Greek in another case);
- `py_fold(title) LIKE`: a deterministic Python function registered on the connection;
- `title_folded LIKE`: the column HQ keeps.

    .venv/bin/python -m benchmarks.ticket_search [--rows 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from hq_server.tickets.records import fold

TITLES = [
    "tx{n}: Transmitter off air",
    "tx{n}: Σφάλμα πομπού",
    "tx{n}: {n}号发射机停播",
    "pbx{n}: E1 loss of signal (TRUNK-2)",
    "ups{n}: Lüfter defekt",
]
QUERIES = ["σφάλμα", "发射机", "trunk-2", "lüfter"]


def build(path: Path, rows: int) -> sqlite3.Connection:
    """A table of `rows` titles with their folded copies."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, title TEXT, title_folded TEXT)")
    rng = random.Random(7)
    data = []
    for i in range(rows):
        title = rng.choice(TITLES).format(n=i % 500)
        data.append((i + 1, title, fold(title)))
    db.executemany("INSERT INTO tickets VALUES (?, ?, ?)", data)
    db.commit()
    db.create_function("py_fold", 1, fold, deterministic=True)
    return db


def timed(db: sqlite3.Connection, sql: str, arg: str, repeat: int) -> tuple[float, int]:
    """Median seconds of `repeat` runs, and the count found."""
    times, count = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = db.execute(sql, (f"%{arg}%",)).fetchone()[0]
        times.append(time.perf_counter() - started)
    return statistics.median(times), count


def main() -> None:
    """Build the table, run every query every way, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ways = {
        "lower(title) LIKE (old)": "SELECT count(*) FROM tickets WHERE lower(title) LIKE ?",
        "py_fold(title) LIKE": "SELECT count(*) FROM tickets WHERE py_fold(title) LIKE ?",
        "title_folded LIKE (HQ)": "SELECT count(*) FROM tickets WHERE title_folded LIKE ?",
    }
    with tempfile.TemporaryDirectory() as tmp:
        db = build(Path(tmp) / "search.sqlite3", args.rows)
        try:
            version = sqlite3.sqlite_version
            print(f"{args.rows} tickets, median of {args.repeat} runs, SQLite {version}")
            print()
            print("| query | " + " | ".join(ways) + " |")
            print("|---|" + "---|" * len(ways))
            for q in QUERIES:
                cells = []
                for sql in ways.values():
                    seconds, count = timed(db, sql, fold(q), args.repeat)
                    cells.append(f"{seconds * 1000:.1f} ms ({count} found)")
                print(f"| `{q}` | " + " | ".join(cells) + " |")
        finally:
            db.close()


if __name__ == "__main__":
    main()
