"""The one dispatch loop (`autopeft.dispatch`) on a scripted executor: capacity, failures in a row, cancel."""

from __future__ import annotations

from typing import Any

import pytest

from autopeft.dispatch import FAILURES_ALLOWED, Dispatcher, DispatchError, Job
from autopeft.executors import Executor, InlineExecutor, Outcome


class Scripted:
    """An executor whose jobs finish oldest first, one per poll; each job's plan is its result (ok, message)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.running: list[tuple[int, Any, dict | None]] = []
        self.submitted: list[tuple[int, Any, dict | None]] = []
        self.busy_at_poll: list[int] = []  # jobs running at each poll
        self.cancelled: list[list[int]] = []
        self.closed = False

    def submit(self, number: int, plan: Any, fidelity: dict | None = None) -> None:
        assert len(self.running) < self.capacity, "submitted beyond capacity"
        self.running.append((number, plan, fidelity))
        self.submitted.append((number, plan, fidelity))

    def poll(self, timeout: float) -> list[tuple[int, Any]]:
        self.busy_at_poll.append(len(self.running))
        number, plan, _ = self.running.pop(0)
        return [(number, plan)]

    def cancel_all(self) -> list[int]:
        numbers = [n for n, _, _ in self.running]
        self.cancelled.append(numbers)
        self.running.clear()
        return numbers

    def close(self) -> None:
        self.closed = True


def outcome(number: int, result: tuple[bool, str]) -> Outcome:
    ok, message = result
    return Outcome(number, ok=ok, metric=1.0 if ok else None, attrs={},
                   failure=None if ok else {"kind": "error", "message": message})


def jobs(results: list[tuple[bool, str]]):
    """A `next_job` handing out one job per result, numbered 0, 1, ..."""
    queue = list(enumerate(results))
    return lambda: Job(*queue.pop(0)) if queue else None


def test_the_executor_is_kept_full_and_every_outcome_is_handed_on_in_order():
    executor = Scripted(capacity=3)
    dispatcher = Dispatcher(executor, to_outcome=outcome)
    seen: list[int] = []
    dispatcher.run(jobs([(True, "")] * 10), lambda o: seen.append(o.number))
    assert seen == list(range(10))
    # full at every poll until the last jobs drain: 3, 3, ..., 3, 2, 1
    assert executor.busy_at_poll == [3] * 8 + [2, 1]
    assert dispatcher.in_flight == set() and dispatcher.failures_in_a_row == 0 and executor.cancelled == []


def test_fidelity_overrides_reach_the_executor_and_jobs_can_be_resubmitted_from_the_callback():
    executor = Scripted(capacity=2)
    dispatcher = Dispatcher(executor, to_outcome=outcome)
    queue = [Job(0, (True, ""), {"max_steps": 3}), Job(1, (True, ""))]
    promoted: list[int] = []

    def on_outcome(o: Outcome) -> None:
        if o.number == 0 and not promoted:  # e.g. successive halving: the next rung, same number
            promoted.append(0)
            dispatcher.submit(Job(0, (True, ""), {"max_steps": 9}))

    dispatcher.run(lambda: queue.pop(0) if queue else None, on_outcome)
    assert executor.submitted == [(0, (True, ""), {"max_steps": 3}), (1, (True, ""), None),
                                  (0, (True, ""), {"max_steps": 9})]
    assert dispatcher.in_flight == set()


def test_capacity_plus_five_failures_in_a_row_stop_the_loop_and_cancel_the_rest():
    executor = Scripted(capacity=2)
    dispatcher = Dispatcher(executor, to_outcome=outcome, error=ValueError, noun="trials")
    limit = FAILURES_ALLOWED + 2
    # a success resets the run: 6 failures, 1 success, then failures until the 7th in a row
    results = [(False, "x")] * (limit - 1) + [(True, "")] + [(False, f"bad {k}") for k in range(limit + 5)]
    seen: list[int] = []
    with pytest.raises(ValueError, match=rf"^{limit} trials in a row failed; last: bad {limit - 1}$"):
        dispatcher.run(jobs(results), lambda o: seen.append(o.number))
    assert seen == list(range(limit + limit))  # stopped at the failure that made the run too long
    assert executor.cancelled == [[2 * limit]]  # the one still running was cancelled
    assert dispatcher.in_flight == set()


def test_requeued_outcomes_do_not_count_as_failures():
    executor = Scripted(capacity=1)
    dispatcher = Dispatcher(executor, to_outcome=outcome, failures_allowed=0)  # one failure in a row stops it
    lost = [(False, "lost")] * 5
    dispatcher.run(jobs(lost), lambda o: False)  # every one queued again elsewhere: no result, no failure
    assert dispatcher.failures_in_a_row == 0
    with pytest.raises(DispatchError, match="^1 jobs in a row failed; last: lost$"):
        dispatcher.run(jobs(lost), lambda o: None)


def test_failures_allowed_none_never_stops_the_loop():
    dispatcher = Dispatcher(Scripted(capacity=1), to_outcome=outcome, failures_allowed=None)
    dispatcher.run(jobs([(False, "x")] * 50), lambda o: None)
    assert dispatcher.failures_in_a_row == 50


@pytest.mark.parametrize("error", [RuntimeError("recording failed"), KeyboardInterrupt()])
def test_an_error_in_the_callback_or_ctrl_c_cancels_what_is_in_flight(error):
    executor = Scripted(capacity=3)
    dispatcher = Dispatcher(executor, to_outcome=outcome)
    calls: list[int] = []

    def on_outcome(o: Outcome) -> None:
        calls.append(o.number)
        if len(calls) == 2:
            raise error

    with pytest.raises(type(error)):
        dispatcher.run(jobs([(True, "")] * 10), on_outcome)
    assert calls == [0, 1] and executor.cancelled == [[2, 3]]  # refilled after job 0, cancelled after job 1
    assert dispatcher.in_flight == set()


def test_idle_is_asked_when_nothing_is_in_flight_and_may_go_round_again():
    executor = Scripted(capacity=2)
    dispatcher = Dispatcher(executor, to_outcome=outcome)
    later: list[Job] = []
    waits: list[int] = []

    def idle() -> bool:  # e.g. another process's trials: wait once, then new work appears
        waits.append(len(dispatcher.in_flight))
        if len(waits) == 1:
            later.append(Job(7, (True, "")))
            return True
        return False

    seen: list[int] = []
    dispatcher.run(lambda: later.pop(0) if later else None, lambda o: seen.append(o.number), idle=idle)
    assert waits == [0, 0] and seen == [7]


def test_outcomes_default_to_worker_results_of_the_named_metric():
    from autopeft.workers.ray_pool import WorkerLost

    dispatcher = Dispatcher(Scripted(capacity=1), "eval_loss")
    seen: list[Outcome] = []
    dispatcher.run(jobs([WorkerLost("worker died: RayActorError")]), seen.append)
    assert seen[0].lost and seen[0].failure == {"kind": "worker_lost", "message": "worker died: RayActorError"}


def test_every_executor_implements_the_protocol_close_included():
    from autopeft.workers.ray_pool import RayPool

    members = [m for m in vars(Executor) if not m.startswith("_")]
    assert set(members) >= {"submit", "poll", "cancel_all", "close"}
    for cls in (InlineExecutor, RayPool):
        assert all(callable(getattr(cls, m)) for m in members if m != "capacity"), cls
    inline = InlineExecutor(lambda plan: plan)
    inline.submit(0, {"p": 1})
    inline.close()
    assert inline.poll(0) == []  # closed: queued trials are dropped


def test_jobs_prepared_ahead_go_to_the_freed_workers_before_the_results_are_recorded():
    executor = Scripted(capacity=2)
    dispatcher = Dispatcher(executor, to_outcome=outcome)
    prepared = [Job(100 + i, (True, "")) for i in range(3)]
    running_when_recorded: list[list[int]] = []

    def on_outcome(o: Outcome) -> None:
        running_when_recorded.append([n for n, _, _ in executor.running])

    dispatcher.run(jobs([(True, "")] * 2), on_outcome, ready=lambda: prepared.pop(0) if prepared else None)
    assert [n for n, _, _ in executor.submitted] == [0, 1, 100, 101, 102]
    # job 0 finished: job 100 was already running on its worker when job 0's result was recorded
    assert running_when_recorded[:3] == [[1, 100], [100, 101], [101, 102]]
