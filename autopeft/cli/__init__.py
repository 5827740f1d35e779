"""The `autopeft` command line (Typer). Commands are thin: parse, build, call."""

from __future__ import annotations

from autopeft.cli.app import app, bench_app

# Importing the command modules registers their commands on `app` / `bench_app`.
from autopeft.cli import bench_evaluate, bench_scaling, search, spaces, studies  # noqa: E402,F401  isort: skip
from autopeft.cli import dashboard  # noqa: E402,F401  isort: skip
from autopeft.cli import bench_optimizers  # noqa: E402,F401  isort: skip
from autopeft.cli import refine  # noqa: E402,F401  isort: skip

__all__ = ["app", "bench_app"]
