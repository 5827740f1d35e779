"""Open the study DB read-only.

SQLite is opened through a `file:...?mode=ro` URI (`autopeft.dbfile.readonly_creator`: also a WAL-mode
DB in a read-only folder, and a file that is not a study DB is refused), so the file cannot be written
(nor created when it is missing); PostgreSQL sessions start with `default_transaction_read_only=on`. Optuna's table
creation is skipped; its schema-version check only reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from autopeft.study import StudyError, check_url, redact_url


def readonly_url(url: str) -> tuple[str, dict[str, Any]]:
    """`(url, engine_kwargs)` that open `url` read-only where the backend allows it."""
    check_url(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StudyError(f"storage {redact_url(url)}: the dashboard reads a SQLite file; pass sqlite:///PATH")
        path = Path(database).expanduser().resolve()
        if not path.is_file():
            raise StudyError(f"storage {redact_url(url)}: no such file {path}; run `autopeft search` first or check --storage")
        from autopeft.dbfile import readonly_creator

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
