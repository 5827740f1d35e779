"""Study DB URLs: checked before anything is opened, and shown with their password hidden.

Every message, log line, stored spec and API response shows a URL through `redact_url`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from autopeft.store.errors import StudyError

URL_EXAMPLES = "sqlite:///autopeft.db, or postgresql+psycopg://USER:PASS@HOST/DB"


def sqlite_path(url: str):
    """The file of a `sqlite:///PATH` URL (a `Path`), None for other backends and in-memory SQLite."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def check_url(url: str) -> None:
    """One-line `StudyError` for a URL SQLAlchemy cannot parse or a SQLite file whose folder does not exist."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if "://" not in url or (url.startswith("sqlite:") and not url.startswith("sqlite:///") and url != "sqlite://"):
        file = url.removeprefix("sqlite:").lstrip("/")
        raise StudyError(f"storage {redact_url(url)!r}: not a database URL; for a SQLite file write sqlite:///{file} "
                         f"(three slashes), or e.g. {URL_EXAMPLES}")
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except NoSuchModuleError:
        raise StudyError(f"storage {redact_url(url)}: unknown database kind {url.split(':', 1)[0]!r}; expected e.g. "
                         f"{URL_EXAMPLES}") from None
    except (ArgumentError, ValueError):
        raise StudyError(f"storage {redact_url(url)!r}: not a database URL; expected e.g. {URL_EXAMPLES}") from None
    except ImportError:
        return  # a missing driver is reported by open_db
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StudyError(f"storage {redact_url(url)}: an in-memory SQLite database, gone when the command ends; pass a file, "
                         "e.g. sqlite:///autopeft.db")
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StudyError(f"storage {redact_url(url)}: folder {path.parent} does not exist; create it or check --storage")


def _is_refused(reason: str) -> bool:
    return any(s in reason.lower() for s in ("connection refused", "could not connect", "connection failed",
                                             "could not translate host", "name or service not known"))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


_SECRET_QUERY = re.compile(r"([?&](?:password|passwd|pwd|sslpassword)=)([^&#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with its password (userinfo or `?password=`) replaced by ``***``: for every message, log
    line, stored spec and API response. Plain string work, so it also holds for a URL that does not
    parse (a bad port) and for a password with an unescaped ``@`` or ``/`` (masked up to the last ``@``)."""
    url = _SECRET_QUERY.sub(r"\1***", url)
    user, password, host = _userinfo(url)
    return url if password is None else f"{url.partition('://')[0]}://{user}:***@{host}"


def _userinfo(url: str) -> tuple[str, str | None, str]:
    """(user, password or None, what follows the last ``@``) of `scheme://user:password@host...`."""
    _scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    user, colon, password = creds.partition(":")
    if not (sep and at and colon) or "/" in user:
        return "", None, rest
    return user, password, host


def _scrub(text: str, url: str) -> str:
    """`text` (a driver's error) without the password of `url`, should the driver have echoed it."""
    secrets = [_userinfo(url)[1], *(m.group(2) for m in _SECRET_QUERY.finditer(url))]
    for secret in filter(None, secrets):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


_redact = redact_url  # the former private name
