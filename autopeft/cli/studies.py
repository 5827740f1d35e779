"""`autopeft studies`, `autopeft pareto`, `autopeft export`: read the study DB."""

from __future__ import annotations

import csv
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import app, fail, print_json
from autopeft.cli.app import console as make_console
from autopeft.export import FORMATS, export_trial
from autopeft.optional import MissingExtra
from autopeft.search_spaces import ModelError, PlanError
from autopeft.spec import SearchSpec
from autopeft.study import (
    StudyError,
    load_study,
    objective_of,
    open_existing_storage,
    pareto_trials,
    redact_url,
    stored_spec,
    study_names,
    summarize,
)

STORAGE_HELP = "SQLAlchemy URL of the study DB."
DEFAULT_STORAGE = "sqlite:///autopeft.db"


class ListFormat(str, Enum):
    table = "table"
    json = "json"


class ParetoFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _open(storage: str):
    """The study DB for reading; a SQLite file that does not exist is an error (not created)."""
    try:
        return open_existing_storage(storage)
    except StudyError as exc:
        fail(str(exc))


@app.command()
def studies(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    format: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json"),
):
    """List the studies: model, task, space, trials by state, best metric, hypervolume."""
    st = _open(storage)
    rows = []
    for name in study_names(st):
        try:
            rows.append(summarize(load_study(st, name)).to_dict())
        except StudyError:
            continue  # an Optuna study not made by autopeft
    if format is ListFormat.json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no autopeft studies in {redact_url(storage)}; start one with `autopeft search`")
        return
    table = Table("study", "model", "task", "space", "trials", "best metric", "hypervolume", "front")
    for r in rows:
        states = ", ".join(f"{n} {k}" for k, n in sorted(r["states"].items()))
        arrow = "↑" if r["direction"] == "maximize" else "↓"
        best = f"{r['best_metric']:.4f} ({r['metric']} {arrow})" if r["best_metric"] is not None else "-"
        name = r["name"] + "".join(f"\n  ↳ refined: {n}" for n in r["refinements"])
        table.add_row(escape(name), escape(r["model"]), escape(r["task"]), escape(r["space"]), states, escape(best),
                      f"{r['hypervolume']:.4f}", str(r["pareto_size"]))
    make_console().print(table)


def pareto_rows(study) -> list[dict]:
    return [
        {"trial": t.number, "metric": t.values[0], "params_pct": t.values[1], "params": t.user_attrs.get("params"),
         "plan": t.user_attrs.get("plan_summary", "")}
        for t in pareto_trials(study)
    ]


def print_pareto(study, spec: SearchSpec, console: Console) -> None:
    objective = objective_of(study)
    table = Table("trial", escape(f"{objective.metric} {objective.arrow}"), "params % ↓", "params", "plan",
                  title=escape(f"Pareto front of {study.study_name}"))
    for r in pareto_rows(study):
        params = f"{r['params']:,}" if isinstance(r["params"], int) else "-"  # a trial autopeft did not run
        table.add_row(str(r["trial"]), f"{r['metric']:.4f}", f"{r['params_pct']:.4f}", params, escape(r["plan"]))
    console.print(table)


@app.command()
def pareto(
    study: str = typer.Argument(..., help="Study name."),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    format: ParetoFormat = typer.Option(ParetoFormat.table, "--format", help="table, json or csv"),
    refinement: str | None = typer.Option(None, "--refinement", help="Linked study of `autopeft refine` to show "
                                          "beside the search values (default: the newest one)."),
):
    """Print the Pareto-optimal trials: number, metric, params %, plan summary; refined values when refined."""
    from autopeft.cli.refine import show_refined

    st = _open(storage)
    try:
        loaded = load_study(st, study)
        spec = stored_spec(loaded)
    except StudyError as exc:
        fail(str(exc))
    rows = pareto_rows(loaded)
    if show_refined(st, study, rows, format.value, refinement):
        return
    if format is ParetoFormat.json:
        print_json(rows)
    elif format is ParetoFormat.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=["trial", "metric", "params_pct", "params", "plan"])
        writer.writeheader()
        writer.writerows(rows)
    else:
        print_pareto(loaded, spec, make_console())


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
    st = _open(storage)
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
