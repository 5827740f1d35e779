"""`autopeft refine`: re-run a study's Pareto front at a higher fidelity with several seeds."""

from __future__ import annotations

import typer
from rich.markup import escape

from autopeft.cli.app import app, fail
from autopeft.cli.app import console as make_console
from autopeft.cli.front import pareto_rows, show_refined
from autopeft.optional import MissingExtra
from autopeft.spec import SpecError
from autopeft.store import StudyError, StudyReader, open_db
from autopeft.workers.tasks import DataError

DEFAULT_STORAGE = "sqlite:///autopeft.db"
FIDELITY_HELP = ("full (the whole training set, no step cap: the default for a new refinement), a YAML file of "
                 "fidelity fields, or key=value pairs such as train_size=5000,max_steps=null; other fields keep "
                 "the study's search fidelity")


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
    from autopeft.refine_run import RefineError, Refiner, prepare_refinement, refine_executor

    console = make_console()
    try:
        st = open_db(storage)
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
    reader = StudyReader(st)
    info = reader.search(study)
    show_refined(st, study, pareto_rows(info, reader.rows(info.study_id)), "table", session.linked.study_name)
