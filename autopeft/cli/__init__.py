"""The `autopeft` command line (Typer): parse, build, call.

Commands are registered lazily (`autopeft.cli.app`): a command's module, and the heavy libraries it
needs, are imported only when that command runs.
"""

from __future__ import annotations

from autopeft.cli.app import app, bench_app

__all__ = ["app", "bench_app"]
