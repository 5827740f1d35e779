"""Open the study DB: read-write for the commands that write (search, refine), read-only for the rest.

Read-only: SQLite is opened through a `file:...?mode=ro` URI (`autopeft.store.dbfile.readonly_creator`:
also a WAL-mode DB in a read-only folder, and a file that is not a study DB is refused), so the file
cannot be written (nor created when it is missing); PostgreSQL sessions start with
`default_transaction_read_only=on`. Optuna's table creation is skipped; its schema-version check only reads.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from autopeft.store.dbfile import check_for_writing, creating, readonly_creator
from autopeft.store.errors import StudyError
from autopeft.store.urls import URL_EXAMPLES, _engine_kwargs, _is_refused, _scrub, check_url, redact_url, sqlite_path


def readonly_url(url: str) -> tuple[str, dict[str, Any]]:
    """`(url, engine_kwargs)` that open `url` read-only where the backend allows it."""
    check_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StudyError(f"storage {redact_url(url)}: reading needs a SQLite file; pass sqlite:///PATH")
        path = Path(database).expanduser().resolve()
        if not path.is_file():
            raise StudyError(f"storage {redact_url(url)}: no such file {path}; run `autopeft search` first or check --storage")
        return url, {"creator": readonly_creator(url, path)}
    if backend == "postgresql":
        return url, {"connect_args": {"options": "-c default_transaction_read_only=on"}, "pool_pre_ping": True}
    return url, {"pool_pre_ping": True}


def open_readonly(url: str) -> optuna.storages.RDBStorage:
    """Optuna RDB storage on `url`, read-only; one-line `StudyError` when it cannot be opened."""
    ro_url, kwargs = readonly_url(url)
    try:
        return optuna.storages.RDBStorage(ro_url, engine_kwargs=kwargs, skip_table_creation=True)
    except Exception as exc:  # driver errors vary by backend; all mean "cannot use this URL"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot open storage {redact_url(url)} read-only: {reason}; check --storage") from None


def open_db(url: str) -> optuna.storages.RDBStorage:
    """Connect to the study DB at `url` (any SQLAlchemy URL) to read and write it; one-line `StudyError` when
    unreachable, and for a SQLite file that is not a study DB or is read-only (`autopeft.store.dbfile`)."""
    check_url(url)
    path = sqlite_path(url)
    if path is None:
        storage = _create_tables(url)
    else:
        with creating(path):
            check_for_writing(url, path)
            storage = _create_tables(url)
        _use_wal(storage.engine)
    return storage


def _create_tables(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage on `url`, its tables created where missing; retried when another process creates the
    PostgreSQL schema at the same moment (SQLite files are serialised by `creating`)."""
    for attempt in range(3):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
            break
        except ImportError as exc:
            missing = getattr(exc.__cause__, "name", None) or "the database driver"
            raise StudyError(f"cannot open storage {redact_url(url)}: {missing} is not installed; "
                             "pip install 'autopeft[postgres]' for PostgreSQL") from None
        except Exception as exc:  # SQLAlchemy/driver errors vary by backend; all mean "cannot use this URL"
            if attempt < 2 and ("already exists" in str(exc) or "UniqueViolation" in str(exc)):
                time.sleep(0.5)  # another process is creating the schema right now
                continue
            raise cannot_open(url, exc) from None
    return storage


def open_db_for_reading(url: str) -> optuna.storages.RDBStorage:
    """`open_db` for commands that only read: a SQLite file that does not exist is an error, not created,
    and one that does is opened read-only (`autopeft.store.dbfile.readonly_creator`), so nothing can change it."""
    check_url(url)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise StudyError(f"storage {redact_url(url)}: {what} {path}; run `autopeft search` first or check --storage")
    if path is None:
        return open_db(url)
    creator = readonly_creator(url, path)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"creator": creator}, skip_table_creation=True)
    except Exception as exc:  # an Optuna schema this version cannot read, mostly
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot read storage {redact_url(url)}: {_scrub(reason, url)}; check --storage") from None

def _use_wal(engine) -> None:
    """SQLite in WAL mode with normal sync: readers (the dashboard) never block the runner, commits
    cost well under a millisecond instead of an fsync each; a process crash loses no committed trial
    (a power cut may lose the last few)."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it


def cannot_open(url: str, exc: Exception) -> StudyError:
    """The one line for a DB that cannot be reached or used: the driver's first line (password scrubbed) and
    what to check."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    reason = _scrub(reason, url)
    hint = ("is the database server running? check --storage" if _is_refused(reason)
            else f"check --storage (e.g. {URL_EXAMPLES})")
    return StudyError(f"cannot open storage {redact_url(url)}: {reason}; {hint}")
