"""Executors: where trials run (in this process, or Ray actors), and what comes back from them.

An `Executor` takes a trial's plan (its `autopeft-plan/v1` dict, cheap to send) with optional
fidelity overrides and returns finished trials as (number, workers `TrialResult` or `WorkerLost`);
`outcome_from_result` turns those into an `Outcome`, which `autopeft.dispatch` hands to the runner,
`autopeft.refine_run` or the optimiser benchmark to record.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from autopeft.search_spaces.plan import Plan
from autopeft.spec import SearchSpec
from autopeft.workers.ray_pool import WorkerLost


@dataclass(frozen=True)
class Outcome:
    """What a worker reports for one trial.

    `ok`: a finite `metric` came back (the objective's value; None when not ok — the caller adds the
    params % it knows); else `failure` = {kind, message}, and `lost` when the worker died (retry the
    configuration). `attrs`: the worker's `TrialResult` as a dict ({} when lost), to store on the trial.
    """

    number: int
    ok: bool
    metric: float | None
    attrs: dict[str, Any]
    failure: dict[str, str] | None = None
    lost: bool = False  # the worker died: retry the configuration


class Executor(Protocol):
    """Runs trials somewhere (in-process, Ray actors).

    `submit` takes the plan in its `autopeft-plan/v1` dict form (cheap to send, no imports needed)
    and, for successive halving only, `fidelity`: overrides of the spec's fidelity for this run (e.g.
    ``{"max_steps": 30}``), handed to the evaluator as a second argument;
    `poll` returns finished trials as (number, workers `TrialResult` or `WorkerLost`); `cancel_all`
    drops queued and running trials (returns their numbers); `close` releases the workers (the executor
    is not used after it).
    """

    capacity: int

    def submit(self, number: int, plan: dict[str, Any], fidelity: dict[str, Any] | None = None) -> None: ...

    def poll(self, timeout: float) -> list[tuple[int, Any]]: ...

    def cancel_all(self) -> list[int]: ...

    def close(self) -> None: ...


Evaluate = Callable[..., Any]  # (autopeft-plan/v1 dict[, fidelity overrides dict]) -> workers TrialResult


def call_evaluator(evaluate: Evaluate, plan: dict[str, Any], fidelity: dict[str, Any] | None) -> Any:
    """`evaluate(plan)`, or `evaluate(plan, fidelity)` when the run has fidelity overrides."""
    return evaluate(plan) if fidelity is None else evaluate(plan, fidelity)


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
        self._queue: list[tuple[int, dict[str, Any], dict[str, Any] | None]] = []

    def submit(self, number: int, plan: dict[str, Any], fidelity: dict[str, Any] | None = None) -> None:
        self._queue.append((number, plan, fidelity))

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        if not self._queue:
            return []
        number, plan, fidelity = self._queue.pop(0)
        return [(number, call_evaluator(self._evaluate, plan, fidelity))]

    def cancel_all(self) -> list[int]:
        numbers = [n for n, _, _ in self._queue]
        self._queue.clear()
        return numbers

    def close(self) -> None:
        """Nothing to release: queued trials are dropped."""
        self._queue.clear()


def make_executor(spec: SearchSpec, evaluate: Evaluate | None = None) -> Executor:
    """Ray actors (local Ray, or the cluster at `execution.ray_address`), or in-process when `inline`.

    `evaluate` (picklable; default: `evaluate_plan_dict` at `spec.fidelity`) is what each worker runs
    on a submitted payload; `autopeft.refine_run` passes its own to vary the fidelity per run.
    """
    from functools import partial

    if evaluate is None:
        evaluate = partial(evaluate_plan_dict, spec.model, spec.task, spec.fidelity.model_dump(), spec.data_dir)
    ex = spec.execution
    if ex.executor == "inline":
        return InlineExecutor(evaluate)
    from autopeft.workers.ray_pool import RayPool

    return RayPool(partial(_identity, evaluate), ex.workers, address=ex.ray_address,
                   cpus_per_trial=ex.cpus_per_trial, gpus_per_trial=ex.gpus_per_trial)


def evaluate_plan_dict(model: str, task: str, fidelity: dict[str, Any], data_dir: str | None, plan: dict[str, Any],
                       overrides: dict[str, Any] | None = None):
    """Worker-side entry point: rebuild the plan and fidelity (with this run's `overrides`) and evaluate."""
    from autopeft.spec import FidelitySpec
    from autopeft.workers import evaluate_plan

    return evaluate_plan(model, task, Plan.from_dict(plan), FidelitySpec(**{**fidelity, **(overrides or {})}),
                         data_dir=data_dir)


def _identity(value: Any) -> Any:
    """Evaluator factory for Ray actors: the evaluator is picklable as it is."""
    return value
