"""`autopeft refine`: re-run a study's Pareto front at a higher fidelity with several seeds; and the
refined columns that `autopeft pareto` shows next to the search values."""

from __future__ import annotations

import csv
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import app, fail, print_json
from autopeft.cli.app import console as make_console
from autopeft.optional import MissingExtra
from autopeft.refinement import Comparison, Refinement, compare, latest_refinement
from autopeft.spec import SpecError
from autopeft.study import StudyError, open_storage
from autopeft.workers.tasks import DataError

DEFAULT_STORAGE = "sqlite:///autopeft.db"
REFINED_FIELDS = ("refined_mean", "refined_sd", "refined_n", "refined_delta", "refined_front")
FIDELITY_HELP = ("full (the whole training set, no step cap: the default for a new refinement), a YAML file of "
                 "fidelity fields, or key=value pairs such as train_size=5000,max_steps=null; other fields keep "
                 "the study's search fidelity")


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


@app.command()
def refine(
    study: str = typer.Argument(..., help="Study whose Pareto-optimal trials to re-run."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per trial: fidelity.seed, fidelity.seed + 1, ..."),
    fidelity: str | None = typer.Option(None, "--fidelity", help=FIDELITY_HELP),
    name: str | None = typer.Option(None, "--name", help="Linked study recording the runs (default STUDY--refined)."),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help="SQLAlchemy URL of the study DB."),
    workers: int | None = typer.Option(None, "--workers", help="Runs evaluated at a time."),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                           help="Ray cluster address; none starts Ray locally."),
    executor: str | None = typer.Option(None, "--executor", help="ray (default) or inline (in this process)."),
):
    """Re-run the Pareto-optimal trials at a higher fidelity with several seeds; record mean ± sd on the dev set."""
    from autopeft.refine import RefineError, Refiner, prepare_refinement, refine_executor

    console = make_console()
    try:
        st = open_storage(storage)
        session = prepare_refinement(st, study, seeds=seeds, fidelity=fidelity, name=name,
                                     execution={"workers": workers, "ray_address": ray_address, "executor": executor})
    except (StudyError, SpecError, RefineError, DataError, MissingExtra) as exc:
        fail(str(exc))
    console.print(f"refining study [bold]{escape(study)}[/bold] into [bold]{escape(session.linked.study_name)}[/bold]: "
                  f"{len(session.front)} Pareto-optimal trial(s) x {len(session.seeds)} seed(s), {session.metric} on "
                  f"the {'dev set' if session.split == 'dev' else 'held-out split (the task has no dev set)'}; "
                  f"{session.done_before} of {session.total} run(s) already complete")
    if session.todo:
        pool = refine_executor(session)
        try:
            Refiner(session, pool, on_event=lambda line: console.print(line, highlight=False, markup=False)).run()
        except KeyboardInterrupt:
            console.print("interrupted: completed runs are kept; run the same command to resume")
            raise typer.Exit(130) from None
        except RefineError as exc:
            fail(str(exc), code=1)
        finally:
            pool.close()
    from autopeft.cli.studies import pareto_rows

    show_refined(st, study, pareto_rows(session.source), "table", session.linked.study_name)
