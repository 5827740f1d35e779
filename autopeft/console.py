"""The `autopeft` console script: the Typer app, with Ctrl-C at any moment one line and exit code 130.

Importing the commands takes seconds (torch, transformers, optuna), so this module imports nothing
until `main` runs: a Ctrl-C while they load, or in a command that does not catch it itself, prints
one line instead of a traceback (Typer alone exits 130 silently there).
"""

from __future__ import annotations

import sys

INTERRUPTED = "error: interrupted (Ctrl-C) before the command finished; run it again to complete it"


def main() -> None:
    """Run the `autopeft` command line (what the console script and `python -m autopeft` call)."""
    try:
        from autopeft.cli import app

        app()
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130 and _silent_ctrl_c(exc):
            _interrupted()
        raise


def _silent_ctrl_c(exc: SystemExit) -> bool:
    """True when Typer turned a KeyboardInterrupt into exit 130 without a word (`raise Exit(130) from e`);
    a command that says why it stopped (`fail(..., code=130)`) raises its Exit without that cause."""
    context = exc.__context__
    return context is not None and isinstance(context.__cause__, KeyboardInterrupt)


def _interrupted() -> None:
    sys.stderr.write(INTERRUPTED + "\n")
    sys.exit(130)
