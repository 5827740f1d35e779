"""Long-lived Ray actors that evaluate trials, and the pool that dispatches to them.

Each actor builds its evaluator once (`evaluator_factory()`), so per-process caches (tokenizer,
tokenized data, base weights) survive across trials. One GPU per actor where the cluster has GPUs
(fractions allowed), CPU slots otherwise. A dead actor (killed process, lost node) is replaced and
its trial reported as `WorkerLost`, for the runner to retry elsewhere. No database here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerLost:
    """The process evaluating a trial died before it answered."""

    message: str


class TrialActor:
    """Ray actor body: evaluates plans with one evaluator built at start-up."""

    def __init__(self, evaluator_factory: Callable[[], Callable[[Any], Any]], num_threads: int | None = None):
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self._evaluate = evaluator_factory()

    def evaluate(self, plan: Any, fidelity: dict[str, Any] | None = None) -> Any:
        """`evaluate(plan)`, or `evaluate(plan, fidelity)` for a run with fidelity overrides."""
        return self._evaluate(plan) if fidelity is None else self._evaluate(plan, fidelity)

    def where(self) -> dict[str, Any]:
        import ray

        return {"host": socket.gethostname(), "pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}


class RayPool:
    """`workers` actors on a local or remote Ray; `submit`/`poll` as the runner's executor protocol."""

    def __init__(
        self,
        evaluator_factory: Callable[[], Callable[[Any], Any]],
        workers: int,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 1.0,
        init_kwargs: dict[str, Any] | None = None,
    ):
        import ray

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address or os.environ.get("RAY_ADDRESS"), include_dashboard=False,
                     logging_level="ERROR", log_to_driver=False, **(init_kwargs or {}))
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        self._options = {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial if has_gpus else 0,
                         "max_restarts": 0, "max_concurrency": 1}
        self._factory = evaluator_factory
        self._threads = max(1, int(cpus_per_trial))
        self._remote = ray.remote(TrialActor)
        self.capacity = workers
        self._idle = [self._new_actor() for _ in range(workers)]
        self._queue: list[tuple[int, Any, dict[str, Any] | None]] = []  # (number, plan, fidelity overrides)
        self._inflight: dict[Any, tuple[int, Any, Any]] = {}  # ObjectRef -> (number, plan, actor)

    def _new_actor(self):
        return self._remote.options(**self._options).remote(self._factory, self._threads)

    def submit(self, number: int, plan: Any, fidelity: dict[str, Any] | None = None) -> None:
        """Queue a plan; `fidelity` overrides the evaluator's fidelity for this run (successive halving)."""
        self._queue.append((number, plan, fidelity))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            number, plan, fidelity = self._queue.pop(0)
            actor = self._idle.pop()
            self._inflight[actor.evaluate.remote(plan, fidelity)] = (number, plan, actor)

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        """Finished trials as (number, result or `WorkerLost`); waits up to `timeout` s for the first."""
        if not self._inflight:
            return []
        ready, _ = self._ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        if ready:
            more, _ = self._ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=0)
            ready = list(dict.fromkeys([*ready, *more]))
        finished = []
        for ref in ready:
            number, _plan, actor = self._inflight.pop(ref)
            try:
                finished.append((number, self._ray.get(ref)))
                self._idle.append(actor)
            except (self._ray.exceptions.RayActorError, self._ray.exceptions.WorkerCrashedError,
                    self._ray.exceptions.NodeDiedError) as exc:
                finished.append((number, WorkerLost(f"worker died: {type(exc).__name__}")))
                self._idle.append(self._new_actor())
        self._dispatch()
        return finished

    def where(self) -> list[dict[str, Any]]:
        """Host, pid and node of every idle actor (for tests and diagnostics)."""
        return self._ray.get([a.where.remote() for a in self._idle])

    def cancel_all(self) -> list[int]:
        numbers = [n for n, _, _ in self._queue] + [n for n, _, _ in self._inflight.values()]
        for ref in self._inflight:
            self._ray.cancel(ref, force=True)
        self._queue.clear()
        self._inflight.clear()
        return numbers

    def close(self) -> None:
        for actor in self._idle:
            self._ray.kill(actor)
        self._idle.clear()
        if self._owns_ray:
            self._ray.shutdown()
