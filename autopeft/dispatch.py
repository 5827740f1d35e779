"""The one dispatch loop: keep an executor full, hand each finished job to a callback, stop cleanly.

Used by the search (`autopeft.runner.Runner.run`), the refinement (`autopeft.refine.Refiner.run`) and
the optimiser benchmark (`autopeft.optim.bench.SamplerRun`). Each round `Dispatcher.run` asks
`next_job` for jobs while fewer than `executor.capacity` are in flight, polls the executor, turns
each result into an `Outcome` and hands it to `on_outcome`. It ends when `next_job` has nothing and
nothing is in flight (or `idle`, called then, says not to wait). `FAILURES_ALLOWED + capacity` failed
outcomes in a row stop it with one line; on any error or Ctrl-C it cancels what is in flight first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autopeft.executors import Executor, Outcome, outcome_from_result

#: failures in a row allowed on top of the executor's capacity (a capacity's worth may fail together)
FAILURES_ALLOWED = 5


class DispatchError(RuntimeError):
    """Too many jobs in a row failed; the message is one line."""


@dataclass(frozen=True)
class Job:
    """One job for the executor: its `number`, the `plan` payload and optional fidelity overrides."""

    number: int
    plan: Any
    fidelity: dict[str, Any] | None = None


class Dispatcher:
    """Jobs in flight on one executor, and the loop that keeps it full.

    `metric` names the objective in workers' results (`outcome_from_result`); `to_outcome` replaces that
    conversion for other payloads. ``failures_allowed + executor.capacity`` failed outcomes in a row
    stop the loop (`failures_allowed` None: nothing does) by raising ``error(message)``, the message
    saying ``N {noun} in a row failed; last: REASON``.
    """

    def __init__(self, executor: Executor, metric: str = "auto", *,
                 to_outcome: Callable[[int, Any], Outcome] | None = None,
                 failures_allowed: int | None = FAILURES_ALLOWED,
                 error: Callable[[str], BaseException] = DispatchError, noun: str = "jobs"):
        self.executor = executor
        self.in_flight: set[int] = set()
        self.failures_in_a_row = 0
        self.max_failures = None if failures_allowed is None else failures_allowed + executor.capacity
        self._to_outcome = to_outcome or (lambda number, payload: outcome_from_result(number, payload, metric))
        self._error, self._noun = error, noun

    @property
    def free(self) -> int:
        """Jobs that can be submitted before the executor is full."""
        return self.executor.capacity - len(self.in_flight)

    def submit(self, job: Job) -> None:
        """Hand `job` to the executor (also from inside `on_outcome`, e.g. a promotion to the next rung)."""
        if job.fidelity is None:
            self.executor.submit(job.number, job.plan)
        else:
            self.executor.submit(job.number, job.plan, job.fidelity)
        self.in_flight.add(job.number)

    def cancel(self) -> list[int]:
        """Cancel every job in flight; returns their numbers."""
        numbers = sorted(self.in_flight)
        self.executor.cancel_all()
        self.in_flight.clear()
        return numbers

    def count(self, outcome: Outcome) -> None:
        """The failures-in-a-row rule: a success resets the run, a failure extends it, too long a run raises."""
        self.failures_in_a_row = 0 if outcome.ok else self.failures_in_a_row + 1
        if self.max_failures is not None and self.failures_in_a_row >= self.max_failures:
            reason = (outcome.failure or {}).get("message", "unknown")
            raise self._error(f"{self.failures_in_a_row} {self._noun} in a row failed; last: {reason}")

    def run(self, next_job: Callable[[], Job | None], on_outcome: Callable[[Outcome], bool | None], *,
            idle: Callable[[], bool] | None = None, before_poll: Callable[[], None] | None = None,
            ready: Callable[[], Job | None] | None = None, timeout: float = 1.0) -> None:
        """Loop until `next_job` returns None with nothing in flight and `idle` (if given) returns False.

        `on_outcome` records one finished job; returning False says the job was queued again (not a result:
        it does not count towards the failures in a row). `idle` is called when nothing is in flight and
        no job came (e.g. to wait for another process): True goes round again. `before_poll` runs before
        each poll. `ready` (if given) hands out a job for a worker the last poll freed, or None: the freed
        workers get those before the poll's results are recorded. Any exception (Ctrl-C included) cancels the jobs in
        flight, then propagates.
        """
        try:
            while True:
                self._fill(next_job)
                if not self.in_flight:
                    if idle is not None and idle():
                        continue
                    return
                if before_poll is not None:
                    before_poll()
                finished = self.executor.poll(timeout=timeout)
                self.in_flight.difference_update(number for number, _ in finished)
                if ready is not None:
                    self._fill(ready)
                for number, payload in finished:
                    outcome = self._to_outcome(number, payload)
                    if on_outcome(outcome) is not False:
                        self.count(outcome)
        except BaseException:
            self.cancel()
            raise

    def _fill(self, next_job: Callable[[], Job | None]) -> None:
        """Submit jobs from `next_job` while the executor has room and it has one."""
        while self.free > 0:
            job = next_job()
            if job is None:
                return
            self.submit(job)
