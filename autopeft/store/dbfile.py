"""SQLite study DB files: checked before Optuna opens them, and read without writing a byte.

Given a file that is not its database, Optuna either fails with "An exception is raised during the
commit" or adds its tables to someone else's SQLite file. So a file is looked at first (its header,
then its table names through a read-only connection): random bytes, an empty file and a SQLite
database without Optuna's tables are refused in one line and left as they were. Commands that
write (search, refine) also need the file and its folder to be writable (SQLite puts its journal
beside the file). Commands that read (studies, pareto, export, the dashboard) open the file with
``mode=ro``; a WAL-mode DB in a read-only folder, which ``mode=ro`` cannot open (no ``-shm`` file
can be made there), is read with ``immutable=1`` when it has no write-ahead log to replay — no
process can be writing it, since a writer needs that folder too.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

from autopeft.store.errors import StudyError

SQLITE_HEADER = b"SQLite format 3\x00"
OPTUNA_TABLES = ("studies", "trials", "version_info")
NOT_A_STUDY_DB = "not an autopeft/Optuna study database"
READERS = "`autopeft studies`, `pareto`, `export` and `dashboard` only read it"


@contextmanager
def creating(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder of `path` (a SQLite study DB) while it is checked and Optuna
    creates or upgrades its tables: two searches started at once on a new file otherwise race, one seeing
    half-made tables ("not a study database") or failing on Optuna's `alembic_version` row. The lock is
    `flock` on the folder itself (no lock file is left behind); SQLite's own locks are separate."""
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        yield  # no such folder, or not readable: check_for_writing or SQLite says so in one line
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_for_writing(url: str, path: Path) -> None:
    """`StudyError` (one line) unless `path` can become or is a study DB that a search may write.
    Call it inside `creating(path)`, so that no other search is creating the file meanwhile."""
    folder = path.parent
    if path.is_dir():
        raise StudyError(f"storage {url}: {path} is a folder, not a file; pass --storage sqlite:///PATH/NAME.db")
    if path.exists():
        problem = _problem(path, writing=True)
        if problem is not None:
            raise StudyError(_refusal(url, path, problem, writing=True))
        if not os.access(path, os.W_OK):
            raise StudyError(f"storage {url}: {path} is read-only and a search writes to it; make it writable "
                             f"(chmod u+w {path.name}), or pass another --storage ({READERS})")
    if not os.access(folder, os.W_OK):
        raise StudyError(f"storage {url}: folder {folder} is read-only and a search writes the study DB and its "
                         f"journal there; pass --storage sqlite:///PATH in a writable folder ({READERS})")


def readonly_creator(url: str, path: Path) -> Callable[[], sqlite3.Connection]:
    """A SQLAlchemy `creator` of read-only connections to the study DB at `path`; `StudyError` (one line)
    when it is not one or cannot be read. Nothing is written to the file."""
    uri = _readonly_uri(url, path)
    problem = _problem(path, writing=False, uri=uri)
    if problem is not None:
        raise StudyError(_refusal(url, path, problem))
    return lambda: sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)


def _refusal(url: str, path: Path, problem: str, writing: bool = False) -> str:
    fix = "or a new file name to start a study there" if writing else "check --storage"
    return f"storage {url}: {path} is {NOT_A_STUDY_DB} ({problem}); pass the file `autopeft search` wrote, {fix}"


def _problem(path: Path, *, writing: bool, uri: str | None = None) -> str | None:
    """Why the file at `path` is not a study DB, or None. A SQLite DB with no tables at all is one a search
    may start (nothing in it to lose), not one to read."""
    with path.open("rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if not head:
        return "an empty file"
    if head != SQLITE_HEADER:
        return "not a SQLite file"
    # A search opens read-write: that connection also replays the write-ahead log a killed process left
    # (a read-only one can find such a DB "malformed"); reading the table list writes nothing to the file.
    mode = "mode=rw" if writing else "mode=ro"
    try:
        with closing(sqlite3.connect(uri or _file_uri(path, mode), uri=True, timeout=30)) as conn:
            tables = sorted(name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    except sqlite3.DatabaseError as exc:
        if writing and ("unable to open" in str(exc) or "readonly" in str(exc)):
            return None  # a read-only file or folder: check_for_writing says so
        return f"SQLite cannot read it: {exc}"
    if not tables:
        return None if writing else "a SQLite database with no tables"
    if not set(OPTUNA_TABLES) <= set(tables):
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        return f"a SQLite database without Optuna's tables; it holds {shown}"
    return None


def _readonly_uri(url: str, path: Path) -> str:
    """``file:PATH?mode=ro``, or ``?immutable=1`` for a WAL-mode DB in a read-only folder with no log to replay."""
    ro = _file_uri(path, "mode=ro")
    try:
        with closing(sqlite3.connect(ro, uri=True, timeout=30)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return ro
    except sqlite3.DatabaseError as exc:
        if "unable to open" not in str(exc) or os.access(path.parent, os.W_OK):
            return ro  # not a folder problem: `_problem` names it
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StudyError(f"storage {url}: {path} is in a read-only folder with a write-ahead log ({wal.name}) that "
                         "SQLite cannot replay there; copy the DB with its -wal and -shm files to a writable folder")
    return _file_uri(path, "immutable=1")


def _file_uri(path: Path, query: str) -> str:
    return f"file:{quote(str(path))}?{query}"

