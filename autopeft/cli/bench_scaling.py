"""`autopeft bench scaling`: orchestration throughput on a local Ray with declared fake GPUs.

For each worker count W: W long-lived actors (one fake GPU each) run the synthetic evaluator
(sleeps `--trial-seconds`, then scores the plan) through the real runner and a real study (a SQLite file
in a temporary folder, or the DB at `--storage`, e.g. PostgreSQL), for `--rounds` x W trials, with the
random sampler. Reports throughput (trials/s), the ideal
W / trial_seconds, efficiency = throughput / ideal, and the median per-trial overhead: time from
handing a trial to the executor until it is recorded in the DB, minus the evaluator's own time.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import typer

from autopeft.cli.app import bench_app, fail


def write_model(folder: str) -> None:
    """The model whose LoRA space the scaling runs draw from (a small BERT config; no weights: nothing trains)."""
    from transformers import BertConfig

    BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128).save_pretrained(folder)


def run_scaling(workers: int, trial_seconds: float, rounds: int, model_dir: str, db: str) -> dict:
    import optuna

    from autopeft.objective import Objective
    from autopeft.runner import Runner
    from autopeft.search_spaces import load_config, load_space, structure_of
    from autopeft.spec import build_spec
    from autopeft.store import create_study, open_db
    from autopeft.store.attrs import trial_result
    from autopeft.workers.ray_pool import RayPool
    from autopeft.workers.synthetic import SyntheticEvaluator

    trials = rounds * workers
    spec = build_spec({}, {"model": model_dir, "space": "lora", "execution.trials": trials, "budget.max_params_pct": 100,
                           "execution.workers": workers})
    name = f"scaling-{workers}-{uuid.uuid4().hex[:8]}"  # a --storage DB may hold earlier runs
    study = create_study(open_db(db), name, spec, Objective("metric", "maximize", 0.0))
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    space = load_space("lora", structure_of(load_config(model_dir)))
    space.param_range()  # counts plans: the driver's first-use imports (peft) happen here, off the clock
    pool = RayPool(partial(SyntheticEvaluator, trial_seconds), workers, cpus_per_trial=0.01, gpus_per_trial=1)
    try:
        pool.where()  # every actor is up before the clock starts
        runner = Runner(spec, study, space, pool)
        start = time.perf_counter()
        runner.run()
        wall = time.perf_counter() - start
    finally:
        pool.close()
    evaluator_seconds = {t.number: trial_result(t.user_attrs)["train_seconds"] for t in study.get_trials(deepcopy=False)}
    overheads = [runner.turnaround[n] - evaluator_seconds[n] for n in runner.turnaround]
    throughput = trials / wall
    ideal = workers / trial_seconds
    return {
        "workers": workers, "trials": trials, "wall_seconds": round(wall, 3), "throughput": round(throughput, 3),
        "ideal_throughput": round(ideal, 3), "efficiency": round(throughput / ideal, 4),
        "median_overhead_ms": round(1000 * statistics.median(overheads), 1),
    }


@bench_app.command("scaling")
def scaling(
    workers: str = typer.Option("1,4,16,64", "--workers", help="Comma-separated worker counts."),
    trial_seconds: float = typer.Option(2.0, "--trial-seconds", help="Seconds each synthetic trial sleeps."),
    rounds: int = typer.Option(4, "--rounds", help="Trials per worker at each count."),
    storage: str | None = typer.Option(None, "--storage", help="Study DB URL (e.g. postgresql+psycopg://USER:PASS@HOST/DB); "
                                       "default: a SQLite file in a temporary folder."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the figures as JSON."),
):
    """Throughput, efficiency and per-trial overhead of the runner on Ray, with a synthetic evaluator."""
    try:
        counts = [int(w) for w in workers.split(",")]
    except ValueError:
        fail(f"--workers: expected comma-separated integers, got {workers!r}")
    if min(counts) < 1 or trial_seconds <= 0 or rounds < 1:
        fail("--workers, --trial-seconds and --rounds must be positive")
    import optuna
    import ray

    from autopeft.store import StudyError, open_db

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the table says what ran, not a line per study created

    if storage is not None:
        try:
            open_db(storage).engine.dispose()
        except StudyError as exc:
            fail(str(exc))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_model(tmp)
        ray.init(num_cpus=2, num_gpus=max(counts), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            typer.echo(f"{'workers':>8} {'trials':>7} {'thru/s':>8} {'ideal/s':>8} {'eff':>7} {'overhead ms':>12}")
            for count in counts:
                row = run_scaling(count, trial_seconds, rounds, tmp, storage or f"sqlite:///{Path(tmp) / 'scaling.db'}")
                rows.append(row)
                typer.echo(f"{row['workers']:>8} {row['trials']:>7} {row['throughput']:>8.2f} {row['ideal_throughput']:>8.2f} "
                           f"{100 * row['efficiency']:>6.1f}% {row['median_overhead_ms']:>12.1f}")
        finally:
            ray.shutdown()
    if json_path is not None:
        backend = "sqlite" if storage is None else storage.split(":", 1)[0].split("+", 1)[0]
        json_path.write_text(json.dumps({"trial_seconds": trial_seconds, "rounds": rounds, "storage": backend,
                                         "results": rows}, indent=2))
