"""Long-lived Ray actors that evaluate trials, and the pool that dispatches to them.

Each actor builds its evaluator once (`evaluator_factory()`), so per-process caches (tokenizer,
tokenized data, base weights) survive across trials. One GPU per actor where the cluster has GPUs
(fractions allowed), CPU slots otherwise. A dead actor (killed process, lost node) is replaced and
its trial reported as `WorkerLost`, for the runner to retry elsewhere. No database here.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WorkerLost:
    """The process evaluating a trial died before it answered."""

    message: str


class RayUnavailable(RuntimeError):
    """Ray cannot run this search (no cluster at the address, too few CPU slots); one line for the user."""


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """Raise `RayUnavailable` (one line) when nothing listens at a Ray address (`HOST:PORT` or `ray://HOST:PORT`).

    Without this, `ray.init` retries for minutes and prints a log line every few seconds. `None`, empty
    and `auto` are left to Ray (local Ray, or the cluster this node belongs to).
    """
    if not address or address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
    default_port = 10001 if address.startswith("ray://") else 6379
    try:
        port_number = int(port) if port else default_port
    except ValueError:
        raise RayUnavailable(f"--ray-address {address}: expected HOST:PORT (e.g. 10.0.0.1:6379)") from None
    try:
        socket.create_connection((host.strip("[]"), port_number), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__.lower()
        raise RayUnavailable(
            f"no Ray cluster at {address} ({reason}); start one with `ray start --head --port={port_number}` "
            "on the head node, or leave out --ray-address (and RAY_ADDRESS) to run Ray on this machine"
        ) from None


@contextlib.contextmanager
def _stderr_kept_on_success(enabled: bool = True):
    """Hold what this process writes to file descriptor 2 (Ray's C++ core logs a line a second while it
    fails to reach a cluster); write it out only if the block succeeds. Used only when joining an existing
    cluster, where no child process inherits the descriptor."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        ok = False
        try:
            yield
            ok = True
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if ok:
                held.seek(0)
                os.write(2, held.read())


def one_line_reason(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]


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
            address = address or os.environ.get("RAY_ADDRESS") or None
            check_ray_address(address)
            try:
                with _stderr_kept_on_success(enabled=bool(address)):
                    ray.init(address=address, include_dashboard=False,
                             logging_level="ERROR", log_to_driver=False, **(init_kwargs or {}))
            except (ConnectionError, RuntimeError, TimeoutError) as exc:
                if not address:
                    raise
                raise RayUnavailable(
                    f"cannot join the Ray cluster at {address} ({one_line_reason(exc)}); check the address "
                    "(`ray status` on the head node prints it), or leave out --ray-address to run Ray on this machine"
                ) from None
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        if self._owns_ray and not address:
            self._check_local_fit(workers, cpus_per_trial)
        self._options = {"num_cpus": cpus_per_trial, "num_gpus": gpus_per_trial if has_gpus else 0,
                         "max_restarts": 0, "max_concurrency": 1}
        self._factory = evaluator_factory
        self._threads = max(1, int(cpus_per_trial))
        self._remote = ray.remote(TrialActor)
        self.capacity = workers
        self._idle = [self._new_actor() for _ in range(workers)]
        self._queue: list[tuple[int, Any, dict[str, Any] | None]] = []  # (number, plan, fidelity overrides)
        self._inflight: dict[Any, tuple[int, Any, Any]] = {}  # ObjectRef -> (number, plan, actor)
        self._replace = 0  # actors killed by cancel_all, started again when trials come

    def _check_local_fit(self, workers: int, cpus_per_trial: float) -> None:
        """On a Ray this pool started, `RayUnavailable` when the workers do not all fit: the extra actors
        would wait for CPU slots that the long-lived others never free, and their trials would never run."""
        cpus = self._ray.cluster_resources().get("CPU", 0)
        if workers * cpus_per_trial > cpus + 1e-9:
            self._ray.shutdown()
            most = int(cpus // cpus_per_trial)
            raise RayUnavailable(
                f"execution.workers: {workers} workers x {cpus_per_trial:g} CPU slots (execution.cpus_per_trial) need "
                f"{workers * cpus_per_trial:g} CPUs, this machine's Ray has {cpus:g}; use --workers {max(most, 1)}"
                + ("" if most else f" and execution.cpus_per_trial: {cpus:g}")
            )

    def _new_actor(self):
        return self._remote.options(**self._options).remote(self._factory, self._threads)

    def submit(self, number: int, plan: Any, fidelity: dict[str, Any] | None = None) -> None:
        """Queue a plan; `fidelity` overrides the evaluator's fidelity for this run (successive halving)."""
        self._queue.append((number, plan, fidelity))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and self._replace and len(self._idle) < len(self._queue):
            self._idle.append(self._new_actor())
            self._replace -= 1
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
        """Drop queued trials and stop running ones; returns their numbers.

        Ray cannot force-cancel an actor task, so each busy actor is killed; replacements start only
        when trials are submitted again.
        """
        numbers = [n for n, _, _ in self._queue] + [n for n, _, _ in self._inflight.values()]
        for _number, _plan, actor in self._inflight.values():
            self._ray.kill(actor, no_restart=True)
            self._replace += 1
        self._queue.clear()
        self._inflight.clear()
        return numbers

    def close(self) -> None:
        """Kill the idle actors, and shut Ray down if this pool started it."""
        for actor in self._idle:
            self._ray.kill(actor)
        self._idle.clear()
        if self._owns_ray:
            self._ray.shutdown()
