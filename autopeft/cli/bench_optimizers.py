"""`autopeft bench optimizers`: compare samplers on a problem by hypervolume over trials and seeds.

Runs every sampler on every seed (sequentially, so suggest times are not disturbed), then prints per
sampler the normalised hypervolume at 10/20/40/60 trials (mean ± sd), the trials needed to reach 95%
of the best hypervolume any sampler found on that seed, and the median suggest time; writes CSV,
JSON and a plotly HTML of the curves when asked. Definitions: `autopeft.optim.bench`.
"""

from __future__ import annotations

import csv
import json
import shlex
import sys
import time
from pathlib import Path

import typer
from rich.table import Table

from autopeft.cli.app import bench_app, fail
from autopeft.cli.app import console as make_console


@bench_app.command("optimizers")
def optimizers(
    problem: str = typer.Option("synthetic-peft", "--problem", help="synthetic-peft, or MODULE:ATTR (space, model, evaluate)."),
    samplers: str = typer.Option("mobo,autopeft,botorch,gp,tpe,nsga2,random", "--samplers",
                                 help="Comma-separated sampler names."),
    trials: int = typer.Option(60, "--trials", min=2, help="Trials per run."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Seeds 0..N-1 (sampler seed and synthetic noise)."),
    space: str | None = typer.Option(None, "--space", help="Space name or YAML (default: autopeft, or the problem's)."),
    model: str | None = typer.Option(None, "--model", help="Model config dir for counts (synthetic: BERT-base config)."),
    budget_pct: float = typer.Option(1.0, "--budget-pct", help="Budget, % of the model: the reference point's params."),
    n_startup_trials: int = typer.Option(8, "--n-startup-trials", min=1, help="Start-up trials of every sampler."),
    surrogate: str = typer.Option("gp", "--surrogate", help="mobo's metric surrogate: gp or saas."),
    json_path: Path | None = typer.Option(None, "--json", help="Write the full result (curves too) as JSON."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Write the summary table as CSV."),
    html_path: Path | None = typer.Option(None, "--html", help="Write a plotly HTML of the hypervolume curves."),
    torch_threads: int = typer.Option(1, "--torch-threads", min=1,
                                      help="torch threads for every sampler (1: stable timings on shared CPUs)."),
    reach_within: int | None = typer.Option(
        None, "--reach-within", min=2,
        help="Continue runs that have not reached 95% of the best hypervolume after --trials, up to this many "
             "trials, to count how many they need (HV checkpoints and the best still use --trials)."),
    reach_samplers: str | None = typer.Option(None, "--reach-samplers",
                                              help="Comma-separated samplers --reach-within applies to (default: all)."),
    merge: list[Path] | None = typer.Option(None, "--merge",
                                            help="Summarise the runs of earlier --json results together instead of running."),
):
    """Hypervolume of (metric, params %) per sampler over trials and seeds, trials to 95%, suggest time."""
    from autopeft.optim import SAMPLER_NAMES
    from autopeft.optim.bench import ProblemError, SamplerRun, best_per_seed, load_problem, summarise
    from autopeft.search_spaces import ModelError, SpaceError

    if merge:
        result = _merged(merge, n_startup_trials)
        _write(result, json_path, csv_path, html_path)
        return

    names = [s.strip() for s in samplers.split(",") if s.strip()]
    unknown = [s for s in names if s not in SAMPLER_NAMES]
    if not names or unknown:
        fail(f"--samplers: expected names from {', '.join(SAMPLER_NAMES)}, got {', '.join(unknown) or 'none'}")
    if not 0 < budget_pct <= 100:
        fail(f"--budget-pct: expected a number in (0, 100], got {budget_pct}")
    if surrogate not in ("gp", "saas"):
        fail(f"--surrogate: expected gp or saas, got {surrogate!r}")
    if reach_within is not None and reach_within < trials:
        fail(f"--reach-within: expected at least --trials ({trials}), got {reach_within}")
    continued = names if reach_samplers is None else [s.strip() for s in reach_samplers.split(",") if s.strip()]
    if set(continued) - set(names):
        fail(f"--reach-samplers: expected names from --samplers ({', '.join(names)}), got {reach_samplers}")
    try:
        loaded = load_problem(problem, space=space, model=model)
    except (ProblemError, SpaceError, ModelError) as exc:
        fail(str(exc))
    (smallest_plan, smallest), _ = loaded.space.param_range()
    if smallest.pct > budget_pct:
        fail(f"--budget-pct: {budget_pct}% is below the smallest configuration of space {loaded.space.name!r} "
             f"({smallest.pct:.4g}%: {smallest_plan.summary()})")

    import optuna
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(torch_threads)
    reference = (loaded.metric_floor, budget_pct)
    sampler_runs = []
    for name in names:
        for seed in range(seeds):
            start = time.perf_counter()
            sampler_run = SamplerRun(loaded.for_seed(seed), name, seed, budget_pct=budget_pct,
                                     n_startup_trials=n_startup_trials, surrogate=surrogate)
            for _ in range(trials):
                sampler_run.step()
            sampler_runs.append(sampler_run)
            hv = sampler_run.run.hypervolumes(reference)[-1]
            typer.echo(f"{name} seed {seed}: hypervolume {hv:.4f} after {trials} trials "
                       f"({time.perf_counter() - start:.0f} s)", err=True)
    runs = [r.run for r in sampler_runs]
    if reach_within is not None and reach_within > trials:
        best = best_per_seed(runs, reference, trials)
        for r in (r for r in sampler_runs if r.run.sampler in continued):
            reached = r.continue_until(0.95 * best[r.run.seed], reach_within)
            if len(r.run.points) > trials:
                typer.echo(f"{r.run.sampler} seed {r.run.seed}: continued to {len(r.run.points)} trials "
                           f"({'reached' if reached else 'did not reach'} 95% of the best)", err=True)
    result = summarise(runs, problem=loaded.name, space=loaded.space.name, budget_pct=budget_pct,
                       metric_floor=loaded.metric_floor, trials=trials, n_startup_trials=n_startup_trials)
    result.command = "autopeft " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _write(result, json_path, csv_path, html_path)


def _merged(paths: list[Path], n_startup_trials: int):
    from autopeft.optim.bench import runs_from_json, summarise

    runs, first = [], None
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--merge: cannot read {path} ({exc})")
        key = {k: data.get(k) for k in ("problem", "space", "budget_pct", "metric_floor", "trials")}
        if first is None:
            first = key
        elif key != first:
            fail(f"--merge: {path} is another benchmark ({key}), expected {first}")
        runs.extend(runs_from_json(data))
    if not runs:
        fail("--merge: the files hold no runs; pass --json results of autopeft bench optimizers")
    result = summarise(runs, problem=first["problem"], space=first["space"], budget_pct=first["budget_pct"],
                       metric_floor=first["metric_floor"], trials=first["trials"], n_startup_trials=n_startup_trials)
    result.command = "autopeft " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return result


def _write(result, json_path: Path | None, csv_path: Path | None, html_path: Path | None) -> None:
    from autopeft.optim.bench import figure, table_rows

    rows = table_rows(result)
    _print(rows, result.checkpoints)
    if csv_path is not None:
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2))
    if html_path is not None:
        figure(result).write_html(str(html_path), include_plotlyjs=True)


def _print(rows: list[dict], checkpoints: list[int]) -> None:
    table = Table("sampler", *[f"HV@{c}" for c in checkpoints], "trials to 95%", "median suggest s", "@last 10 s",
                  "median suggest CPU s", "@last 10 CPU s")
    for r in rows:
        table.add_row(
            r["sampler"], *[f"{r[f'hv@{c}_mean']:.4f} ± {r[f'hv@{c}_sd']:.4f}" for c in checkpoints],
            f"{r['trials_to_95_mean']:.1f} ({r['reached_95']})", f"{r['median_suggest_s']:.3f}",
            f"{r['median_suggest_s_last10']:.3f}", _seconds(r.get("median_suggest_cpu_s")),
            _seconds(r.get("median_suggest_cpu_s_last10")),
        )
    make_console().print(table)


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
