"""The Typer applications and the shared way commands report user errors."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import optuna
import typer
from rich.console import Console

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI reports progress itself

app = typer.Typer(
    name="autopeft",
    help="Find the best parameter-efficient fine-tuning configuration for a model and a task.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks (speed, optimiser quality); every one takes --json PATH.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


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
