"""The driver's writes of one trial, batched: each is one transaction where Optuna's API would make several.

Optuna writes every `trial.suggest_*` and every `set_user_attr` in a transaction of its own (a session,
a SELECT of the trial, the write, a commit: 2-5 ms each on SQLite), and counts trials by building every
RUNNING trial as a `FrozenTrial`. A search driver keeping 64 workers busy does that about 30 times a
second, so here:

- `ask` is `study.ask()` without bringing Optuna's trial cache up to date first (which reads every
  RUNNING trial whole), and a new trial is one INSERT, not read back;
- `draw` samples every parameter of a trial exactly as `trial.suggest_*` would (enqueued values, the
  sampler's relative sample, else its independent sample, in the given order); `Draft.write` writes them,
  with the trial's attributes, in one transaction;
- `set_attrs` writes several attributes of a trial in one transaction, `finish` them and its result (what
  `study.tell` writes) as one guarded UPDATE of its state and a bulk insert each of values and attributes;
- `state_counts` counts a study's trials by state in one `GROUP BY` query;
- `new_trials` creates several trials in one transaction (for the workers free at once), `fail` fails one.

Each uses Optuna's RDB storage internals (its ORM models and the per-write helpers of `RDBStorage`, so
the rows are exactly what Optuna itself writes); the comments say why no public API serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.trial import FrozenTrial, TrialState


def _backend(study: optuna.Study) -> optuna.storages.RDBStorage:
    # `study._storage` is Optuna's `_CachedStorage` around the `RDBStorage` that holds the engine and sessions
    storage = study._storage
    return getattr(storage, "_backend", storage)


def _session(backend: optuna.storages.RDBStorage):
    # Optuna's own session scope: commit at the end, a rollback and `StorageInternalError` on a DB error
    from optuna.storages._rdb.storage import _create_scoped_session

    return _create_scoped_session(backend.scoped_session)


@dataclass
class Draft:
    """The parameters of a trial, drawn and not yet written: `values` (name -> value, external form)."""

    trial: optuna.Trial
    values: dict[str, Any]
    _new: dict[str, BaseDistribution]

    def write(self, attrs: Mapping[str, Any] = {}) -> None:
        """Write the drawn parameters and `attrs` (user attributes) in one transaction."""
        from optuna.distributions import distribution_to_json
        from optuna.storages._rdb import models
        from sqlalchemy import insert

        study, trial_id = self.trial.study, self.trial._trial_id
        backend, known = _backend(study), _known_distributions(study)
        for name, distribution in self._new.items():
            if name in known:
                check_distribution_compatibility(known[name], distribution)
        rows = [{"trial_id": trial_id, "param_name": name, "param_value": distribution.to_internal_repr(self.values[name]),
                 "distribution_json": distribution_to_json(distribution)} for name, distribution in self._new.items()]
        with _session(backend) as session:
            _check_updatable(backend, session, trial_id)
            if rows:  # one INSERT of every row, where Optuna's `set_trial_param` makes a transaction of each
                session.execute(insert(models.TrialParamModel.__table__), rows)
            _add_attrs(backend, session, [trial_id], attrs)
        for name, distribution in self._new.items():
            known.setdefault(name, distribution)
        self._new = {}
        self.trial._cached_frozen_trial.user_attrs.update(attrs)


def ask(study: optuna.Study, counts: Mapping[TrialState, int] | None = None,
        user_attrs: Mapping[str, Any] = {}) -> optuna.Trial:
    """`study.ask()` without re-reading the study: a queued (WAITING) trial if there is one, else a new one.

    `Study.ask` first brings Optuna's trial cache up to date, which reads every RUNNING trial whole (all
    its parameters and attributes): 40 ms per ask with 64 trials running. Samplers that look at the study
    still read it themselves (`study.get_trials`); the random sampler and enqueued trials need nothing.
    `counts`: the study's `state_counts`, just read; without WAITING among them the queue is not read again.
    `user_attrs` are written with a new trial (`new_trials`), not on a queued one.
    """
    # the steps of `Study.ask` (no fixed distributions) with `_pop_waiting_trial_id` as one query of ids
    from optuna.storages._rdb import models
    from sqlalchemy import select

    storage = study._storage
    study._thread_local.cached_all_trials = None  # as `Study.ask`: a trial's cached view of the study ends here
    waiting = []
    if counts is None or counts.get(TrialState.WAITING):
        query = (select(models.TrialModel.trial_id).where(models.TrialModel.study_id == study._study_id)
                 .where(models.TrialModel.state == TrialState.WAITING).order_by(models.TrialModel.trial_id))
        with _backend(study).engine.connect() as connection:
            waiting = connection.execute(query).scalars().all()
    for trial_id in waiting:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):  # False: another process took it
                return optuna.Trial(study, trial_id)  # reads the queued trial's fixed params
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return trial_of(study, new_trials(study, 1, user_attrs)[0])


def new_trials(study: optuna.Study, n: int, user_attrs: Mapping[str, Any] = {}) -> list[FrozenTrial]:
    """`n` new RUNNING trials of `study`, numbered in order, as Optuna's `create_new_trial` writes each, with the
    user attributes `user_attrs`, in one transaction (`trial_of` makes each an `optuna.Trial` when its
    parameters are drawn).

    Optuna adds each row through the ORM, numbers it in two more statements and commits, and
    `optuna.Trial(...)` then reads the new trial back whole (a query per table); here one INSERT ... SELECT
    numbers the first trial by the study's trials before it, one multi-row INSERT adds the others after it,
    and the FrozenTrials are built from what was written. Elsewhere than SQLite the study row is locked
    first, as Optuna does, so that two processes cannot give their trials one number (SQLite's first INSERT
    takes the write lock of the whole DB until the commit).
    """
    from optuna.storages._cached_storage import _StudyInfo
    from optuna.storages._rdb import models
    from sqlalchemy import func, insert, literal, select

    if n < 1:
        return []
    backend, study_id = _backend(study), study._study_id
    trials = models.TrialModel.__table__
    started = datetime.now()  # FrozenTrial datetimes are naive local time; the row holds naive UTC (Optuna's model)
    row = select(func.count(), literal(study_id, trials.c.study_id.type), literal(TrialState.RUNNING, trials.c.state.type),
                 literal(_utc(started), trials.c.datetime_start.type)).where(trials.c.study_id == study_id)
    first = insert(trials).from_select(["number", "study_id", "state", "datetime_start"], row)
    returning = backend.engine.dialect.insert_returning
    with _session(backend) as session:
        if backend.engine.name != "sqlite":  # SQLite's INSERT takes the write lock of the whole DB itself
            session.execute(select(models.StudyModel.study_id).where(models.StudyModel.study_id == study_id)
                            .with_for_update())
        if returning:
            ids = [tuple(session.execute(first.returning(trials.c.trial_id, trials.c.number)).one())]
        else:  # e.g. SQLite before 3.35
            trial_id = session.execute(first).lastrowid
            ids = [(trial_id, session.execute(select(trials.c.number).where(trials.c.trial_id == trial_id)).scalar_one())]
        rest = [{"number": ids[0][1] + k, "study_id": study_id, "state": TrialState.RUNNING,
                 "datetime_start": _utc(started)} for k in range(1, n)]
        if rest and returning and backend.engine.dialect.insert_executemany_returning_sort_by_parameter_order:
            ids += [tuple(r) for r in session.execute(
                insert(trials).returning(trials.c.trial_id, trials.c.number, sort_by_parameter_order=True), rest)]
        else:
            ids += [(session.execute(insert(trials), values).inserted_primary_key[0], values["number"]) for values in rest]
        _add_attrs(backend, session, [trial_id for trial_id, _ in ids], user_attrs)

    def frozen(trial_id: int, number: int) -> FrozenTrial:
        return FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None, datetime_start=started,
                           datetime_complete=None, params={}, distributions={}, user_attrs=dict(user_attrs),
                           system_attrs={}, intermediate_values={}, trial_id=trial_id)

    cache = study._storage
    if cache is not backend:  # as `_CachedStorage.create_new_trial`: the study's trial list knows the new trials
        with cache._lock:
            cache._studies.setdefault(study_id, _StudyInfo())
            cache._add_trials_to_cache(study_id, [frozen(*i) for i in ids])
    return [frozen(*i) for i in ids]


def trial_of(study: optuna.Study, frozen: FrozenTrial) -> optuna.Trial:
    """`optuna.Trial(study, trial_id)` for a trial created by this process (`new_trials`), from its FrozenTrial.

    `Trial.__init__` reads the trial back from the DB; its other steps are these (tests compare the
    result's attributes with those of an `optuna.Trial` built the usual way).
    """
    from optuna import pruners

    trial = optuna.Trial.__new__(optuna.Trial)
    trial.study, trial._trial_id, trial.storage = study, frozen._trial_id, study._storage
    trial._cached_frozen_trial = frozen
    study.sampler.before_trial(pruners._filter_study(study, frozen), frozen)
    trial.relative_search_space, trial._relative_params = None, None
    trial._fixed_params = frozen.system_attrs.get("fixed_params", {})
    return trial


def _utc(local: datetime) -> datetime:
    """A naive local datetime as the naive UTC one Optuna's RDB models store."""
    return local.astimezone(UTC).replace(tzinfo=None)


def draw(trial: optuna.Trial, distributions: Mapping[str, BaseDistribution]) -> Draft:
    """Every parameter of `trial` (name -> distribution, in this order), drawn as `trial.suggest_*` would: an
    enqueued value (retry, warm start), else the sampler's relative sample, else its independent sample.

    Nothing is written until `Draft.write`; meanwhile `trial.params` already holds the values.
    """
    # `Trial._suggest` writes each value as soon as it is drawn; the same steps here, the writes deferred
    from optuna import pruners

    frozen = trial._cached_frozen_trial
    study = trial.study
    values: dict[str, Any] = {}
    new: dict[str, BaseDistribution] = {}
    for name, distribution in distributions.items():
        if name in frozen.distributions:
            check_distribution_compatibility(frozen.distributions[name], distribution)
            values[name] = frozen.params[name]
            continue
        if trial._is_fixed_param(name, distribution):
            value = trial._fixed_params[name]
        elif distribution.single():
            value = _single(distribution)
        elif trial._is_relative_param(name, distribution):
            value = trial.relative_params[name]
        else:
            value = study.sampler.sample_independent(pruners._filter_study(study, frozen), frozen, name, distribution)
        distribution.to_internal_repr(value)  # as Optuna: an invalid value (nan, not a choice) raises here
        frozen.distributions[name], frozen.params[name] = distribution, value
        values[name], new[name] = value, distribution
    return Draft(trial, values, new)


def _known_distributions(study: optuna.Study) -> dict[str, BaseDistribution]:
    # `_CachedStorage.set_trial_param` keeps each parameter's distribution per study, so that Optuna checks a new
    # trial's against the study's once per process, not with a query per write; the same cache here
    cache = getattr(study._storage, "_studies", None)
    info = cache.get(study._study_id) if cache is not None else None
    return info.param_distribution if info is not None else {}


def _single(distribution: BaseDistribution) -> Any:
    from optuna.distributions import _get_single_value

    return _get_single_value(distribution)


def set_attrs(trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """`trial.set_user_attr(key, value)` for every item of `attrs`, in one transaction."""
    if not attrs:
        return
    backend = _backend(trial.study)
    with _session(backend) as session:
        _check_updatable(backend, session, trial._trial_id)
        _add_attrs(backend, session, [trial._trial_id], attrs)
    trial._cached_frozen_trial.user_attrs.update(attrs)


def finish(trial: optuna.Trial, values: Sequence[float] | None = None, state: TrialState | None = None,
           attrs: Mapping[str, Any] = {}) -> TrialState:
    """`study.tell(trial, values)` (or `state=...`) and the trial's attributes `attrs`, in one transaction;
    returns the state recorded (FAIL, with a `failure` attribute, for values Optuna cannot store such as nan).

    `UpdateFinishedTrialError` when the trial is finished already (another process failed it as stale).
    """
    # `Study.tell` reads the trial twice, writes its state apart from any attribute and each value after a
    # SELECT of it; the same rows here, from the trial this process holds: the state changes only if the
    # trial is still RUNNING (one UPDATE), then its values (a RUNNING trial has none) and attributes
    from optuna import pruners
    from optuna.storages._rdb import models
    from optuna.study._tell import _check_values_are_feasible
    from sqlalchemy import insert, update

    study, frozen = trial.study, trial._cached_frozen_trial
    attrs = dict(attrs)
    if state is None:
        problem = _check_values_are_feasible(study, values) if values is not None else "no values"
        state = TrialState.COMPLETE if problem is None else TrialState.FAIL
        if problem is not None:
            values, attrs["failure"] = None, {"kind": "invalid-result", "message": problem}
    values = None if values is None else [float(v) for v in values]
    backend, trial_id = _backend(study), trial._trial_id
    trials, stored = models.TrialModel.__table__, models.TrialValueModel.value_to_stored_repr
    try:
        study.sampler.after_trial(pruners._filter_study(study, frozen), frozen, state, values)
    finally:
        with _session(backend) as session:
            changed = session.execute(update(trials).where(trials.c.trial_id == trial_id,
                                                           trials.c.state == TrialState.RUNNING)
                                      .values(state=state, datetime_complete=_utc(datetime.now()))).rowcount
            if changed != 1:
                _check_updatable(backend, session, trial_id)  # raises: finished (or no such trial)
                raise RuntimeError(f"trial {trial.number} is not running; it cannot be finished")
            _add_attrs(backend, session, [trial_id], attrs)
            if values:
                session.execute(insert(models.TrialValueModel.__table__),
                                [dict(zip(("value", "value_type"), stored(value), strict=True), trial_id=trial_id, objective=objective)
                                 for objective, value in enumerate(values)])
    frozen.user_attrs.update(attrs)
    return state


def fail(study: optuna.Study, trial: optuna.Trial | FrozenTrial, failure: Mapping[str, Any]) -> None:
    """Record this process's RUNNING `trial` FAILED, with the user attr `failure`; one finished meanwhile (e.g.
    failed as stale by another process) is left as it is. `trial` may be a FrozenTrial of `new_trials` that no
    `optuna.Trial` was made for: none is made (its sampler hooks do not run)."""
    try:  # `optuna.Trial.set_user_attr` without the Trial
        study._storage.set_trial_user_attr(trial._trial_id, "failure", dict(failure))
    except optuna.exceptions.UpdateFinishedTrialError:
        return
    study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)


def _check_updatable(backend: optuna.storages.RDBStorage, session, trial_id: int) -> None:
    """`UpdateFinishedTrialError` when the trial is finished (e.g. another process failed it as stale), `KeyError`
    when there is no such trial (as Optuna's `find_or_raise_by_id`)."""
    from optuna.storages._rdb import models
    from sqlalchemy import select

    trials = models.TrialModel.__table__
    state = session.execute(select(trials.c.state).where(trials.c.trial_id == trial_id)).scalar_one_or_none()
    if state is None:
        raise KeyError(f"no trial with trial_id {trial_id}")
    backend.check_trial_is_updatable(trial_id, state)


#: (dialect name -> the INSERT ... ON CONFLICT DO UPDATE of a trial's user attributes), built once: SQLAlchemy
#: then reuses its compiled form
_UPSERTS: dict[str, Any] = {}


def _add_attrs(backend: optuna.storages.RDBStorage, session, trial_ids: Sequence[int], attrs: Mapping[str, Any]) -> None:
    """Insert or replace the user attributes `attrs` of each trial of `trial_ids`: one statement on SQLite and
    PostgreSQL (`INSERT ... ON CONFLICT DO UPDATE`), Optuna's own upsert per attribute elsewhere."""
    import json

    from optuna.storages._rdb import models

    if not attrs:
        return
    name = backend.engine.name
    if name not in ("sqlite", "postgresql"):
        for trial_id in trial_ids:
            for key, value in attrs.items():
                backend._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)
        return
    if name not in _UPSERTS:
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(models.TrialUserAttributeModel.__table__)
        _UPSERTS[name] = statement.on_conflict_do_update(index_elements=["trial_id", "key"],
                                                         set_={"value_json": statement.excluded.value_json})
    session.execute(_UPSERTS[name], [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                     for trial_id in trial_ids for key, value in attrs.items()])


def state_counts(study: optuna.Study) -> dict[TrialState, int]:
    """How many trials of `study` are in each state (states without one are absent), by every process."""
    # `get_n_trials` builds every trial of the states asked for; one GROUP BY over the trials table instead
    from optuna.storages._rdb import models
    from sqlalchemy import func, select

    query = (select(models.TrialModel.state, func.count()).where(models.TrialModel.study_id == study._study_id)
             .group_by(models.TrialModel.state))
    with _backend(study).engine.connect() as connection:
        rows = connection.execute(query).all()
    return {TrialState(getattr(state, "value", state)): count for state, count in rows}
