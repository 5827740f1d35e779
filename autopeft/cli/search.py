"""`autopeft search`: build the spec, open or resume the study, run the loop with a live display."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from autopeft.cli.app import app, fail
from autopeft.cli.app import console as make_console
from autopeft.optional import MissingExtra
from autopeft.runner import Progress, SearchError
from autopeft.search_spaces import ModelError, PlanError, SpaceError
from autopeft.spec import SearchSpec, SpecError, build_spec, load_spec, safe_load
from autopeft.store import StudyError, check_url, open_db, redact_url, sqlite_path, stored_spec, study_names
from autopeft.workers.ray_pool import RayUnavailable, check_ray_address
from autopeft.workers.tasks import DataError

# Fields a resumed study may change; the others define the study and are fixed at creation.
RESUMABLE_PREFIXES = ("execution.", "storage.")


def default_study_name(spec: SearchSpec) -> str:
    model = Path(spec.model.rstrip("/")).name or spec.model
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", f"{model}-{spec.task}-{Path(spec.space).stem}")


def resolve_spec(spec_file: Path | None, overrides: dict[str, Any]) -> tuple[SearchSpec, str, bool]:
    """(spec, study name, resuming): a named study that exists is resumed with its stored spec.

    Nothing is created here: a SQLite file that does not exist holds no study to resume and stays absent."""
    file_spec = _file_fields(spec_file)
    file_db = file_spec.get("storage") if isinstance(file_spec.get("storage"), dict) else {}
    url = overrides.get("storage.url") or file_db.get("url") or "sqlite:///autopeft.db"
    name = overrides.get("storage.study") or file_db.get("study")
    existing = _existing_studies(url)
    if name and name in existing:
        import optuna

        stored = stored_spec(optuna.load_study(study_name=name, storage=open_db(url)))
        for dotted, value in overrides.items():
            if value is None or dotted.startswith(RESUMABLE_PREFIXES):
                continue
            current = _get_dotted(stored.model_dump(mode="json"), dotted)
            if current != value:
                raise SpecError(
                    f"{dotted}: study {name!r} was created with {current!r}; a study keeps its definition, "
                    f"use a new --study name to search with {value!r}"
                )
        resumable = {k: v for k, v in overrides.items() if k.startswith(RESUMABLE_PREFIXES)}
        # the stored spec keeps no password: the URL is the one given now
        return build_spec(stored.model_dump(mode="json"), {**resumable, "storage.url": url}), name, True
    spec = load_spec(spec_file, overrides)
    name = name or default_study_name(spec)
    spec = build_spec(spec.model_dump(mode="json"), {"storage.url": url, "storage.study": name})
    if name in existing:
        return resolve_spec(None, {**overrides, "storage.url": url, "storage.study": name})
    if spec.warm_start and spec.warm_start not in existing:
        raise SpecError(f"warm_start: no study named {spec.warm_start!r} in this storage (studies: "
                        f"{', '.join(existing) or 'none'}); warm-start from a study of the same --storage")
    return spec, name, False


def _existing_studies(url: str) -> list[str]:
    """The study names at `url`; [] without opening (so without creating) a SQLite file that does not exist."""
    check_url(url)
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return []
    return study_names(open_db(url))


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `docker stop`, a batch scheduler): stop like Ctrl-C, recording running trials as failed."""

    received = False


def _stop_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into `Terminated` in this (main) thread, so the runner records its running trials;
    returns the function that puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        Terminated.received = True
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _file_fields(spec_file: Path | None) -> dict[str, Any]:
    """The spec file's top-level mapping ({} without a file); `SpecError` when it is missing or unreadable."""
    if spec_file is None:
        return {}
    try:
        data = safe_load(spec_file.read_text())  # a key given twice: load_spec below names it
    except UnicodeDecodeError:
        raise SpecError(f"{spec_file}: not a text file; pass the path of a YAML spec") from None
    except (OSError, yaml.YAMLError):
        data = []
    if data is None:
        return {}
    if not isinstance(data, dict):
        load_spec(spec_file)  # raises SpecError naming the problem: not found, not valid YAML (line), not a mapping
        raise SpecError(f"{spec_file}: expected a mapping of spec fields; pass the path of a YAML spec")
    return data


def _get_dotted(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _progress_table(p: Progress, done_this_run: int, last_event: bool = True) -> Table:
    table = Table.grid(padding=(0, 2))
    eta = p.eta(done_this_run)
    best = f"{p.best_metric:.4f}" if p.best_metric is not None else "-"
    table.add_row(
        f"[bold]trials[/bold] {p.completed}/{p.total} done, {p.running} running, {p.failed} failed"
        + (f", {p.pruned} stopped early" if p.pruned else ""),
        f"[bold]best under budget[/bold] {best} ({escape(p.metric_label)})",
        f"[bold]HV[/bold] {p.hypervolume:.4f}",
        f"[bold]front[/bold] {p.pareto_size}",
        f"[bold]elapsed[/bold] {p.elapsed:.0f}s",
        f"[bold]ETA[/bold] {eta:.0f}s" if eta is not None else "[bold]ETA[/bold] -",
    )
    if last_event and p.last_event:
        table.add_row(f"[dim]{escape(p.last_event)}[/dim]")
    return table


@app.command()
def search(
    spec_file: Path | None = typer.Argument(None, help="YAML spec; flags override its fields."),
    model: str | None = typer.Option(None, "--model", help="Hub name or local model directory."),
    task: str | None = typer.Option(None, "--task", help="glue:<name> or a data file."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="Directory in the GLUE TSV layout."),
    space: str | None = typer.Option(None, "--space", help="Built-in space name or space YAML path."),
    trials: int | None = typer.Option(None, "--trials", help="Completed trials to reach."),
    budget_pct: float | None = typer.Option(None, "--budget-pct", help="Max trainable params, % of the model."),
    train_size: int | None = typer.Option(None, "--train-size", help="Training examples per trial."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer-step cap per trial."),
    learning_rate: float | None = typer.Option(None, "--learning-rate", help="AdamW learning rate per trial."),
    sampler: str | None = typer.Option(None, "--sampler", help="mobo, autopeft, botorch, gp, tpe, nsga2, random."),
    storage: str | None = typer.Option(None, "--storage", help="SQLAlchemy URL of the study DB."),
    study: str | None = typer.Option(None, "--study", help="Study name; an existing one is resumed."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for data, initialisation and the sampler."),
    workers: int | None = typer.Option(None, "--workers", help="Trials evaluated at a time."),
    ray_address: str | None = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                           help="Ray cluster address; none starts Ray locally."),
    executor: str | None = typer.Option(None, "--executor", help="ray (default) or inline (in this process)."),
    warm_start: str | None = typer.Option(None, "--warm-start", help="Evaluate this study's Pareto-optimal plans first."),
):
    """Search for the best PEFT configurations; every result lands in the study DB."""
    overrides = {
        "model": model, "task": task, "data_dir": data_dir, "space": space, "execution.trials": trials,
        "budget.max_params_pct": budget_pct, "fidelity.train_size": train_size, "fidelity.max_steps": max_steps,
        "fidelity.learning_rate": learning_rate,
        "optimizer.sampler": sampler, "storage.url": storage, "storage.study": study, "fidelity.seed": seed,
        "optimizer.seed": seed, "execution.workers": workers, "execution.ray_address": ray_address,
        "execution.executor": executor, "warm_start": warm_start,
        "execution.heartbeat_seconds": float(os.environ["AUTOPEFT_HEARTBEAT_SECONDS"])
        if os.environ.get("AUTOPEFT_HEARTBEAT_SECONDS") else None,
    }
    from autopeft.search_setup import prepare_search
    from autopeft.workers import check_model

    console = make_console()
    try:
        spec, name, resuming = resolve_spec(spec_file, overrides)
        check_model(spec.model)
        if spec.execution.executor == "ray":
            check_ray_address(spec.execution.ray_address)
        session = prepare_search(spec, name)
    except (SpecError, StudyError, SpaceError, ModelError, PlanError, SearchError, DataError, RayUnavailable,
            MissingExtra) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted before any trial started; nothing to resume yet", code=130)
    verb = "resuming" if resuming else "starting"
    url = redact_url(spec.storage.url)  # never print a password
    console.print(f"{verb} study [bold]{escape(name)}[/bold] in {escape(url)}: {escape(spec.model)} on "
                  f"{escape(spec.task)}, space {escape(spec.space)}, budget {spec.budget.max_params_pct}% params, "
                  f"sampler {spec.optimizer.sampler}")
    if session.runner.ladder:
        console.print(f"successive halving: rungs of {', '.join(map(str, session.runner.ladder))} steps, "
                      f"about 1 in {spec.promotion.eta} promoted at each")
    if session.recovered:
        console.print(f"{session.recovered} trial(s) left running by a stopped process were failed and queued again")
    live_display = sys.stdout.isatty()
    restore_sigterm = _stop_on_sigterm()
    try:
        if live_display:
            with Live(console=console, refresh_per_second=2) as live:
                session.runner.on_progress = lambda p: live.update(_progress_table(p, session.runner.done_this_run))
                progress = session.run()
        else:
            session.runner.on_progress = lambda p: p.last_event and console.print(p.last_event, highlight=False,
                                                                                  markup=False)
            progress = session.run()
    except KeyboardInterrupt:  # Ray turns an exception raised by a signal handler into KeyboardInterrupt
        how, code = ("terminated", 143) if Terminated.received else ("interrupted", 130)
        console.print(f"{how}: running trials were recorded as failed; run the same command to resume")
        raise typer.Exit(code) from None
    except SearchError as exc:
        fail(str(exc), code=1)
    finally:
        restore_sigterm()
        session.close()
    # without a live display every event was printed as it happened
    console.print(_progress_table(progress, session.runner.done_this_run, last_event=live_display))
    from autopeft.cli.front import pareto_rows, print_pareto
    from autopeft.store import StudyReader, trial_by_number

    reader = StudyReader.of(session.study)
    info = reader.search(name)
    print_pareto(info, pareto_rows(info, reader.rows(info.study_id)), console)
    console.print(f"\ndashboard: autopeft dashboard --storage {url}", markup=False)
    for limit, label in ((1.0, "under 1% params"), (100.0, "found")):
        best = session.best_under(limit)
        if best is not None:
            from autopeft.export import trial_format  # peft or adapters: whichever can express that trial

            fmt = trial_format(trial_by_number(session.study, best).user_attrs)
            console.print(f"export the best configuration {label}: autopeft export {name} --trial {best} "
                          f"--format {fmt} --out ./adapter --storage {url}", markup=False)
            break
