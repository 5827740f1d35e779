"""`autopeft export`: write a trial's configuration (peft, AdapterHub or autopeft YAML)."""

from __future__ import annotations

from pathlib import Path

import typer

from autopeft.cli.app import app, fail
from autopeft.cli.studies import DEFAULT_STORAGE, STORAGE_HELP
from autopeft.export import FORMATS, export_trial
from autopeft.optional import MissingExtra
from autopeft.search_spaces import ModelError, PlanError
from autopeft.store import StudyError, load_study, open_db_for_reading


@app.command()
def export(
    study: str = typer.Argument(..., help="Study name."),
    trial: int = typer.Option(..., "--trial", help="Trial number (see `autopeft pareto`)."),
    format: str = typer.Option("peft", "--format", help="peft, adapters or yaml"),
    out: Path = typer.Option(..., "--out", help="Directory to write the configuration into."),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    force: bool = typer.Option(False, "--force", help="Write into a folder that already holds files."),
):
    """Write a trial's configuration: peft adapter_config.json, AdapterHub config, or autopeft YAML."""
    if format not in FORMATS:
        fail(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    _check_out(out, force)
    try:
        st = open_db_for_reading(storage)  # a SQLite file that does not exist is an error, not created
    except StudyError as exc:
        fail(str(exc))
    try:
        if not 0 <= trial < 2**63:  # beyond SQLite's INTEGER: not a trial number of any study
            raise StudyError(f"trial {trial}: no such trial in study {study!r}; pick one from `autopeft pareto {study}`")
        exported = export_trial(load_study(st, study), trial, format, out)
    except (StudyError, PlanError, ModelError, ValueError, MissingExtra) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a folder you can write to")
    typer.echo(str(exported.path))
    if format != "yaml":
        typer.echo(exported.head.instructions(), err=True)


def _check_out(out: Path, force: bool) -> None:
    """Refuse (one line) to write into a file path, or into a folder that already holds files unless `force`."""
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file; pass a folder to write the configuration into")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        fail(f"--out {out}: {blocker} is a file, not a folder; pass a folder to write the configuration into")
    if out.is_dir() and not force:
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ", ".join(held[:3]) + (", ..." if len(held) > 3 else "")
            fail(f"--out {out}: folder is not empty ({shown}); choose another --out, or pass --force to write into it")
