"""`autopeft refine`: re-run a study's Pareto-optimal trials at a higher fidelity with several seeds.

Joins a source study, the linked study that records the refinement (conventions in
`autopeft.refine_compare`) and an executor (`autopeft.executors.make_executor`: Ray actors, or inline),
kept full by `autopeft.dispatch`. Each (source trial, seed) pair is one run: the source trial's
plan, trained at the refinement fidelity with ``fidelity.seed = seed``, scored on the task's dev
set (`evaluate_plan(..., evaluate_dev=True)`). A finished run is added to the linked study as one
COMPLETE (or FAIL) trial, so the study never holds
a RUNNING trial: Ctrl-C or a killed process leaves nothing to clean up, and running the same command
again skips the pairs already complete (failed pairs are run again).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from autopeft.dispatch import Dispatcher, Job
from autopeft.executors import Executor, Outcome, make_executor
from autopeft.spec import DuplicateKeyError, FidelitySpec, SearchSpec, SpecError, build_spec, safe_load
from autopeft.store import StudyError, load_study, objective_of, pareto_trials, stored_spec, study_names
from autopeft.store.attrs import REFINEMENT_OF, REFINEMENTS, result_attrs, trial_attr
from autopeft.store.linked import refined_name

SEED_ATTRS = ("seed",)  # fidelity fields that vary between the runs of one refinement


class RefineError(RuntimeError):
    """A refinement cannot start or go on; the message is one line."""


# --- the refinement fidelity ---------------------------------------------------------------------
def parse_fidelity(text: str | None, base: FidelitySpec) -> FidelitySpec:
    """The refinement fidelity: `base` (the study's search fidelity) with `text` applied.

    `text` is ``full`` (the whole training set: ``train_size`` and ``max_steps`` unset), a YAML file
    of `FidelitySpec` fields (or a spec file: its ``fidelity`` section), or inline
    ``key=value,key=value`` pairs (values read as YAML: ``null`` unsets). `SpecError` names a bad field.
    """
    if text is None or text.strip() == "full":
        return _with_fidelity(base, {"train_size": None, "max_steps": None})
    path = Path(text)
    if path.is_file():
        try:
            loaded = safe_load(path.read_text())
        except DuplicateKeyError as exc:
            raise SpecError(f"--fidelity: {path}: {exc.describe()}") from None
        except yaml.YAMLError:
            raise SpecError(f"--fidelity: {path} is not valid YAML; fix the syntax and retry") from None
        if isinstance(loaded, dict) and isinstance(loaded.get("fidelity"), dict):
            loaded = loaded["fidelity"]
        if not isinstance(loaded, dict):
            raise SpecError(f"--fidelity: {path}: expected a mapping of fidelity fields, got {type(loaded).__name__}")
        return _with_fidelity(base, loaded)
    if "=" in text:
        fields: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise SpecError(f"--fidelity: expected key=value pairs separated by commas, got {part!r}")
            fields[key.strip()] = yaml.safe_load(value) if value.strip() else None
        return _with_fidelity(base, fields)
    raise SpecError(f"--fidelity: expected full, a YAML file of fidelity fields or key=value pairs, got {text!r}")


def _with_fidelity(base: FidelitySpec, fields: dict[str, Any]) -> FidelitySpec:
    data = {"model": "-", "fidelity": {**base.model_dump(mode="json"), **fields}}
    return build_spec(data).fidelity  # errors name the field: fidelity.train_size: expected ...


def seeds_for(fidelity: FidelitySpec, count: int) -> list[int]:
    """The refinement seeds: ``fidelity.seed``, ``fidelity.seed + 1``, ... (`count` of them)."""
    return [fidelity.seed + k for k in range(count)]


def _definition(fidelity: dict[str, Any]) -> dict[str, Any]:
    """A fidelity without its seed: what must match for runs to belong to one refinement."""
    return {k: v for k, v in fidelity.items() if k not in SEED_ATTRS}


# --- worker side ---------------------------------------------------------------------------------
def evaluate_run(model: str, task: str, data_dir: str | None, payload: dict[str, Any]):
    """Worker entry point: `payload` = ``{"plan": autopeft-plan/v1 dict, "fidelity": FidelitySpec dict}``;
    returns the workers `TrialResult`, with ``dev_*`` metrics when the task has a dev set."""
    from autopeft.search_spaces.plan import Plan
    from autopeft.workers import evaluate_plan

    return evaluate_plan(model, task, Plan.from_dict(payload["plan"]), FidelitySpec(**payload["fidelity"]),
                         data_dir=data_dir, evaluate_dev=True)


# --- planning ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One (source trial, seed) pair to evaluate."""

    source: FrozenTrial
    seed: int
    attempt: int = 0

    @property
    def key(self) -> tuple[int, int]:
        return (self.source.number, self.seed)


@dataclass
class RefineSession:
    """A refinement ready to run: what it refines, where it records, and the runs still to do."""

    spec: SearchSpec  # the source study's spec, execution overridden by the caller
    source: optuna.Study
    linked: optuna.Study
    front: list[FrozenTrial]
    fidelity: FidelitySpec
    seeds: list[int]
    metric: str  # key in the result's metrics, e.g. dev_accuracy
    split: str  # dev or heldout
    todo: list[Run]
    done_before: int
    completed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return len(self.front) * len(self.seeds)


def prepare_refinement(storage, source_name: str, seeds: int = 5, fidelity: str | None = None,
                       name: str | None = None, execution: dict[str, Any] | None = None) -> RefineSession:
    """Open the source study, check the fidelity and the task's data, open or create the linked study.

    `fidelity`: see `parse_fidelity`; None = the linked study's own when it exists, else ``full``.
    `execution`: `ExecutionSpec` overrides (workers, executor, ray_address, ...), None values ignored.
    Raises `StudyError`, `SpecError`, `RefineError`, `DataError` or `MissingExtra` (a front with AdapterHub
    plans and no `adapters` installed), each with a one-line message.
    """
    from autopeft.optional import require_adapters
    from autopeft.search_spaces.counting import library_for
    from autopeft.search_spaces.plan import Plan
    from autopeft.workers import check_task

    if seeds < 1:
        raise RefineError(f"--seeds: expected a positive integer, got {seeds}")
    source = load_study(storage, source_name)
    if REFINEMENT_OF in source.user_attrs:
        raise RefineError(f"study {source_name!r} is a refinement of {source.user_attrs[REFINEMENT_OF]!r}; "
                          "refine the source study instead")
    spec = stored_spec(source)
    spec = build_spec(spec.model_dump(mode="json"), {f"execution.{k}": v for k, v in (execution or {}).items()})
    front = pareto_trials(source)
    if not front:
        raise RefineError(f"study {source_name!r} has no completed trials to refine; run `autopeft search` first")
    unplanned = [t.number for t in front if not isinstance(trial_attr(t.user_attrs, "plan"), dict)]
    if unplanned:
        raise RefineError(f"study {source_name!r}: trial(s) {', '.join(map(str, unplanned))} record no plan to "
                          "re-run; refine a study made by `autopeft search`")
    built_by_adapters = [t.number for t in front if library_for(Plan.from_dict(trial_attr(t.user_attrs, "plan"))) == "adapters"]
    if built_by_adapters:
        require_adapters(f"refining study {source_name!r} (trial(s) {', '.join(map(str, built_by_adapters))} hold "
                         "AdapterHub plans)")
    name = name or refined_name(source_name)
    existing = load_study(storage, name) if name in study_names(storage) else None
    linked_attrs = existing.user_attrs if existing is not None else {}
    if existing is not None and linked_attrs.get(REFINEMENT_OF) != source_name and (
            linked_attrs or existing.get_trials(deepcopy=False)):  # an empty, attr-less study: a creation cut short
        raise RefineError(f"study {name!r} exists and is not a refinement of {source_name!r}; pass another --name")
    recorded = linked_attrs.get("fidelity")
    if fidelity is None and recorded:
        chosen = FidelitySpec(**recorded)
    else:
        chosen = parse_fidelity(fidelity, spec.fidelity)
    if recorded and _definition(recorded) != _definition(chosen.model_dump(mode="json")):
        changed = sorted(k for k, v in _definition(chosen.model_dump(mode="json")).items() if recorded.get(k) != v)
        raise RefineError(f"--fidelity: {name!r} refines at another fidelity ({', '.join(changed)} differ); "
                          f"pass --name to record a refinement at this fidelity")
    data = check_task(spec.model, spec.task, chosen, data_dir=spec.data_dir)
    base_metric = data.task.metric if spec.objectives.metric == "auto" else spec.objectives.metric
    split = "dev" if data.dev is not None else "heldout"
    metric = f"dev_{base_metric}" if split == "dev" else base_metric

    seed_list = seeds_for(chosen, seeds)
    linked = _open_linked(storage, name, source, chosen, seed_list, metric, split)
    done = {(t.user_attrs.get("source_trial"), t.user_attrs.get("seed"))
            for t in linked.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    todo = [Run(t, s) for t in front for s in seed_list if (t.number, s) not in done]
    return RefineSession(spec=spec, source=source, linked=linked, front=front, fidelity=chosen, seeds=seed_list,
                         metric=metric, split=split, todo=todo, done_before=len(front) * len(seed_list) - len(todo))


def _open_linked(storage, name: str, source: optuna.Study, fidelity: FidelitySpec, seeds: list[int], metric: str,
                 split: str) -> optuna.Study:
    """Create the linked study (or load it), record its attrs, and list it on the source study."""
    if name not in study_names(storage):
        try:
            directions = [objective_of(source).direction, "minimize"]
            linked = optuna.create_study(storage=storage, study_name=name, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            linked = optuna.load_study(study_name=name, storage=storage)
    else:
        linked = optuna.load_study(study_name=name, storage=storage)
    if "fidelity" not in linked.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            linked.set_metric_names([metric, "params_pct"])
        linked.set_user_attr(REFINEMENT_OF, source.study_name)
        linked.set_user_attr("fidelity", fidelity.model_dump(mode="json"))
        linked.set_user_attr("metric", metric)
        linked.set_user_attr("split", split)
        linked.set_user_attr("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    known = [int(s) for s in linked.user_attrs.get("seeds") or []]
    linked.set_user_attr("seeds", sorted(set(known) | set(seeds)))
    listed = list(source.user_attrs.get(REFINEMENTS) or [])
    if name not in listed:
        source.set_user_attr(REFINEMENTS, [*listed, name])
    return linked


# --- running -------------------------------------------------------------------------------------
def refine_executor(session: RefineSession) -> Executor:
    """The executor of `session.spec.execution` (Ray actors or inline) running `evaluate_run`."""
    spec = session.spec
    return make_executor(spec, partial(evaluate_run, spec.model, spec.task, spec.data_dir))


class Refiner:
    """Runs a session's runs on an executor and records each as a trial of the linked study."""

    def __init__(self, session: RefineSession, executor: Executor, on_event: Callable[[str], None] | None = None):
        self.session = session
        self.executor = executor
        self.on_event = on_event or (lambda message: None)
        self.dispatch = Dispatcher(executor, session.metric, error=RefineError, noun="runs")
        self._inflight: dict[int, tuple[Run, dt.datetime]] = {}
        self._queue: list[Run] = []
        self._next = 0

    def run(self) -> RefineSession:
        """Evaluate every run still to do; Ctrl-C cancels what is in flight (nothing is left RUNNING)."""
        self._queue = list(self.session.todo)
        try:
            self.dispatch.run(self._next_job, self._on_outcome)
        finally:
            self._inflight.clear()
        return self.session

    def _next_job(self) -> Job | None:
        if not self._queue:
            return None
        run = self._queue.pop(0)
        key, self._next = self._next, self._next + 1
        fidelity = self.session.fidelity.model_copy(update={"seed": run.seed}).model_dump(mode="json")
        self._inflight[key] = (run, dt.datetime.now())
        return Job(key, {"plan": trial_attr(run.source.user_attrs, "plan"), "fidelity": fidelity})

    def _on_outcome(self, outcome: Outcome) -> bool:
        """Record a run; a lost worker's run is queued again (False: not a result) while it has retries."""
        run, started = self._inflight.pop(outcome.number)
        if outcome.lost and run.attempt < self.session.spec.execution.max_retries:
            self.on_event(f"trial {run.source.number} seed {run.seed}: worker lost, retrying")
            self._queue.append(Run(run.source, run.seed, run.attempt + 1))
            return False
        self._record(run, started, outcome)
        return True

    def _record(self, run: Run, started: dt.datetime, outcome: Outcome) -> None:
        s, source = self.session, run.source
        attrs = {"source_trial": source.number, "seed": run.seed, "split": s.split,
                 **{k: source.user_attrs[k] for k in ("plan", "plan_summary", "params", "params_pct")
                    if k in source.user_attrs}}
        if outcome.attrs:
            attrs.update(result_attrs(outcome.attrs))  # `result` and its long parts (autopeft.store.attrs)
        if outcome.ok:
            trial = optuna.trial.create_trial(values=[outcome.metric, source.values[1]], params=source.params,
                                              distributions=source.distributions, user_attrs=attrs)
            s.completed += 1
            event = f"trial {source.number} seed {run.seed}: {s.metric} {outcome.metric:.4f}"
        else:
            attrs["failure"] = outcome.failure
            trial = optuna.trial.create_trial(state=TrialState.FAIL, params=source.params,
                                              distributions=source.distributions, user_attrs=attrs)
            s.failed += 1
            event = f"trial {source.number} seed {run.seed} failed: {(outcome.failure or {}).get('message', '')}"
        trial.datetime_start = started
        s.linked.add_trial(trial)
        self.on_event(f"[{s.done_before + s.completed}/{s.total}] {event}")


__all__ = ["RefineError", "RefineSession", "Refiner", "StudyError", "evaluate_run", "parse_fidelity",
           "prepare_refinement", "refine_executor", "seeds_for"]
