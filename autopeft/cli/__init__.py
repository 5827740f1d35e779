"""The `autopeft` command line (Typer): parse options, call the library, print the answer.

Not all thin: `search` also merges its spec file with flags (`resolve_spec`, what a resume may
change) and turns SIGTERM into an interrupt; `pareto`, `refine` and `search` build their tables here.

Commands are registered lazily (`autopeft.cli.app`): a command's module, and the heavy libraries it
needs, are imported only when that command runs.
"""

from __future__ import annotations

from autopeft.cli.app import app, bench_app

__all__ = ["app", "bench_app"]
