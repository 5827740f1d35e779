"""A new study DB for a benchmark run: a SQLite file in a folder, or a database on a throwaway PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


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
