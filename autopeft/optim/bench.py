"""The optimiser benchmark: run samplers on a problem over seeds, and summarise hypervolume curves.

A *problem* has a ``space`` (a `SearchSpace`), a ``metric_floor`` and ``evaluate(plan_dict) -> float``
(the plan in its ``autopeft-plan/v1`` form). `load_problem` builds ``synthetic-peft`` or imports a
user object ``MODULE:ATTR`` with ``space`` (built-in name or YAML path), ``model`` (a config
directory or hub name, for exact parameter counts), ``evaluate`` and optionally ``metric_floor``
(default 0) — e.g. a lookup in results recorded earlier. ``evaluate`` may return None or NaN (or
raise) for a configuration it cannot score: that trial is recorded as failed and still uses a trial.

Each run asks, suggests and tells exactly as the search runner does (``study.ask()``,
``space.suggest(trial)``, ``study.tell(trial, [metric, params_pct])``, through `autopeft.dispatch`),
and times ask + suggest.

**Normalised hypervolume**: the area dominated by the (metric ↑, params % ↓) points inside the
reference box ``[metric_floor, 1] x [0, budget_pct]``, divided by the box's area
``(1 - metric_floor) * budget_pct``: 0 = nothing better than the reference point, 1 = metric 1 at zero
parameters. Params are on a linear % scale, as in `autopeft.pareto`, so cheap good configurations
weigh most.

**Trials to 95%**: on each seed, the first trial at which a sampler's hypervolume reaches 95% of the
best hypervolume any sampler reached on that seed within ``trials`` trials. A run that has not
reached it by then may be continued (`SamplerRun.continue_until`, ``--reach-within`` in the CLI) to
see how many trials it needs; hypervolume checkpoints and the best stay computed over the first
``trials`` trials only. A run that never reaches it counts as its length + 1 in the mean (the summary
says how many seeds reached it).

**Suggest time**: wall seconds of ``ask`` + ``suggest`` (what a search waits for), and the CPU
seconds of this process in the same span (``time.process_time``), which other processes loading the
machine do not inflate.
"""

from __future__ import annotations

import importlib
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import optuna
from optuna.trial import TrialState

from autopeft.dispatch import Dispatcher, Job
from autopeft.executors import InlineExecutor, Outcome
from autopeft.objective import ACCURACY
from autopeft.optim._factory import make_sampler
from autopeft.pareto import hypervolume, hypervolume_history
from autopeft.search_spaces.plan import Plan
from autopeft.search_spaces.space import SearchSpace

CHECKPOINTS = (10, 20, 40, 60)


class ProblemError(ValueError):
    """A problem that cannot be loaded; the message is one line for the user."""


@dataclass
class LoadedProblem:
    """A problem ready to benchmark: its space (bound to the model), floor and evaluate function."""

    name: str
    space: SearchSpace
    metric_floor: float
    evaluate: Callable[[dict[str, Any]], Any]
    make_for_seed: Callable[[int], LoadedProblem] | None = None

    def for_seed(self, seed: int) -> LoadedProblem:
        """The problem as seen on benchmark seed ``seed`` (synthetic noise depends on the seed)."""
        return self.make_for_seed(seed) if self.make_for_seed else self


def load_problem(spec: str, *, space: str | None = None, model: str | None = None) -> LoadedProblem:
    """``synthetic-peft`` (space default ``autopeft``, model BERT-base's config) or ``MODULE:ATTR``."""
    from autopeft.search_spaces import load_config, load_space, structure_of

    if spec == "synthetic-peft":
        from autopeft.optim.synthetic import SyntheticPeft

        if model is None:
            from transformers import BertConfig

            structure = structure_of(BertConfig())
        else:
            structure = structure_of(load_config(model))
        bound = load_space(space or "autopeft", structure)

        def make(seed: int) -> LoadedProblem:
            p = SyntheticPeft(bound, seed=seed, model=model)
            return LoadedProblem("synthetic-peft", bound, p.metric_floor, p.evaluate, make)

        return make(0)
    if ":" not in spec:
        raise ProblemError(f"--problem: expected synthetic-peft or MODULE:ATTR, got {spec!r}")
    module_name, attr = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProblemError(f"--problem: cannot import module {module_name!r} ({exc})") from None
    if not hasattr(module, attr):
        raise ProblemError(f"--problem: module {module_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    missing = [a for a in ("space", "model", "evaluate") if not hasattr(obj, a)]
    if missing:
        raise ProblemError(f"--problem: {spec} must have space, model and evaluate(plan_dict); missing {', '.join(missing)}")
    bound = load_space(space or obj.space, structure_of(load_config(model or obj.model)))
    return LoadedProblem(spec, bound, float(getattr(obj, "metric_floor", 0.0)), obj.evaluate)


# --- running --------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One sampler on one seed: every trial's point (None when it failed), ask+suggest wall and CPU seconds."""

    sampler: str
    seed: int
    points: list[tuple[float, float] | None]
    suggest_seconds: list[float]
    failed: int = 0
    suggest_cpu_seconds: list[float] = field(default_factory=list)

    def hypervolumes(self, reference: tuple[float, float]) -> list[float]:
        """Normalised hypervolume after each trial (see the module docstring)."""
        pts = [p if p is not None else (reference[0], reference[1]) for p in self.points]
        area = (1.0 - reference[0]) * reference[1]
        return [h / area for h in hypervolume_history(pts, reference)]


class SamplerRun:
    """A sampler's study on a problem, advanced one ask → evaluate → tell round at a time, into `run`.

    Trials go through `autopeft.dispatch` as a search's do, on an in-process executor (one at a time); a
    failed trial still uses a trial, and no number of failures stops the run.
    """

    def __init__(self, problem: LoadedProblem, sampler: str, seed: int, *, budget_pct: float,
                 n_startup_trials: int = 8, surrogate: str = "gp"):
        self.problem = problem
        self.budget_pct = budget_pct
        self.study = optuna.create_study(directions=[ACCURACY.direction, "minimize"], sampler=make_sampler(
            sampler, problem.space, budget_pct=budget_pct, metric_reference=problem.metric_floor,
            n_startup_trials=n_startup_trials, surrogate=surrogate, seed=seed))
        self.run = Run(sampler=sampler, seed=seed, points=[], suggest_seconds=[])
        self._dispatch = Dispatcher(InlineExecutor(partial(_scored, problem.evaluate)), to_outcome=_outcome,
                                    failures_allowed=None)
        self._asked: dict[int, tuple[optuna.Trial, Plan, float]] = {}  # number -> (trial, plan, params %)

    def steps(self, more: Callable[[], bool]) -> None:
        """Run trials while `more()` holds before each."""
        self._dispatch.run(lambda: self._next_job() if more() else None, self._tell)

    def step(self) -> None:
        """One trial, exactly as the search runner does it; ask + suggest are timed."""
        target = len(self.run.points) + 1
        self.steps(lambda: len(self.run.points) + len(self._asked) < target)

    def _next_job(self) -> Job:
        space, run = self.problem.space, self.run
        wall, cpu = time.perf_counter(), time.process_time()
        trial = self.study.ask()
        plan = space.suggest(trial)
        run.suggest_seconds.append(time.perf_counter() - wall)
        run.suggest_cpu_seconds.append(time.process_time() - cpu)
        self._asked[trial.number] = (trial, plan, space.count(plan).pct)
        return Job(trial.number, plan.to_dict())

    def _tell(self, outcome: Outcome) -> None:
        trial, plan, pct = self._asked.pop(outcome.number)
        if outcome.failure and outcome.failure["kind"] == "error":
            warnings.warn(f"{self.problem.name}: evaluate failed on {plan.summary()}: {outcome.failure['message']}",
                          stacklevel=2)
        if outcome.ok:
            self.study.tell(trial, [outcome.metric, pct])
            self.run.points.append((outcome.metric, pct))
        else:
            self.study.tell(trial, state=TrialState.FAIL)
            self.run.points.append(None)
            self.run.failed += 1

    def continue_until(self, target_hv: float, max_trials: int) -> bool:
        """Step until the normalised hypervolume reaches ``target_hv`` or the run has ``max_trials``
        trials; True when it reached it."""
        reference = (self.problem.metric_floor, self.budget_pct)
        area = (1.0 - reference[0]) * reference[1]

        def reached() -> bool:
            return hypervolume([p for p in self.run.points if p is not None], reference) / area >= target_hv - 1e-12

        self.steps(lambda: not reached() and len(self.run.points) < max_trials)
        return reached()


def _scored(evaluate: Callable[[dict[str, Any]], Any], plan: dict[str, Any]) -> Any:
    """A problem's score of `plan`, or the exception it raised (a user problem that cannot score this plan)."""
    try:
        return evaluate(plan)
    except Exception as exc:
        return exc


def _outcome(number: int, score: Any) -> Outcome:
    """A problem's score as an `Outcome`: ok when it is a finite number; an exception, None or NaN fail."""
    if isinstance(score, Exception):
        return Outcome(number, ok=False, metric=None, attrs={}, failure={"kind": "error", "message": str(score)})
    metric = None if score is None else float(score)
    if metric is None or not math.isfinite(metric):
        return Outcome(number, ok=False, metric=None, attrs={}, failure={"kind": "nan_metric", "message": f"{score!r}"})
    return Outcome(number, ok=True, metric=metric, attrs={})


def run_sampler(problem: LoadedProblem, sampler: str, seed: int, *, trials: int, budget_pct: float,
                n_startup_trials: int = 8, surrogate: str = "gp") -> Run:
    """Run ``trials`` ask → evaluate → tell rounds of ``sampler`` on ``problem`` with ``seed``."""
    runner = SamplerRun(problem, sampler, seed, budget_pct=budget_pct, n_startup_trials=n_startup_trials,
                        surrogate=surrogate)
    for _ in range(trials):
        runner.step()
    return runner.run


# --- summary ----------------------------------------------------------------------------------------------
@dataclass
class SamplerSummary:
    sampler: str
    hv_mean: dict[int, float]
    hv_sd: dict[int, float]
    trials_to_95_mean: float
    trials_to_95: list[int | None]
    reached_95: int
    seeds: int
    median_suggest_s: float
    median_suggest_s_last10: float
    failed: int = 0
    median_suggest_cpu_s: float | None = None
    median_suggest_cpu_s_last10: float | None = None


@dataclass
class BenchmarkResult:
    problem: str
    space: str
    budget_pct: float
    metric_floor: float
    trials: int
    seeds: list[int]
    samplers: list[str]
    checkpoints: list[int]
    summaries: list[SamplerSummary]
    curves: dict[str, list[list[float]]] = field(default_factory=dict)  # sampler → per seed → hv per trial
    command: str = ""
    runs: list[Run] = field(default_factory=list)  # the raw runs, so results can be merged and re-summarised

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_reaching(curve: Sequence[float], target: float) -> int | None:
    return next((i + 1 for i, h in enumerate(curve) if h >= target - 1e-12), None)


def best_per_seed(runs: Sequence[Run], reference: tuple[float, float], trials: int) -> dict[int, float]:
    """Per seed: the best normalised hypervolume any sampler reached within its first ``trials`` trials."""
    best: dict[int, float] = {}
    for r in runs:
        hv = r.hypervolumes(reference)[:trials]
        best[r.seed] = max(best.get(r.seed, 0.0), hv[-1] if hv else 0.0)
    return best


def summarise(runs: Sequence[Run], *, problem: str, space: str, budget_pct: float, metric_floor: float, trials: int,
              n_startup_trials: int = 8, checkpoints: Sequence[int] = CHECKPOINTS) -> BenchmarkResult:
    """Hypervolume at checkpoints (mean ± sd over seeds), trials to 95% of the best, suggest times.

    Runs may be longer than ``trials`` (continued to see when they reach 95%): checkpoints, the best
    and the suggest times use the first ``trials`` trials, trials to 95% the whole run.
    """
    reference = (metric_floor, budget_pct)
    samplers = list(dict.fromkeys(r.sampler for r in runs))
    seeds = sorted({r.seed for r in runs})
    curves = {s: {r.seed: r.hypervolumes(reference) for r in runs if r.sampler == s} for s in samplers}
    best = best_per_seed(runs, reference, trials)
    checks = [c for c in checkpoints if c <= trials] or [trials]
    summaries = []
    for s in samplers:
        mine = [r for r in runs if r.sampler == s]
        at = {c: [curves[s][r.seed][c - 1] for r in mine] for c in checks}
        reach = [_first_reaching(curves[s][r.seed], 0.95 * best[r.seed]) for r in mine]

        times = {(attr, last): _median_time(mine, attr, trials, skip=n_startup_trials, last=last)
                 for attr in ("suggest_seconds", "suggest_cpu_seconds") for last in (False, True)}
        summaries.append(SamplerSummary(
            sampler=s,
            hv_mean={c: statistics.fmean(v) for c, v in at.items()},
            hv_sd={c: statistics.stdev(v) if len(v) > 1 else 0.0 for c, v in at.items()},
            trials_to_95_mean=statistics.fmean(n if n is not None else len(r.points) + 1 for n, r in zip(reach, mine, strict=True)),
            trials_to_95=reach,
            reached_95=sum(n is not None for n in reach),
            seeds=len(mine),
            median_suggest_s=times["suggest_seconds", False],
            median_suggest_s_last10=times["suggest_seconds", True],
            failed=sum(r.failed for r in mine),
            median_suggest_cpu_s=times["suggest_cpu_seconds", False],
            median_suggest_cpu_s_last10=times["suggest_cpu_seconds", True],
        ))
    return BenchmarkResult(
        problem=problem, space=space, budget_pct=budget_pct, metric_floor=metric_floor, trials=trials, seeds=seeds,
        samplers=samplers, checkpoints=checks, summaries=summaries,
        curves={s: [curves[s][seed][:trials] for seed in sorted(curves[s])] for s in samplers},
        runs=list(runs),
    )


def _median_time(runs: Sequence[Run], attr: str, trials: int, *, skip: int, last: bool) -> float | None:
    """Median of a per-trial time list over the first ``trials`` trials of ``runs``: of the last 10 of each
    run (``last``), or of all but the first ``skip`` (start-up) ones; None when nothing was timed."""
    per_run = [getattr(r, attr)[:trials] for r in runs]
    if last:
        values = [t for times in per_run for t in times[-10:]]
    else:
        values = [t for times in per_run for t in times[skip:]] or [t for times in per_run for t in times]
    return statistics.median(values) if values else None


def runs_from_json(data: dict[str, Any]) -> list[Run]:
    """The raw runs stored in a result JSON (`BenchmarkResult.to_dict()`)."""
    return [Run(sampler=r["sampler"], seed=r["seed"], points=[tuple(p) if p is not None else None for p in r["points"]],
                suggest_seconds=list(r["suggest_seconds"]), failed=r.get("failed", 0),
                suggest_cpu_seconds=list(r.get("suggest_cpu_seconds", []))) for r in data.get("runs", [])]


# --- tables and figures (data only; drawing in `figure`) ------------------------------------------------------
def table_rows(result: BenchmarkResult) -> list[dict[str, Any]]:
    """One flat row per sampler (the CSV and the printed table)."""
    rows = []
    for s in result.summaries:
        row: dict[str, Any] = {"sampler": s.sampler}
        for c in result.checkpoints:
            row[f"hv@{c}_mean"] = round(s.hv_mean[c], 4)
            row[f"hv@{c}_sd"] = round(s.hv_sd[c], 4)
        row["trials_to_95_mean"] = round(s.trials_to_95_mean, 1)
        row["reached_95"] = f"{s.reached_95}/{s.seeds}"
        row["median_suggest_s"] = round(s.median_suggest_s, 3)
        row["median_suggest_s_last10"] = round(s.median_suggest_s_last10, 3)
        for key in ("median_suggest_cpu_s", "median_suggest_cpu_s_last10"):
            value = getattr(s, key)
            row[key] = round(value, 3) if value is not None else None
        row["failed_trials"] = s.failed
        rows.append(row)
    return rows


def curve_bands(result: BenchmarkResult) -> dict[str, dict[str, list[float]]]:
    """Per sampler: mean and mean ± sd of normalised hypervolume after each trial (plot data)."""
    out = {}
    for s, per_seed in result.curves.items():
        n = min(len(c) for c in per_seed)
        mean = [statistics.fmean(c[i] for c in per_seed) for i in range(n)]
        sd = [statistics.stdev([c[i] for c in per_seed]) if len(per_seed) > 1 else 0.0 for i in range(n)]
        out[s] = {"trial": list(range(1, n + 1)), "mean": mean,
                  "lower": [m - d for m, d in zip(mean, sd, strict=True)],
                  "upper": [m + d for m, d in zip(mean, sd, strict=True)]}
    return out


def figure(result: BenchmarkResult):
    """Plotly figure of the hypervolume curves (mean line, ± sd band per sampler)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for k, (s, band) in enumerate(curve_bands(result).items()):
        color = palette[k % len(palette)]
        fig.add_trace(go.Scatter(x=band["trial"] + band["trial"][::-1], y=band["upper"] + band["lower"][::-1],
                                 fill="toself", line={"width": 0}, fillcolor=color, opacity=0.15,
                                 showlegend=False, hoverinfo="skip", legendgroup=s))
        fig.add_trace(go.Scatter(x=band["trial"], y=band["mean"], name=s, line={"color": color}, legendgroup=s))
    fig.update_layout(
        title=f"{result.problem} · space {result.space} · budget {result.budget_pct:g}% · "
              f"{len(result.seeds)} seeds (mean ± sd)",
        xaxis_title="trial", yaxis_title="normalised hypervolume", template="plotly_white",
    )
    return fig
