"""Fast, incremental reads of Optuna's tables: the study list and trial rows for the CLI and the dashboard.

Loading a 10,000-trial study through `Storage.get_all_trials` takes about 15 s (every param,
distribution and attribute becomes Python objects). The study page needs a few columns only, so
`StudyReader` selects them with SQLAlchemy Core over Optuna's own table definitions (read, never
written), and keeps finished trials in memory: a refresh asks only for new trials and the ones that
were still running — the same scheme as Optuna's `_CachedStorage`. Single trials (the trial page)
are read with Optuna's public storage API.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy as sa

# Optuna's ORM models are private, but they are its schema: the one source of truth for table and column
# names; no public API reads a few columns of every trial (`get_all_trials` builds every FrozenTrial).
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from autopeft.objective import Objective, stored_objective
from autopeft.spec import SearchSpec
from autopeft.store.attrs import OBJECTIVE_ATTR, REFINEMENT_OF, SPEC_ATTR, readable
from autopeft.store.errors import StudyError

# The user attrs the study page needs; the rest stays in the DB until a trial page asks for it.
ROW_ATTRS = ("plan", "plan_summary", "params", "params_pct", "failure", "resources")
FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

_trials = models.TrialModel.__table__
_values = models.TrialValueModel.__table__
_attrs = models.TrialUserAttributeModel.__table__
_studies = models.StudyModel.__table__
_study_attrs = models.StudyUserAttributeModel.__table__
_directions = models.StudyDirectionModel.__table__


@dataclass(frozen=True)
class TrialRow:
    """What the study page shows of one trial. `metric`/`params_pct` are the objective values when complete."""

    number: int
    state: str  # "complete", "fail", "running", "waiting", "pruned"
    metric: float | None
    params_pct: float | None
    params: int | None
    summary: str
    plan_json: str | None  # parsed on first use: most rows never need their plan
    failure: dict[str, Any] | None
    start: dt.datetime | None
    complete: dt.datetime | None
    resources: dict[str, Any] | None = None  # {device, precision, peak_memory_mb} of an evaluated trial

    @functools.cached_property
    def plan(self) -> dict[str, Any] | None:
        """The `autopeft-plan/v1` dict, or None when the trial records none (or a malformed one)."""
        if self.plan_json is None:
            return None
        plan = readable(json.loads(self.plan_json))  # stored as JSON text when long (autopeft.store.attrs)
        return plan if isinstance(plan, dict) else None

    @functools.cached_property
    def families(self) -> tuple[str, ...]:
        """Module families present in at least one layer."""
        return tuple(str(m.get("family", "?")) for m in (self.plan or {}).get("modules", [])
                     if isinstance(m, dict) and any(s for s in m.get("sizes", [])))


@dataclass(frozen=True)
class StudyInfo:
    """A study as listed: id, name, and its autopeft spec (None for a study autopeft did not make)."""

    study_id: int
    name: str
    spec: SearchSpec | None
    objective: Objective = Objective()  # the first objective: metric, direction, reference (autopeft.objective)


@dataclass
class _Cache:
    rows: dict[int, TrialRow] = field(default_factory=dict)  # trial_id -> row
    unfinished: set[int] = field(default_factory=set)
    max_id: int = -1
    version: int = 0  # bumped whenever a read brings a new or changed row
    ordered: list[TrialRow] = field(default_factory=list)


class StudyReader:
    """Read-only view of one storage; thread-safe; caches finished trials per study."""

    def __init__(self, storage: optuna.storages.RDBStorage | None = None, *, engine: sa.Engine | None = None,
                 url: str | None = None):
        """On `storage`; or on a bare read-only `engine` for `url`, the Optuna storage opened only when needed."""
        if storage is None and (engine is None or url is None):
            raise TypeError("StudyReader needs a storage, or an engine and its url")
        self._storage, self._url = storage, url
        self.engine: sa.Engine = engine if engine is not None else storage.engine
        self._caches: dict[int, _Cache] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> StudyReader:
        """A reader on the study DB at `url`, read-only, on a bare SQLAlchemy engine: Optuna's storage (its
        migrations imported and the schema version checked, about 0.25 s) is opened only for what needs it
        (`trial`, linked studies). `StudyError` (one line) when the DB cannot be read."""
        from autopeft.store.connect import cannot_open, readonly_url

        ro_url, kwargs = readonly_url(url)
        engine = sa.create_engine(ro_url, **kwargs)
        try:
            with engine.connect() as conn:
                conn.execute(sa.select(_studies.c.study_id).limit(1)).all()
        except sa.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise cannot_open(url, exc) from None
        return cls(engine=engine, url=url)

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        """Optuna's storage on the same DB (read-only when the reader was `open`ed)."""
        if self._storage is None:
            from autopeft.store.connect import open_readonly

            self._storage = open_readonly(self._url)
        return self._storage

    @classmethod
    def of(cls, study: optuna.Study) -> StudyReader:
        """A reader on the storage that `study` lives in (e.g. to summarise a search just run)."""
        # An Optuna `Study` shows its storage only privately, and wraps an RDBStorage in a `_CachedStorage`
        # (its `_backend`); the reader needs the RDBStorage's engine.
        storage = study._storage
        return cls(getattr(storage, "_backend", storage))

    # --- studies -------------------------------------------------------------------------------
    def studies(self) -> list[StudyInfo]:
        with self.engine.connect() as conn:
            names = conn.execute(sa.select(_studies.c.study_id, _studies.c.study_name)
                                 .order_by(_studies.c.study_id)).all()
            specs = dict(conn.execute(sa.select(_study_attrs.c.study_id, _study_attrs.c.value_json)
                                      .where(_study_attrs.c.key == SPEC_ATTR)).all())
            objectives = dict(conn.execute(sa.select(_study_attrs.c.study_id, _study_attrs.c.value_json)
                                           .where(_study_attrs.c.key == OBJECTIVE_ATTR)).all())
            directions = dict(conn.execute(sa.select(_directions.c.study_id, _directions.c.direction)
                                           .where(_directions.c.objective == 0)).all())
        return [StudyInfo(study_id, name, _parse_spec(specs.get(study_id)),
                          _objective(objectives.get(study_id), specs.get(study_id), directions.get(study_id)))
                for study_id, name in names]

    def refinements(self, source: str) -> list[tuple[int, str]]:
        """`(study_id, name)` of the studies of `autopeft refine` that refine study `source`, oldest first."""
        with self.engine.connect() as conn:
            linked = conn.execute(
                sa.select(_studies.c.study_id, _studies.c.study_name, _study_attrs.c.value_json)
                .join(_study_attrs, _study_attrs.c.study_id == _studies.c.study_id)
                .where(_study_attrs.c.key == REFINEMENT_OF).order_by(_studies.c.study_id)).all()
        return [(study_id, name) for study_id, name, value in linked if json.loads(value) == source]

    def search(self, name: str) -> StudyInfo:
        """The autopeft search named `name` (its spec parsed); `StudyError` when there is none by that name,
        or that study is not a search (a linked study of `autopeft refine`, or not made by autopeft)."""
        from autopeft.store.studies import no_such_study, not_a_search

        infos = self.studies()
        info = next((i for i in infos if i.name == name), None)
        if info is None:
            raise no_such_study(name, [i.name for i in infos])
        if info.spec is None:
            with self.engine.connect() as conn:
                source = conn.execute(sa.select(_study_attrs.c.value_json).where(
                    _study_attrs.c.study_id == info.study_id, _study_attrs.c.key == REFINEMENT_OF)).scalar()
            raise not_a_search(name, json.loads(source) if source is not None else None)
        return info

    def study(self, study_id: int) -> StudyInfo:
        for info in self.studies():
            if info.study_id == study_id:
                return info
        raise StudyError(f"no study with id {study_id} in this storage")

    # --- trials --------------------------------------------------------------------------------
    def rows(self, study_id: int) -> list[TrialRow]:
        """All trials of the study by number; reads only new and previously unfinished trials."""
        return self.snapshot(study_id)[1]

    def snapshot(self, study_id: int) -> tuple[int, list[TrialRow]]:
        """`(version, rows)`: the version changes exactly when some row did since the last read."""
        with self._lock:
            cache = self._caches.setdefault(study_id, _Cache())
            wanted = sa.or_(_trials.c.trial_id > cache.max_id, _trials.c.trial_id.in_(sorted(cache.unfinished)))
            with self.engine.connect() as conn:
                base = conn.execute(
                    sa.select(_trials.c.trial_id, _trials.c.number, _trials.c.state, _trials.c.datetime_start,
                              _trials.c.datetime_complete)
                    .where(_trials.c.study_id == study_id, wanted)
                ).all()
                ids = [r.trial_id for r in base]
                values: dict[int, dict[int, float | None]] = {}
                attrs: dict[int, dict[str, Any]] = {}
                if ids:
                    in_study = sa.select(_trials.c.trial_id).where(_trials.c.study_id == study_id, wanted)
                    for trial_id, objective, value, kind in conn.execute(
                        sa.select(_values.c.trial_id, _values.c.objective, _values.c.value, _values.c.value_type)
                        .where(_values.c.trial_id.in_(in_study))
                    ):
                        values.setdefault(trial_id, {})[objective] = models.TrialValueModel.stored_repr_to_value(
                            value, kind)
                    for trial_id, key, value_json in conn.execute(
                        sa.select(_attrs.c.trial_id, _attrs.c.key, _attrs.c.value_json)
                        .where(_attrs.c.trial_id.in_(in_study), _attrs.c.key.in_(ROW_ATTRS))
                    ):
                        attrs.setdefault(trial_id, {})[key] = value_json if key == "plan" else json.loads(value_json)
            changed = False
            for r in base:
                state = TrialState[r.state] if isinstance(r.state, str) else TrialState(r.state)
                row = _row(r.number, state, values.get(r.trial_id, {}), attrs.get(r.trial_id, {}),
                           _local(r.datetime_start), _local(r.datetime_complete))
                if cache.rows.get(r.trial_id) != row:
                    cache.rows[r.trial_id] = row
                    changed = True
                if state in FINISHED:
                    cache.unfinished.discard(r.trial_id)
                else:
                    cache.unfinished.add(r.trial_id)
                cache.max_id = max(cache.max_id, r.trial_id)
            if changed or cache.version == 0:
                cache.version += 1
                cache.ordered = sorted(cache.rows.values(), key=lambda row: row.number)
            return cache.version, cache.ordered

    def trial(self, study_id: int, number: int) -> FrozenTrial:
        """One trial with every field, through Optuna's storage API; `KeyError` when there is none."""
        if not 0 <= number < 2**63:  # SQLite's INTEGER range; a larger number cannot even be looked up
            raise KeyError(f"trial {number}: no such trial in this study")
        try:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
        except KeyError:
            raise KeyError(f"trial {number}: no such trial in this study") from None
        return self.storage.get_trial(trial_id)


def _row(number: int, state: TrialState, values: dict[int, float | None], attrs: dict[str, Any],
         start: dt.datetime | None, complete: dt.datetime | None) -> TrialRow:
    done = state == TrialState.COMPLETE and len(values) >= 2
    pct = values.get(1) if done else attrs.get("params_pct")
    failure = attrs.get("failure")
    return TrialRow(
        number=number,
        state=state.name.lower(),
        metric=values.get(0) if done else None,
        params_pct=float(pct) if isinstance(pct, int | float) else None,
        params=attrs.get("params") if isinstance(attrs.get("params"), int) else None,
        summary=str(attrs.get("plan_summary", "")),
        plan_json=attrs.get("plan"),
        failure=failure if isinstance(failure, dict) else None,
        start=start,
        complete=complete,
        resources=attrs["resources"] if isinstance(attrs.get("resources"), dict) else None,
    )


def _local(value: dt.datetime | None) -> dt.datetime | None:
    """Optuna stores naive UTC and shows naive local time (as `FrozenTrial` does)."""
    if value is None:
        return None
    return value + _utc_offset(value.replace(minute=0, second=0, microsecond=0))


@functools.lru_cache(maxsize=4096)
def _utc_offset(hour: dt.datetime) -> dt.timedelta:
    """Local UTC offset at a (naive UTC) hour; offsets change on the hour, so one lookup serves an hour of trials."""
    return hour.replace(tzinfo=dt.UTC).astimezone().utcoffset() or dt.timedelta(0)


def _objective(objective_json: str | None, spec_json: str | None, direction) -> Objective:
    """The study's objective from its raw attrs (see `autopeft.objective.stored_objective`)."""
    try:
        spec = readable(json.loads(spec_json)) if spec_json else None
        return stored_objective(json.loads(objective_json) if objective_json else None,
                                spec if isinstance(spec, dict) else None, getattr(direction, "name", "maximize"))
    except (ValueError, TypeError):  # attrs not written by autopeft: list the study with the default objective
        return Objective()


def _parse_spec(value_json: str | None) -> SearchSpec | None:
    if value_json is None:
        return None
    try:
        return SearchSpec.model_validate(readable(json.loads(value_json)))
    except ValueError:  # a spec from another autopeft version, or not autopeft's: list it without one
        return None
