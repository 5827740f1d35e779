"""The Typer applications and the shared way commands report user errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from autopeft.cli.lazy import LazyCommand, LazyGroup


class _Commands(LazyGroup):
    """`autopeft COMMAND`: each module is imported when its command runs (see `autopeft.cli.lazy`)."""

    lazy = {
        "search": LazyCommand("autopeft.cli.search", "search"),
        "studies": LazyCommand("autopeft.cli.studies", "studies"),
        "pareto": LazyCommand("autopeft.cli.studies", "pareto"),
        "export": LazyCommand("autopeft.cli.export", "export"),
        "dashboard": LazyCommand("autopeft.cli.dashboard", "dashboard"),
        "refine": LazyCommand("autopeft.cli.refine", "refine"),
        "spaces": LazyCommand("autopeft.cli.spaces", "spaces_app"),
    }


class _BenchCommands(LazyGroup):
    """`autopeft bench COMMAND`."""

    lazy = {
        "evaluate": LazyCommand("autopeft.cli.bench_evaluate", "evaluate"),
        "scaling": LazyCommand("autopeft.cli.bench_scaling", "scaling"),
        "optimizers": LazyCommand("autopeft.cli.bench_optimizers", "optimizers"),
    }


app = typer.Typer(
    cls=_Commands,
    name="autopeft",
    help="Find the best parameter-efficient fine-tuning configuration for a model and a task.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (speed, optimiser quality); every one takes --json PATH.", no_args_is_help=True,
                        cls=_BenchCommands)
app.add_typer(bench_app, name="bench")
_Commands.source, _BenchCommands.source = app, bench_app


def console() -> Console:
    """Rich console for command output; wide and unwrapped when not a terminal, so scripts can parse it."""
    return Console(width=None if sys.stdout.isatty() else 200, soft_wrap=not sys.stdout.isatty())


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line `error: ...` to stderr and exit non-zero; for user mistakes, never a traceback."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


@app.command("spec-reference")
def spec_reference() -> None:
    """Print every spec field with its default and description (Markdown)."""
    from autopeft.spec import reference_markdown

    typer.echo(reference_markdown(), nl=False)
