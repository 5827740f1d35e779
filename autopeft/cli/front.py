"""The Pareto table that `autopeft pareto` and `autopeft refine` print: the search front, and the refined
mean ± sd beside it when the study has been refined."""

from __future__ import annotations

import csv
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import console as make_console
from autopeft.cli.app import fail, print_json
from autopeft.refine_compare import Comparison, Refinement, compare
from autopeft.store import StudyInfo, StudyReader, TrialRow, front
from autopeft.store.linked import latest_refinement

PARETO_FIELDS = ("trial", "metric", "params_pct", "params", "plan")
REFINED_FIELDS = ("refined_mean", "refined_sd", "refined_n", "refined_delta", "refined_front")


def pareto_rows(info: StudyInfo, rows: list[TrialRow]) -> list[dict]:
    """The Pareto-optimal trials of the study (reader rows), cheapest first, as `PARETO_FIELDS` dicts."""
    return [{"trial": r.number, "metric": r.metric, "params_pct": r.params_pct, "params": r.params, "plan": r.summary}
            for r in front(rows, info.objective.maximize)]


def print_pareto(info: StudyInfo, rows: list[dict], console: Console) -> None:
    objective = info.objective
    table = Table("trial", escape(f"{objective.metric} {objective.arrow}"), "params % ↓", "params", "plan",
                  title=escape(f"Pareto front of {info.name}"))
    for r in rows:
        params = f"{r['params']:,}" if isinstance(r["params"], int) else "-"  # a trial autopeft did not run
        table.add_row(str(r["trial"]), f"{r['metric']:.4f}", f"{r['params_pct']:.4f}", params, escape(r["plan"]))
    console.print(table)


def show_front(reader: StudyReader, info: StudyInfo, rows: list[dict], format: str,
               refinement: str | None = None) -> None:
    """Print the front `rows` in `format` (table, json, csv), with the refinement beside it when there is one."""
    if (refinement is not None or reader.refinements(info.name)) and show_refined(
            reader.storage, info.name, rows, format, refinement):
        return
    if format == "json":
        print_json(rows)
    elif format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(PARETO_FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    else:
        print_pareto(info, rows, make_console())


def with_refined(rows: list[dict], refinement: Refinement) -> tuple[list[dict], Comparison]:
    """`autopeft pareto` rows with the refined fields added (None where a trial is not refined)."""
    comparison = compare([(r["trial"], r["metric"], r["params_pct"]) for r in rows], refinement.values,
                         refinement.maximize)
    by_trial = {p.trial: p.to_dict() for p in comparison.points}
    return [{**r, **{k: by_trial[r["trial"]][k] for k in REFINED_FIELDS}} for r in rows], comparison


def _mean_sd(row: dict) -> str:
    if row["refined_mean"] is None:
        return "-"
    sd = f" ± {row['refined_sd']:.4f}" if row["refined_sd"] is not None else ""
    return f"{row['refined_mean']:.4f}{sd}"


def print_refined(rows: list[dict], comparison: Comparison, refinement: Refinement, study: str,
                  console: Console) -> None:
    """The search front with the refined mean ± sd beside it, then what the refinement says about the order."""
    table = Table("trial", "search metric", "refined mean ± sd", "n", "Δ", "refined front", "params %", "params",
                  "plan", title=escape(f"Pareto front of {study} (search fidelity) and {refinement.name}"))
    for r in rows:
        front = "-" if r["refined_front"] is None else ("yes" if r["refined_front"] else "no (dominated)")
        delta = f"{r['refined_delta']:+.4f}" if r["refined_delta"] is not None else "-"
        table.add_row(str(r["trial"]), f"{r['metric']:.4f}", _mean_sd(r), str(r["refined_n"] or "-"), delta, front,
                      f"{r['params_pct']:.4f}", f"{r['params']:,}" if r["params"] is not None else "-", escape(r["plan"]))
    console.print(table)
    console.print(f"refined: {refinement.describe()}; {comparison.refined} of {len(rows)} front trial(s), "
                  f"{refinement.complete} run(s) complete, {refinement.failed} failed", highlight=False, markup=False)
    style = "bold yellow" if comparison.reorders else ""
    console.print(f"note: {comparison.note()}", style=style, highlight=False, markup=False)


def show_refined(storage, study: str, rows: list[dict], format: str, name: str | None = None) -> bool:
    """Print `rows` with the refinement of `study` beside them, in `format` (table, json, csv).

    Returns False (printing nothing) when the study has no refinement. For json and csv the note goes
    to stderr, so stdout stays machine-readable.
    """
    try:
        refinement = latest_refinement(storage, study, name)
    except KeyError as exc:
        fail(f"--refinement: {exc.args[0]}")
    if refinement is None:
        return False
    merged, comparison = with_refined(rows, refinement)
    if format == "json":
        print_json(merged)
    elif format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(merged[0]) if merged else ["trial"])
        writer.writeheader()
        writer.writerows(merged)
    else:
        print_refined(merged, comparison, refinement, study, make_console())
        return True
    typer.echo(f"note: {comparison.note()}", err=True)
    return True
