"""Set-up shared by the driver benchmarks (driver_cost.py, scaling_timeline.py): their command-line options, and
a new study DB for a run (a SQLite file in a folder, or a database on a throwaway PostgreSQL server)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager


def run_options(description: str) -> argparse.ArgumentParser:
    """A parser with the options of one scaling run: --workers, --trial-seconds, --rounds, --storage."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite")
    return parser


@contextmanager
def new_study_db(storage: str, folder: str) -> Iterator[str]:
    """The URL of a new study DB: for `sqlite` a file in `folder`; for `postgresql` a database on a server
    started now (tests/postgres.py) and stopped when the block ends."""
    if storage == "sqlite":
        yield f"sqlite:///{folder}/study.db"
        return
    from tests.postgres import PostgresServer

    server = PostgresServer()
    try:
        yield server.new_database()
    finally:
        server.stop()
