"""`WorkerCache`: what one worker process keeps between trials (tokenizer, tokenized splits, base weights).

There is one module-level instance, `CACHE`, created empty at import (no work is done then). It is
explicit: every cached value has a key naming what it depends on, `clear()` empties it (tests, or a
worker that switches models), and `keys()` shows what is held.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerCache:
    """A dictionary of values built on first use: `get(key, build)` calls `build()` once per key."""

    def __init__(self) -> None:
        self._store: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        if key not in self._store:
            self._store[key] = build()
        return self._store[key]

    def keys(self) -> list[Hashable]:
        return list(self._store)

    def clear(self) -> None:
        self._store.clear()


CACHE = WorkerCache()
