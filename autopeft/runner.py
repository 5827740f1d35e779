"""The ask → dispatch → tell loop: the only module that joins optimiser, workers and study.

`Runner.run()` keeps up to `executor.capacity` trials running: it asks the study (its sampler sees
the RUNNING trials as pending points), decodes the plan, records the plan and its exact parameter
count on the trial, hands it to the executor, and tells the study each result. Completed trials
count towards `spec.execution.trials`; failed ones are recorded with their reason and do not.
Stale RUNNING trials left by a dead process are failed and their configurations retried (up to
`execution.max_retries`). On Ctrl-C every running trial is recorded as failed ("interrupted").
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from autopeft.pareto import hypervolume, pareto_indices
from autopeft.search_spaces.counting import ParamCount
from autopeft.search_spaces.plan import Plan
from autopeft.search_spaces.space import SearchSpace
from autopeft.spec import SearchSpec
from autopeft.study import completed, fail_stale_trials, heartbeat, live_drivers, points, reference_point
from autopeft.workers.ray_pool import WorkerLost


class SearchError(RuntimeError):
    """The search cannot go on (e.g. every trial fails); the message is one line."""


@dataclass(frozen=True)
class Outcome:
    """What a worker reports for one trial: `values` (metric, params %) or a failure, and attrs to store."""

    number: int
    ok: bool
    metric: float | None
    attrs: dict[str, Any]
    failure: dict[str, str] | None = None
    lost: bool = False  # the worker died: retry the configuration


class Executor(Protocol):
    """Runs trials somewhere (in-process, Ray actors).

    `submit` takes the plan in its `autopeft-plan/v1` dict form (cheap to send, no imports needed);
    `poll` returns finished trials as (number, workers `TrialResult` or `WorkerLost`).
    """

    capacity: int

    def submit(self, number: int, plan: dict[str, Any]) -> None: ...

    def poll(self, timeout: float) -> list[tuple[int, Any]]: ...

    def cancel_all(self) -> list[int]: ...


Evaluate = Callable[[dict[str, Any]], Any]  # autopeft-plan/v1 dict -> workers TrialResult


def outcome_from_result(number: int, result: Any, metric: str = "auto") -> Outcome:
    """Turn a workers `TrialResult` (or `WorkerLost`) into an `Outcome`; a non-finite metric is a failure.

    `metric` names the objective among the result's `metrics`; `auto` takes the task's official one.
    """
    if isinstance(result, WorkerLost):
        return Outcome(number=number, ok=False, metric=None, attrs={},
                       failure={"kind": "worker_lost", "message": result.message}, lost=True)
    data = result.to_dict()
    metric = data.get("metric") if metric == "auto" else (data.get("metrics") or {}).get(metric)
    failure = data.get("failure")
    ok = data.get("status") == "ok" and metric is not None and math.isfinite(metric)
    if not ok and failure is None:
        failure = {"kind": "nan_metric", "message": f"metric is {metric!r}"}
    return Outcome(number=number, ok=ok, metric=metric if ok else None, attrs=data, failure=None if ok else failure)


class InlineExecutor:
    """Evaluates one trial at a time in this process (no Ray); `poll` runs the next queued trial."""

    capacity = 1

    def __init__(self, evaluate: Evaluate):
        self._evaluate = evaluate
        self._queue: list[tuple[int, dict[str, Any]]] = []

    def submit(self, number: int, plan: dict[str, Any]) -> None:
        self._queue.append((number, plan))

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        if not self._queue:
            return []
        number, plan = self._queue.pop(0)
        return [(number, self._evaluate(plan))]

    def cancel_all(self) -> list[int]:
        numbers = [n for n, _ in self._queue]
        self._queue.clear()
        return numbers


@dataclass
class Progress:
    """Live figures of a search, for the CLI display."""

    total: int
    completed: int = 0
    running: int = 0
    failed: int = 0
    best_metric: float | None = None
    hypervolume: float = 0.0
    pareto_size: int = 0
    started: float = field(default_factory=time.monotonic)
    last_event: str = ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def eta(self, done_this_run: int) -> float | None:
        remaining = self.total - self.completed
        return self.elapsed / done_this_run * remaining if done_this_run else None


@dataclass
class _Running:
    trial: optuna.Trial
    plan: Plan
    count: ParamCount
    submitted: float  # perf_counter() when handed to the executor


class Runner:
    """Drives one study to `spec.execution.trials` completed trials."""

    def __init__(self, spec: SearchSpec, study: optuna.Study, space: SearchSpace, executor: Executor,
                 on_progress: Callable[[Progress], None] | None = None):
        self.spec = spec
        self.study = study
        self.space = space
        self.executor = executor
        self.on_progress = on_progress or (lambda progress: None)
        self._running: dict[int, _Running] = {}
        self._asked: optuna.Trial | None = None  # asked, not yet in _running
        self.driver = uuid.uuid4().hex[:12]  # this search process, for heartbeats and stale-trial recovery
        self._points: list[tuple[float, float]] = []  # (metric, params %) of completed trials
        self.done_this_run = 0  # completed by this process (for the ETA)
        self.turnaround: dict[int, float] = {}  # trial number -> s from submit to recorded (benchmarks)
        self.progress = Progress(total=spec.execution.trials)

    # --- setup -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Fail trials left RUNNING by a dead process and enqueue their configurations again.

        Trials of other live search processes on the same study (recent heartbeat) are left alone.
        """
        live = live_drivers(self.study, stale_after=3 * self.spec.execution.heartbeat_seconds)
        stale = fail_stale_trials(self.study, "the process running this trial stopped before it finished", live)
        for trial in stale:
            attempt = int(trial.user_attrs.get("attempt", 0)) + 1
            if attempt <= self.spec.execution.max_retries:
                self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "attempt": attempt})
        return len(stale)

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> Progress:
        self._load()
        consecutive_failures = 0
        stop_beating = self._start_heartbeat()
        try:
            while self._completed_in_db() < self.spec.execution.trials:
                self._fill()
                if not self._running:
                    break
                for number, payload in self.executor.poll(timeout=1.0):
                    outcome = outcome_from_result(number, payload, self.spec.objectives.metric)
                    self._record(outcome)
                    consecutive_failures = 0 if outcome.ok else consecutive_failures + 1
                    if consecutive_failures >= 5 + self.executor.capacity:
                        reason = (outcome.failure or {}).get("message", "unknown")
                        raise SearchError(f"{consecutive_failures} trials in a row failed; last: {reason}")
        except KeyboardInterrupt:
            self._abandon("interrupted by the user (Ctrl-C)")
            raise
        except BaseException:
            self._abandon("the search stopped with an error")
            raise
        finally:
            stop_beating.set()
        return self.progress

    def _start_heartbeat(self) -> threading.Event:
        """Beat now and every `execution.heartbeat_seconds` from a daemon thread until the event is set."""
        stop = threading.Event()
        heartbeat(self.study, self.driver)

        def beat() -> None:
            while not stop.wait(self.spec.execution.heartbeat_seconds):
                heartbeat(self.study, self.driver)

        threading.Thread(target=beat, name="autopeft-heartbeat", daemon=True).start()
        return stop

    def _fill(self) -> None:
        target = self.spec.execution.trials
        storage, study_id = self.study._storage, self.study._study_id
        while len(self._running) < self.executor.capacity and (
            storage.get_n_trials(study_id, state=TrialState.COMPLETE)
            + storage.get_n_trials(study_id, state=TrialState.RUNNING) < target
        ):
            trial = self._asked = self.study.ask()  # failed by _abandon if interrupted before it is registered
            plan = self.space.suggest(trial)
            count = self.space.count(plan)
            infeasible = self._infeasible(plan, count)
            if infeasible:  # only samplers without the feasibility wrapper get here
                trial.set_user_attr("failure", {"kind": "infeasible", "message": infeasible})
                self.study.tell(trial, state=TrialState.FAIL)
                self.progress.failed += 1
                self._asked = None
                continue
            for key, value in (("plan", plan.to_dict()), ("plan_summary", plan.summary()), ("params", count.params),
                               ("params_pct", count.pct), ("driver", self.driver)):
                trial.set_user_attr(key, value)
            self._running[trial.number] = _Running(trial, plan, count, time.perf_counter())
            self._asked = None
            self.executor.submit(trial.number, plan.to_dict())
        self.progress.running = len(self._running)

    def _infeasible(self, plan: Plan, count: ParamCount) -> str | None:
        budget_pct, budget_abs = self.spec.budget.max_params_pct, self.spec.budget.max_params
        if not self.space.is_valid_plan(plan):
            return f"invalid configuration: {plan.summary()}"
        if (budget_pct is not None and count.pct > budget_pct) or (budget_abs is not None and count.params > budget_abs):
            return f"over budget: {count.pct:.4f}% / {count.params:,} params"
        return None

    def _record(self, outcome: Outcome) -> None:
        running = self._running.pop(outcome.number, None)
        if running is None:  # not ours (already abandoned)
            return
        trial = running.trial
        if outcome.attrs:
            trial.set_user_attr("result", outcome.attrs)
        if outcome.ok:
            self.study.tell(trial, [outcome.metric, running.count.pct])
            self._points.append((outcome.metric, running.count.pct))
            self.done_this_run += 1
            self.turnaround[trial.number] = time.perf_counter() - running.submitted
            self.progress.last_event = f"trial {trial.number}: {outcome.metric:.4f} at {running.count.pct:.4f}% params"
        else:
            trial.set_user_attr("failure", outcome.failure)
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            self.progress.failed += 1
            self.progress.last_event = f"trial {trial.number} failed: {(outcome.failure or {}).get('message', '')}"
            attempt = int(trial.user_attrs.get("attempt", 0)) + 1
            if outcome.lost and attempt <= self.spec.execution.max_retries:
                self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "attempt": attempt})
        self._refresh()

    def _abandon(self, reason: str) -> None:
        self.executor.cancel_all()
        trials = [r.trial for r in self._running.values()] + ([self._asked] if self._asked is not None else [])
        for trial in trials:
            trial.set_user_attr("failure", {"kind": "interrupted", "message": reason})
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        self._running.clear()
        self._asked = None

    def _load(self) -> None:
        """Read the study once; afterwards progress is kept up to date from this process's results."""
        trials = self.study.get_trials(deepcopy=False)
        self._points = points([t for t in trials if t.state == TrialState.COMPLETE])
        self.progress.failed = sum(t.state == TrialState.FAIL for t in trials)
        self._refresh()

    def _completed_in_db(self) -> int:
        """Completed trials in the DB, by every process working on this study (one COUNT query)."""
        return self.study._storage.get_n_trials(self.study._study_id, state=TrialState.COMPLETE)

    def _refresh(self) -> None:
        ref = reference_point(self.spec)
        within = [m for m, pct in self._points if pct <= ref[1]]
        p = self.progress
        p.completed = len(self._points)
        p.running = len(self._running)
        p.best_metric = max(within) if within else None
        p.hypervolume = hypervolume(self._points, ref)
        p.pareto_size = len(pareto_indices(self._points))
        self.on_progress(p)


@dataclass
class SearchSession:
    """A study ready to run: the runner, and what the CLI reports before and after."""

    spec: SearchSpec
    study: optuna.Study
    space: SearchSpace
    runner: Runner
    recovered: int

    def run(self) -> Progress:
        return self.runner.run()

    def close(self) -> None:
        close = getattr(self.runner.executor, "close", None)
        if close is not None:
            close()

    def best_under(self, max_pct: float) -> int | None:
        """Number of the best completed trial with at most `max_pct` % trainable params."""
        eligible = [t for t in completed(self.study) if t.values[1] <= max_pct]
        return max(eligible, key=lambda t: t.values[0]).number if eligible else None


def check_budget(space: SearchSpace, spec: SearchSpec) -> None:
    """`SearchError` when even the smallest configuration of the space exceeds the budget."""
    (plan, smallest), _ = space.param_range()
    budget_pct, budget_abs = spec.budget.max_params_pct, spec.budget.max_params
    if (budget_pct is not None and smallest.pct > budget_pct) or (budget_abs is not None and smallest.params > budget_abs):
        raise SearchError(
            f"budget.max_params_pct: the budget ({budget_pct}% / {budget_abs} params) is below the smallest "
            f"configuration of space {space.name!r} ({smallest.pct:.4g}%, {smallest.params:,} params: {plan.summary()}); "
            "raise the budget or pick a smaller space"
        )


def prepare_search(spec: SearchSpec, name: str, executor: Executor | None = None) -> SearchSession:
    """Open or create study `name`, check model, space, budget and data, and build the runner.

    Everything a user can get wrong is checked here, before any training starts.
    """
    from autopeft.optim import make_sampler
    from autopeft.search_spaces import load_config, load_space, structure_of
    from autopeft.study import create_study, load_study, open_storage, save_spec, study_names
    from autopeft.workers import check_task

    storage = open_storage(spec.storage.url)
    space = load_space(spec.space, structure_of(load_config(spec.model)))
    check_budget(space, spec)
    data = check_task(spec.model, spec.task, spec.fidelity, data_dir=spec.data_dir)
    if spec.objectives.metric not in ("auto", *data.task.metrics):
        raise SearchError(f"objectives.metric: expected auto or one of {', '.join(data.task.metrics)} for "
                          f"{spec.task}, got {spec.objectives.metric!r}")
    sampler = make_sampler(
        spec.optimizer.sampler, space, budget_pct=spec.budget.max_params_pct, max_params=spec.budget.max_params,
        metric_floor=spec.objectives.metric_floor, n_startup_trials=spec.optimizer.n_startup_trials,
        surrogate=spec.optimizer.surrogate, seed=spec.optimizer.seed,
    )
    new = name not in study_names(storage)
    if new:
        try:
            create_study(storage, name, spec)
        except optuna.exceptions.DuplicatedStudyError:
            new = False  # another search process created it a moment ago: join it
    study = load_study(storage, name, sampler=sampler)
    if new and spec.warm_start:
        warm_start(study, load_study(storage, spec.warm_start), space)
    save_spec(study, spec)
    if executor is None:
        executor = make_executor(spec)
    runner = Runner(spec, study, space, executor)
    return SearchSession(spec=spec, study=study, space=space, runner=runner, recovered=runner.recover())


def warm_start(study: optuna.Study, source: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the Pareto-optimal configurations of `source` to be evaluated first in `study`.

    The source must use the same space on a model with the same layer count (e.g. the same model
    family on another task, as in the AutoPEFT paper's transfer experiments). Returns how many.
    """
    from autopeft.study import pareto_trials

    dims = space.distributions()
    front = pareto_trials(source)
    for trial in front:
        choices = {k: getattr(d, "choices", None) or range(d.low, d.high + 1) for k, d in dims.items()}
        if set(trial.params) != set(dims) or any(v not in choices[k] for k, v in trial.params.items()):
            raise SearchError(f"warm_start: study {source.study_name!r} was searched in another space or on a model "
                              f"with another layer count; warm-start from a study of space {space.name!r}")
    for trial in front:
        study.enqueue_trial(trial.params, user_attrs={"warm_start_from": f"{source.study_name}#{trial.number}"})
    return len(front)


def make_executor(spec: SearchSpec) -> Executor:
    """Ray actors (local Ray, or the cluster at `execution.ray_address`), or in-process when `inline`."""
    from functools import partial

    evaluate = partial(evaluate_plan_dict, spec.model, spec.task, spec.fidelity.model_dump(), spec.data_dir)
    ex = spec.execution
    if ex.executor == "inline":
        return InlineExecutor(evaluate)
    from autopeft.workers.ray_pool import RayPool

    return RayPool(partial(_identity, evaluate), ex.workers, address=ex.ray_address,
                   cpus_per_trial=ex.cpus_per_trial, gpus_per_trial=ex.gpus_per_trial)


def evaluate_plan_dict(model: str, task: str, fidelity: dict[str, Any], data_dir: str | None, plan: dict[str, Any]):
    """Worker-side entry point: rebuild the plan and fidelity from plain data and evaluate."""
    from autopeft.spec import FidelitySpec
    from autopeft.workers import evaluate_plan

    return evaluate_plan(model, task, Plan.from_dict(plan), FidelitySpec(**fidelity), data_dir=data_dir)


def _identity(value: Any) -> Any:
    """Evaluator factory for Ray actors: the evaluator is picklable as it is."""
    return value
