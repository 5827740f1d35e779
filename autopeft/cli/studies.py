"""`autopeft studies` and `autopeft pareto`: read the study DB through the store's column-level reader
(a 10,000-trial study in well under a second; Optuna's `get_all_trials` takes seconds)."""

from __future__ import annotations

from enum import Enum

import typer
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import app, fail, print_json
from autopeft.cli.app import console as make_console
from autopeft.store import StudyError, StudyReader, redact_url, summarize

STORAGE_HELP = "SQLAlchemy URL of the study DB."
DEFAULT_STORAGE = "sqlite:///autopeft.db"


class ListFormat(str, Enum):
    table = "table"
    json = "json"


class ParetoFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def open_reader(storage: str) -> StudyReader:
    """The store's column-level reader on the study DB, read-only; one line when it cannot be read."""
    try:
        return StudyReader.open(storage)
    except StudyError as exc:
        fail(str(exc))


@app.command()
def studies(
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    format: ListFormat = typer.Option(ListFormat.table, "--format", help="table or json"),
):
    """List the studies: model, task, space, trials by state, best metric, hypervolume."""
    reader = open_reader(storage)
    rows = [summarize(info, reader.rows(info.study_id), [n for _, n in reader.refinements(info.name)]).to_dict()
            for info in reader.studies() if info.spec is not None]  # no spec: a linked study, or not autopeft's
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


@app.command()
def pareto(
    study: str = typer.Argument(..., help="Study name."),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help=STORAGE_HELP),
    format: ParetoFormat = typer.Option(ParetoFormat.table, "--format", help="table, json or csv"),
    refinement: str | None = typer.Option(None, "--refinement", help="Linked study of `autopeft refine` to show "
                                          "beside the search values (default: the newest one)."),
):
    """Print the Pareto-optimal trials: number, metric, params %, plan summary; refined values when refined."""
    from autopeft.cli.front import pareto_rows, show_front

    reader = open_reader(storage)
    try:
        info = reader.search(study)
    except StudyError as exc:
        fail(str(exc))
    show_front(reader, info, pareto_rows(info, reader.rows(info.study_id)), format.value, refinement)
