"""Which search processes on a study are alive, and what becomes of the trials of those that are not.

Each search process (driver) records a heartbeat every `execution.heartbeat_seconds` (`heartbeat`:
a study system attr, driver id -> unix time) and names itself on its trials (user attr `driver`).
A driver that has missed `MISSED_BEATS` beats is presumed dead: its RUNNING trials are failed as `stale` and their
configurations queued again, `execution.max_retries` times at most per configuration. Until then its
trials may still finish, so a search that counted them towards its target waits for them.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field

import optuna
from optuna.trial import FrozenTrial, TrialState

from autopeft.spec import SearchSpec
from autopeft.store.attrs import DRIVER_PREFIX


def heartbeat(study: optuna.Study, driver: str) -> None:
    """Record that search process `driver` is alive now (a study system attr: driver id → unix time)."""
    # Optuna 5 has no public study system attrs; they keep heartbeats out of the user attrs people read.
    study._storage.set_study_system_attr(study._study_id, DRIVER_PREFIX + driver, time.time())


def live_drivers(study: optuna.Study, stale_after: float) -> set[str]:
    """Search processes whose last heartbeat is younger than `stale_after` seconds."""
    attrs = study._storage.get_study_system_attrs(study._study_id)  # see `heartbeat`
    now = time.time()
    return {k[len(DRIVER_PREFIX):] for k, v in attrs.items() if k.startswith(DRIVER_PREFIX) and now - v < stale_after}


def fail_stale_trials(study: optuna.Study, reason: str, live: set[str] = frozenset(),
                      grace_seconds: float = 0.0) -> list[FrozenTrial]:
    """Mark RUNNING trials whose search process is not in `live` FAILED with `reason`; return them for retry.

    A trial that does not name its process yet (another process has just asked it and is still
    recording its plan) counts as stale only once it started more than `grace_seconds` ago.
    """
    now = dt.datetime.now()  # Optuna stores trial start times as naive local times

    def stale_trial(t: FrozenTrial) -> bool:
        if "driver" in t.user_attrs:
            return t.user_attrs["driver"] not in live
        return t.datetime_start is None or (now - t.datetime_start).total_seconds() > grace_seconds

    stale = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not stale_trial(trial):
            continue
        try:
            # a FrozenTrial of another process has no public setter, and `tell` takes no attrs
            study._storage.set_trial_user_attr(trial._trial_id, "failure", {"kind": "stale", "message": reason})
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile (e.g. failed as stale by another process sweeping at the same moment)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        stale.append(trial)
    return stale


MISSED_BEATS = 3
STALE_REASON = "the process running this trial stopped before it finished"


def stale_after(spec: SearchSpec) -> float:
    """Seconds without a heartbeat after which a search process is presumed dead."""
    return MISSED_BEATS * spec.execution.heartbeat_seconds


def start_heartbeat(study: optuna.Study, driver: str, seconds: float) -> threading.Event:
    """Beat now and every `seconds` from a daemon thread until the returned event is set."""
    stop = threading.Event()
    heartbeat(study, driver)

    def beat() -> None:
        while not stop.wait(seconds):
            heartbeat(study, driver)

    threading.Thread(target=beat, name="autopeft-heartbeat", daemon=True).start()
    return stop


def requeue(study: optuna.Study, trial: FrozenTrial | optuna.Trial, max_retries: int) -> bool:
    """Queue the configuration of a trial whose process or worker died again, unless it used up its retries."""
    attempt = int(trial.user_attrs.get("attempt", 0)) + 1
    if attempt > max_retries:
        return False
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "attempt": attempt})
    return True


@dataclass
class Sweep:
    """Trials just failed as stale: those queued again, and those whose configuration used up its retries."""

    retried: list[FrozenTrial] = field(default_factory=list)
    given_up: list[FrozenTrial] = field(default_factory=list)
    waiting: str | None = None  # set by `Watch.wait`: the line saying what the runner waits for

    def __len__(self) -> int:
        return len(self.retried) + len(self.given_up)

    def events(self, max_retries: int, retried: bool = True) -> list[str]:
        """The lines for the progress display: what is waited for, then one per trial (`retried`: those queued
        again too)."""
        lines = [self.waiting] if self.waiting else []
        lines += [f"trial {t.number}: its search process stopped; failed and queued again"
                  for t in self.retried if retried]
        return lines + [f"trial {t.number}: its search process stopped; not queued again, its configuration used up "
                        f"its {max_retries} retries (execution.max_retries)" for t in self.given_up]


def sweep(study: optuna.Study, spec: SearchSpec, driver: str | None = None) -> Sweep:
    """Fail the RUNNING trials of presumed-dead processes and queue their configurations again.

    Trials of live processes (this one, `driver`, always counts as live) are left alone. A trial
    already retried (by another process sweeping at the same moment) is not queued twice.
    """
    grace = stale_after(spec)
    live = live_drivers(study, stale_after=grace) | ({driver} if driver else set())
    stale = fail_stale_trials(study, STALE_REASON, live, grace_seconds=grace)
    result = Sweep()
    if not stale:
        return result
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    for trial in stale:
        if trial.number in retried or requeue(study, trial, spec.execution.max_retries):
            result.retried.append(trial)
        else:
            result.given_up.append(trial)
    return result


class Watch:
    """One search process's watch on the others: its own heartbeat, and sweeps for their stale trials."""

    def __init__(self, study: optuna.Study, spec: SearchSpec, driver: str):
        self.study, self.spec, self.driver = study, spec, driver
        self.period = spec.execution.heartbeat_seconds
        self._next = time.monotonic() + self.period  # the runner swept once before starting (`recover`)
        self._waiting_for = 0

    def start(self) -> threading.Event:
        """Start beating; set the event to stop."""
        return start_heartbeat(self.study, self.driver, self.period)

    def sweep(self, every: float | None = None) -> Sweep:
        """`sweep` at most once per `every` seconds (default: the heartbeat period)."""
        if time.monotonic() < self._next:
            return Sweep()
        self._next = time.monotonic() + (every or self.period)
        return sweep(self.study, self.spec, self.driver)

    def wait(self, others: int) -> Sweep:
        """Wait a moment (at most 1 s) for `others` RUNNING trials of other processes, then `sweep` (at most once
        per moment); the result names what is waited for when that number changed."""
        moment = min(1.0, self.period)
        time.sleep(moment)
        result = self.sweep(every=moment)
        if others != self._waiting_for:
            result.waiting = (f"waiting for {others} trial(s) of another search process to finish (or, if it "
                              f"stopped, for its heartbeat to expire: {stale_after(self.spec):.0f} s)")
        self._waiting_for = others
        return result


def requeue_interrupted(study: optuna.Study) -> None:
    """Queue again, once and without using up a retry, configurations whose trial was interrupted (Ctrl-C,
    SIGTERM): the interruption says nothing about the configuration."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        interrupted = (trial.user_attrs.get("failure") or {}).get("kind") == "interrupted"
        if trial.state == TrialState.FAIL and interrupted and trial.number not in retried and trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number,
                                                         "attempt": int(trial.user_attrs.get("attempt", 0))})
