"""The ask → dispatch → tell loop: with `autopeft.search_setup`, which builds it, the only code that joins
optimiser, workers and study.

`Runner.run()` drives `autopeft.dispatch`, which keeps up to `executor.capacity` trials running: for
each, the runner asks the study (its sampler sees the RUNNING trials as pending points), decodes the
plan and records it with its exact parameter count on the trial; it tells the study each result. With
several workers, the next trial is asked while every worker is busy, the workers a poll frees get
their next trials before the poll's results are recorded, and the trials for several free workers are
created in one transaction, then drawn one by one. A trial's parameters and plan, and later its result and
state, are each written in one transaction (`autopeft.store.trials`).
Completed trials count towards `spec.execution.trials`; failed ones are recorded with their reason
and do not; `FAILURES_ALLOWED + capacity` failures in a row stop the search.
Other processes' RUNNING trials count too: the runner waits for them, failing and retrying (up to
`execution.max_retries`) those whose process is presumed dead (`autopeft.store.liveness`). On Ctrl-C every
running trial is recorded as failed ("interrupted").

With `promotion.enabled` (successive halving, see `autopeft.promotion`) a trial is one configuration
climbing a ladder of rungs: it is submitted at the lowest rung's step count; after each rung the
runner records the rung result on the trial and either resubmits it at the next rung (the trial
stays RUNNING) or ends it as PRUNED. Only trials that finish the top rung are COMPLETE, have values
and count towards `execution.trials`; samplers and the Pareto front never see low-rung metrics.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autopeft.dispatch import Dispatcher, Job
from autopeft.executors import Executor, Outcome
from autopeft.pareto import hypervolume, pareto_indices
from autopeft.promotion import Decision, RungResults, decide, rung_steps
from autopeft.search_spaces.counting import ParamCount
from autopeft.search_spaces.plan import Plan
from autopeft.search_spaces.space import SearchSpace
from autopeft.spec import SearchSpec
from autopeft.store import count_trials, liveness, objective_of, points
from autopeft.store.attrs import result_attrs, storable
from autopeft.store.trials import ask, draw, fail, finish, new_trials, set_attrs, state_counts, trial_of

#: What a trial ran on, kept as its own small trial attr `resources` for tables: device (``cuda``/``cpu``),
#: precision of the frozen base (``fp32``, ``bf16``, ``fp16``, ``4bit``, ``8bit``), peak memory (MiB).
RESOURCE_KEYS = ("device", "precision", "peak_memory_mb")


#: with several workers, one trial per this many workers (at least one) is asked ahead while all are busy:
#: several workers often finish within one poll, and each would otherwise wait for the asks before its own
WORKERS_PER_TRIAL_AHEAD = 8

#: trials asked ahead between two polls at most: a result that comes in meanwhile waits for no more asks than
#: these before it is recorded (refilling 8 in a row kept PostgreSQL's results waiting: median overhead 62-94 ms
#: at 64 workers against 45-55 ms with 1-2; docs/benchmarks.md)
ASKS_AHEAD_PER_POLL = 1


class SearchError(RuntimeError):
    """The search cannot go on (e.g. every trial fails); the message is one line."""


@dataclass
class Progress:
    """Live figures of a search, for the CLI display."""

    total: int
    completed: int = 0
    running: int = 0
    failed: int = 0
    pruned: int = 0  # configurations stopped below the top rung (successive halving)
    best_metric: float | None = None
    metric_label: str = "metric"  # the objective's metric and direction, e.g. "eval_loss ↓"
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
    rung: int = 0  # successive halving: index of the rung being trained
    rungs: list[dict[str, Any]] = field(default_factory=list)  # finished rungs: {rung, steps, metric, ...}
    steps: int = 0  # optimizer steps consumed so far, over every rung


class Runner:
    """Drives one study to `spec.execution.trials` completed trials."""

    def __init__(self, spec: SearchSpec, study: optuna.Study, space: SearchSpace, executor: Executor,
                 on_progress: Callable[[Progress], None] | None = None):
        self.spec = spec
        self.study = study
        self.space = space
        self.executor = executor
        self.objective = objective_of(study)
        self.on_progress = on_progress or (lambda progress: None)
        self._running: dict[int, _Running] = {}
        self._ready: list[_Running] = []  # asked ahead, waiting for a worker (`_ask_ahead`)
        self._asked: optuna.Trial | None = None  # asked, not yet in _running
        self._created: list[FrozenTrial] = []  # created RUNNING in the study for the next asks (`_next_trial`)
        self.driver = uuid.uuid4().hex[:12]  # this search process, for heartbeats and stale-trial recovery
        self._points: list[tuple[float, float]] = []  # (metric, params %) of completed trials
        self.done_this_run = 0  # completed by this process (for the ETA)
        self.turnaround: dict[int, float] = {}  # trial number -> s from submit to recorded (benchmarks)
        self.progress = Progress(total=spec.execution.trials,
                                 metric_label=f"{self.objective.metric} {self.objective.arrow}")
        # successive halving: params of PRUNED trials -> trial number. autopeft's samplers never propose
        # a stopped configuration again, but an enqueued one (warm start) may be; the runner then fails
        # the new trial ("duplicate") without training it.
        self._stopped: dict[tuple, int] = {}
        promotion, max_steps = spec.promotion, spec.fidelity.max_steps
        self.ladder: list[int] | None = (rung_steps(max_steps, promotion.eta, promotion.min_steps)
                                         if promotion.enabled and max_steps else None)
        self.watch = liveness.Watch(study, spec, self.driver)
        self.dispatch = Dispatcher(executor, spec.objectives.metric, error=SearchError, noun="trials")
        self.rung_results = RungResults()  # successive halving: every rung result seen, for `_decide`
        self._waited = False  # the search waited for other processes' trials

    # --- setup -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Fail trials left RUNNING by a dead process and enqueue their configurations again; returns how many.

        Trials of other live search processes on the same study (recent heartbeat) are left alone.
        Configurations whose trial was interrupted (Ctrl-C, SIGTERM) are enqueued again once, without
        using up a retry (see `autopeft.store.liveness`).
        """
        stale = liveness.sweep(self.study, self.spec)
        self.progress.last_event = "; ".join(stale.events(self.spec.execution.max_retries, retried=False))
        liveness.requeue_interrupted(self.study)
        return len(stale)

    # --- the loop (`autopeft.dispatch`) -------------------------------------------------------
    def run(self) -> Progress:
        self._load()
        self._waited = False
        stop_beating = self.watch.start()
        try:
            self.dispatch.run(self._next_job, self._on_outcome, idle=self._wait_for_others,
                              before_poll=self._before_poll, ready=self._ready_job)
        except BaseException as exc:  # the dispatcher cancelled the jobs in flight: fail their trials
            ctrl_c = isinstance(exc, KeyboardInterrupt)
            self._abandon("interrupted by the user (Ctrl-C)" if ctrl_c else "the search stopped with an error")
            raise
        finally:
            stop_beating.set()
        if self._waited:  # other processes' trials finished meanwhile: read the final figures
            self.progress.last_event = f"{self._completed_in_db()} trials complete in the study"
            self._load()
        return self.progress

    def _before_poll(self) -> None:
        self._swept(self.watch.sweep())
        self._ask_ahead()

    def _on_outcome(self, outcome: Outcome) -> None:
        try:
            self._record(outcome)
        except optuna.exceptions.UpdateFinishedTrialError:  # this process was stopped (Ctrl-Z) so long
            self._note(f"trial {outcome.number}: result dropped; another search process failed it as stale")

    def _wait_for_others(self) -> bool:
        """Nothing of ours in flight: wait for other processes' trials counted towards the target (True), or stop."""
        others = 0 if self._completed_in_db() >= self.spec.execution.trials else self._bound_to_complete()
        if not others:  # with successive halving other processes' trials never count
            return False
        self._swept(self.watch.wait(others))
        self._waited = True
        return True

    def _swept(self, stale: liveness.Sweep) -> None:
        self.progress.failed += len(stale)  # other processes' trials just failed as stale
        self._note(*stale.events(self.spec.execution.max_retries))

    def _note(self, *lines: str | None) -> None:
        for line in filter(None, lines):
            self.progress.last_event = line
            self.on_progress(self.progress)

    def _next_job(self) -> Job | None:
        """The next trial to run: one asked ahead (`_ask_ahead`), else one asked now; None when the trials
        counted so far reach the target."""
        running = self._ready.pop(0) if self._ready else self._ask(self.dispatch.free)
        if running is None:
            return None
        running.submitted = time.perf_counter()
        self._running[running.trial.number] = running
        self.progress.running = len(self._running)
        return self._job(running)

    def _ready_job(self) -> Job | None:
        """A trial for a worker that has just finished, handed out before that worker's result is recorded
        (None when it must wait for the results): with several workers and no successive halving, one asked
        ahead (`_ask_ahead`) or asked now. The results still count as RUNNING trials meanwhile, so the
        trials counted towards the target are right and the sampler treats them as pending."""
        return self._next_job() if self._asks_ahead() else None

    def _ask_ahead(self) -> None:
        """While every worker is busy, ask the next trials (one per `WORKERS_PER_TRIAL_AHEAD` workers, at least
        one), so that the first workers to finish start them at once; at most `ASKS_AHEAD_PER_POLL` before the
        next poll."""
        ahead = max(1, self.executor.capacity // WORKERS_PER_TRIAL_AHEAD)
        for _ in range(ASKS_AHEAD_PER_POLL):
            if not (self._asks_ahead() and self.dispatch.free == 0 and len(self._ready) < ahead):
                return
            running = self._ask(min(ahead - len(self._ready), ASKS_AHEAD_PER_POLL))
            if running is None:
                return
            self._ready.append(running)

    def _asks_ahead(self) -> bool:
        """Whether trials are asked before the last results are recorded: only with several workers (one
        worker's next proposal should see its last result) and without successive halving (whose promotions
        take the freed workers)."""
        return self.ladder is None and self.executor.capacity > 1

    def _ask(self, wanted: int = 1) -> _Running | None:
        """Ask the study for a trial, its parameters and plan written in one transaction (`store.trials`);
        None when the trials counted so far reach the target. Infeasible and already-stopped configurations
        are failed without training. `wanted`: trials needed now (e.g. free workers); with no queued trial in
        the study up to that many are created in one transaction and drawn one per call, each after the
        last one's parameters are written (samplers see those as pending)."""
        while (trial := self._next_trial(wanted)) is not None:
            draft = draw(trial, self.space.distributions())
            plan = self.space.decode(draft.values)
            count = self.space.count(plan)
            failure = self._refusal(trial, plan, count)
            if failure is not None:
                draft.write({"failure": failure})
                self.study.tell(trial, state=TrialState.FAIL)
                self.progress.failed += 1
                self._asked = None
                continue
            draft.write({"plan": storable(plan.to_dict()), "plan_summary": plan.summary(), "params": count.params,
                         "params_pct": count.pct, "driver": self.driver})
            self._asked = None
            return _Running(trial, plan, count, time.perf_counter())
        return None

    def _next_trial(self, wanted: int) -> optuna.Trial | None:
        """A trial created before (`_created`), else a queued or new one when the trials counted so far are
        below the target (None otherwise); `wanted` > 1 creates up to that many new ones at once."""
        if not self._created:
            counts = state_counts(self.study)
            room = self.spec.execution.trials - self._counted(counts)
            if room <= 0:
                return None
            if min(wanted, room) == 1 or counts.get(TrialState.WAITING):
                self._asked = ask(self.study, counts, {"driver": self.driver})  # failed by _abandon if interrupted
                return self._asked
            self._created = new_trials(self.study, min(wanted, room), {"driver": self.driver})  # named at once: not stale
        self._asked = trial_of(self.study, self._created[0])  # kept in `_created` until then, for _abandon
        self._created.pop(0)
        return self._asked

    def _refusal(self, trial: optuna.Trial, plan: Plan, count: ParamCount) -> dict[str, str] | None:
        """The `failure` of a trial not to train: a configuration already stopped early (see `_stopped`: never
        trained twice), or one that is invalid or over budget (only samplers without the feasibility wrapper
        propose those)."""
        stopped = self._stopped.get(_params_key(trial.params)) if self.ladder is not None else None
        if stopped is not None:
            return {"kind": "duplicate", "message": f"configuration already stopped early in trial {stopped}"}
        infeasible = self._infeasible(plan, count)
        return None if infeasible is None else {"kind": "infeasible", "message": infeasible}

    def _counted(self, counts: dict[TrialState, int]) -> int:
        """Trials counted towards the target, of the study's `state_counts`: COMPLETE ones of every process, and
        those bound to complete."""
        return counts.get(TrialState.COMPLETE, 0) + self._bound_to_complete(counts.get(TrialState.RUNNING, 0))

    def _bound_to_complete(self, running: int | None = None) -> int:
        """Running trials that become COMPLETE unless they fail: every RUNNING one in the study (`running`, when
        just counted), or with successive halving only this process's trials at the top rung (the others may
        be pruned)."""
        if self.ladder is None:
            return count_trials(self.study, TrialState.RUNNING) if running is None else running
        return sum(r.rung == len(self.ladder) - 1 for r in self._running.values())

    def _job(self, running: _Running) -> Job:
        fidelity = None if self.ladder is None else {"max_steps": self.ladder[running.rung]}
        return Job(running.trial.number, running.plan.to_dict(), fidelity)

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
        attrs = {}
        if outcome.attrs:  # `result` and its long parts (autopeft.store.attrs)
            attrs = {**result_attrs(outcome.attrs), "resources": {k: outcome.attrs.get(k) for k in RESOURCE_KEYS}}
        if self.ladder is not None:
            attrs.update(self._record_rung(running, outcome))
        if not outcome.ok:
            attrs["failure"] = outcome.failure
        if self.ladder is not None and outcome.ok and running.rung < len(self.ladder) - 1:
            set_attrs(trial, attrs)  # one transaction
            self._promote_or_prune(running, outcome)
            self._refresh()
            return
        values = [outcome.metric, running.count.pct] if outcome.ok else None
        state = finish(trial, values, None if outcome.ok else TrialState.FAIL, attrs)  # one transaction
        if state == TrialState.COMPLETE:
            self._points.append((outcome.metric, running.count.pct))
            self.done_this_run += 1
            self.turnaround[trial.number] = time.perf_counter() - running.submitted
            self.progress.last_event = f"trial {trial.number}: {outcome.metric:.4f} at {running.count.pct:.4f}% params"
        else:
            self.progress.failed += 1
            self.progress.last_event = f"trial {trial.number} failed: {(trial.user_attrs.get('failure') or {}).get('message', '')}"
            if outcome.lost:
                liveness.requeue(self.study, trial, self.spec.execution.max_retries)
        self._refresh()

    def _record_rung(self, running: _Running, outcome: Outcome) -> dict[str, Any]:
        """The rung's attributes for the trial: `steps` (total over rungs) and, when it succeeded, an entry in
        `rungs` = {rung, steps, metric, train_seconds} with, below the top rung, the promotion decision."""
        planned = self.ladder[running.rung]
        steps = int(outcome.attrs.get("steps") or (planned if outcome.ok else 0))
        running.steps += steps
        attrs: dict[str, Any] = {"steps": running.steps}
        if outcome.ok:
            entry = {"rung": running.rung, "steps": steps, "metric": outcome.metric,
                     "train_seconds": outcome.attrs.get("train_seconds")}
            if running.rung < len(self.ladder) - 1:
                entry.update(self._decide(running, outcome.metric).to_dict())
            running.rungs.append(entry)
            attrs["rungs"] = storable(running.rungs)
        return attrs

    def _decide(self, running: _Running, metric: float) -> Decision:
        """Rank the trial's result among every result recorded at its rung in the study (any process), by the
        rung metric or, with `promotion.rank_by: model`, by the sampler's prediction of the top-rung metric;
        a promotion once the search has reached its target is turned down. Results are kept in memory
        (`RungResults`): this process's as they come; of the study only trials new or unfinished since the
        last decision are looked at (Optuna's cached storage fetches just those rows)."""
        rung, number = running.rung, running.trial.number
        trials = self.study.get_trials(deepcopy=False)
        self.rung_results.update(trials, keep={*self._running, number})
        candidate, recorded = (metric, running.count.pct), self.rung_results.at(rung, exclude=number)
        predicted = self._predicted(trials, running, metric) if self.spec.promotion.rank_by == "model" else None
        if predicted is not None:
            candidate, recorded = predicted
        decision = decide(candidate, recorded, self.spec.promotion.eta, self.objective.maximize)
        if predicted is not None:
            decision = replace(decision, predicted=candidate[0])
        self.rung_results.add(number, rung, (metric, running.count.pct))
        if decision.promote and self._completed_in_db() >= self.spec.execution.trials:
            return replace(decision, promote=False, reason="the search reached its target")
        return decision

    def _predicted(self, trials: list[optuna.trial.FrozenTrial], running: _Running,
                   metric: float) -> tuple[tuple[float, float], list[tuple[float, float]]] | None:
        """The trial's rung result and the others at its rung as (predicted top-rung metric, params %), from the
        sampler's fidelity-aware surrogate (`MoboSampler.predict_top`) given this result too; None while the
        sampler cannot predict yet (then the rung metrics rank)."""
        predict = getattr(self.study.sampler, "predict_top", None)
        if predict is None:
            return None
        by_number = {t.number: t for t in trials}
        others = [by_number[n] for n in self.rung_results.numbers(running.rung, exclude=running.trial.number)
                  if n in by_number]
        params = running.trial.params
        means = predict(self.study, [t.params for t in others] + [params], top_steps=self.ladder[-1],
                        extra=[(params, self.ladder[running.rung], metric)])
        if means is None:
            return None
        pcts = [t.user_attrs["params_pct"] for t in others]
        return (means[-1], running.count.pct), list(zip(means[:-1], pcts, strict=True))

    def _promote_or_prune(self, running: _Running, outcome: Outcome) -> None:
        """Resubmit the trial at the next rung if it was promoted, else end it PRUNED."""
        trial, entry = running.trial, running.rungs[-1]
        where = (f"rung {entry['rung']} ({entry['steps']} steps): {outcome.metric:.4f}, "
                 f"rank {entry['rank']}/{entry['of']}")
        if entry["promote"]:
            running.rung += 1
            self._running[trial.number] = running
            self.dispatch.submit(self._job(running))
            self.progress.last_event = f"trial {trial.number} promoted at {where}"
            return
        self.study.tell(trial, state=TrialState.PRUNED)
        self._stopped[_params_key(trial.params)] = trial.number
        self.progress.pruned += 1
        why = entry.get("reason") or f"below the top {entry['keep']}"
        self.progress.last_event = f"trial {trial.number} stopped at {where} ({why})"

    def _abandon(self, reason: str) -> None:
        """Fail this process's running trials (the dispatcher has cancelled their jobs)."""
        abandoned = [r.trial for r in [*self._running.values(), *self._ready]] + self._created
        for trial in abandoned + ([self._asked] if self._asked is not None else []):
            fail(self.study, trial, {"kind": "interrupted", "message": reason})
        self._running.clear()
        self._ready.clear()
        self._created.clear()
        self._asked = None

    def _load(self) -> None:
        """Read the study once; afterwards progress is kept up to date from this process's results."""
        trials = self.study.get_trials(deepcopy=False)
        self._points = points([t for t in trials if t.state == TrialState.COMPLETE])
        self.progress.failed = sum(t.state == TrialState.FAIL for t in trials)
        self.progress.pruned = sum(t.state == TrialState.PRUNED for t in trials)
        self._stopped = {_params_key(t.params): t.number for t in trials if t.state == TrialState.PRUNED}
        if self.ladder is not None:
            self.rung_results.update(trials, keep=self._running)
        self._refresh()

    def _completed_in_db(self) -> int:
        """Completed trials in the DB, by every process working on this study (one COUNT query)."""
        return count_trials(self.study, TrialState.COMPLETE)

    def _refresh(self) -> None:
        objective = self.objective
        ref = objective.reference_point(self.spec.budget.max_params_pct)
        within = [m for m, pct in self._points if pct <= ref[1]]
        p = self.progress
        p.completed = len(self._points)
        p.running = len(self._running)
        p.best_metric = objective.best(within)
        p.hypervolume = hypervolume(self._points, ref, objective.maximize)
        p.pareto_size = len(pareto_indices(self._points, objective.maximize))
        self.on_progress(p)


def _params_key(params: dict[str, Any]) -> tuple:
    """A hashable key of an Optuna trial's parameters (a configuration)."""
    return tuple(sorted(params.items()))
