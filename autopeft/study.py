"""The study DB: Optuna RDB storage (SQLite by default, PostgreSQL for clusters), the only store.

A study is 2-objective: values = (task metric, trainable params % ↓); the metric is maximised or
minimised as its `Objective` says (Optuna's study directions, and the user attr `objective` =
{metric, direction, reference}; see `autopeft.objective`). The study's user attrs hold the full spec
(`spec`), so a study can be resumed from the DB alone. Each trial's user attrs:
`plan` (autopeft-plan/v1 dict), `plan_summary`, `params`, `params_pct` (set when proposed);
`result` (the worker's `TrialResult` as a dict: `metrics`, `metric`, `status`, `seed`, `train_seconds`,
`eval_seconds`, `peak_memory_mb`, `host`, `device`, ...) and its long parts `fidelity`, `split`, `curve`
as attributes of their own, once evaluated (read it whole with `autopeft.attrs.trial_result`; every
attribute stays within the 1,024 characters optuna-dashboard shows, see `autopeft.attrs`);
`failure` = {kind, message} for failed trials; `retry_of` / `attempt` for retried configurations.
A study refined by `autopeft refine` lists its linked studies in the user attr `refinements`
(conventions in `autopeft.refinement`).
With successive halving (`promotion.enabled`): `rungs`, one entry per finished rung = {rung, steps,
metric, train_seconds} plus, below the top rung, the decision {promote, rank, of, keep[, reason]};
`steps` (optimizer steps over every rung, failed runs included); trials stopped below the top rung
are PRUNED and have no values.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autopeft.attrs import readable, storable
from autopeft.objective import Objective, stored_objective
from autopeft.pareto import hypervolume, pareto_indices
from autopeft.refinement import REFINEMENT_OF
from autopeft.spec import SearchSpec

SPEC_ATTR = "spec"
OBJECTIVE_ATTR = "objective"


class StudyError(ValueError):
    """A study or storage problem the user can fix; the message is one line."""


URL_EXAMPLES = "sqlite:///autopeft.db, or postgresql+psycopg://USER:PASS@HOST/DB"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Connect to the study DB at `url` (any SQLAlchemy URL) to read and write it; one-line `StudyError` when
    unreachable, and for a SQLite file that is not a study DB or is read-only (`autopeft.dbfile`)."""
    check_url(url)
    path = sqlite_path(url)
    if path is not None:
        from autopeft.dbfile import check_for_writing

        check_for_writing(url, path)
    for attempt in range(3):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
            break
        except ImportError as exc:
            missing = getattr(exc.__cause__, "name", None) or "the database driver"
            raise StudyError(f"cannot open storage {redact_url(url)}: {missing} is not installed; "
                             "pip install 'autopeft[postgres]' for PostgreSQL") from None
        except Exception as exc:  # SQLAlchemy/driver errors vary by backend; all mean "cannot use this URL"
            if attempt < 2 and ("already exists" in str(exc) or "UniqueViolation" in str(exc)):
                time.sleep(0.5)  # another process is creating the schema right now
                continue
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = _scrub(reason, url)
            hint = ("is the database server running? check --storage" if _is_refused(reason)
                    else f"check --storage (e.g. {URL_EXAMPLES})")
            raise StudyError(f"cannot open storage {redact_url(url)}: {reason}; {hint}") from None
    if url.startswith("sqlite"):
        _use_wal(storage.engine)
    return storage


def open_existing_storage(url: str) -> optuna.storages.RDBStorage:
    """`open_storage` for commands that only read: a SQLite file that does not exist is an error, not created,
    and one that does is opened read-only (`autopeft.dbfile.readonly_creator`), so nothing can change it."""
    check_url(url)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "no such file"
        raise StudyError(f"storage {redact_url(url)}: {what} {path}; run `autopeft search` first or check --storage")
    if path is None:
        return open_storage(url)
    from autopeft.dbfile import readonly_creator

    creator = readonly_creator(url, path)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"creator": creator}, skip_table_creation=True)
    except Exception as exc:  # an Optuna schema this version cannot read, mostly
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StudyError(f"cannot read storage {redact_url(url)}: {_scrub(reason, url)}; check --storage") from None


def sqlite_path(url: str):
    """The file of a `sqlite:///PATH` URL (a `Path`), None for other backends and in-memory SQLite."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database).expanduser().resolve()


def check_url(url: str) -> None:
    """One-line `StudyError` for a URL SQLAlchemy cannot parse or a SQLite file whose folder does not exist."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if "://" not in url or (url.startswith("sqlite:") and not url.startswith("sqlite:///") and url != "sqlite://"):
        file = url.removeprefix("sqlite:").lstrip("/")
        raise StudyError(f"storage {redact_url(url)!r}: not a database URL; for a SQLite file write sqlite:///{file} "
                         f"(three slashes), or e.g. {URL_EXAMPLES}")
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except NoSuchModuleError:
        raise StudyError(f"storage {redact_url(url)}: unknown database kind {url.split(':', 1)[0]!r}; expected e.g. "
                         f"{URL_EXAMPLES}") from None
    except (ArgumentError, ValueError):
        raise StudyError(f"storage {redact_url(url)!r}: not a database URL; expected e.g. {URL_EXAMPLES}") from None
    except ImportError:
        return  # a missing driver is reported by open_storage
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise StudyError(f"storage {redact_url(url)}: an in-memory SQLite database, gone when the command ends; pass a file, "
                         "e.g. sqlite:///autopeft.db")
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StudyError(f"storage {redact_url(url)}: folder {path.parent} does not exist; create it or check --storage")


def _is_refused(reason: str) -> bool:
    return any(s in reason.lower() for s in ("connection refused", "could not connect", "connection failed",
                                             "could not translate host", "name or service not known"))


def _use_wal(engine) -> None:
    """SQLite in WAL mode with normal sync: readers (the dashboard) never block the runner, commits
    cost well under a millisecond instead of an fsync each; a process crash loses no committed trial
    (a power cut may lose the last few)."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with it


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


_SECRET_QUERY = re.compile(r"([?&](?:password|passwd|pwd|sslpassword)=)([^&#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with its password (userinfo or `?password=`) replaced by ``***``: for every message, log
    line, stored spec and API response. Plain string work, so it also holds for a URL that does not
    parse (a bad port) and for a password with an unescaped ``@`` or ``/`` (masked up to the last ``@``)."""
    url = _SECRET_QUERY.sub(r"\1***", url)
    user, password, host = _userinfo(url)
    return url if password is None else f"{url.partition('://')[0]}://{user}:***@{host}"


def _userinfo(url: str) -> tuple[str, str | None, str]:
    """(user, password or None, what follows the last ``@``) of `scheme://user:password@host...`."""
    _scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    user, colon, password = creds.partition(":")
    if not (sep and at and colon) or "/" in user:
        return "", None, rest
    return user, password, host


def _scrub(text: str, url: str) -> str:
    """`text` (a driver's error) without the password of `url`, should the driver have echoed it."""
    secrets = [_userinfo(url)[1], *(m.group(2) for m in _SECRET_QUERY.finditer(url))]
    for secret in filter(None, secrets):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", text)
    return text


_redact = redact_url  # the former private name


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def create_study(storage, name: str, spec: SearchSpec | None, objective: Objective) -> optuna.Study:
    """Create study `name` storing `spec` (None: none, e.g. a linked study) and `objective`;
    directions (the objective's, params % min)."""
    study = optuna.create_study(storage=storage, study_name=name, directions=[objective.direction, "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["metric", "params_pct"])
    study.set_user_attr(OBJECTIVE_ATTR, objective.to_dict())
    if spec is not None:
        save_spec(study, spec)
    return study


def objective_of(study: optuna.Study) -> Objective:
    """The study's first objective; studies made before objectives were stored maximise, with the spec's floor."""
    attrs = study.user_attrs
    return stored_objective(attrs.get(OBJECTIVE_ATTR), readable(attrs.get(SPEC_ATTR)), study.directions[0].name)


def spec_record(spec: SearchSpec) -> dict[str, Any]:
    """The spec as stored in the study and shown by the dashboard API: JSON, the storage password redacted
    (resuming needs no URL from the DB: the user passes --storage)."""
    data = spec.model_dump(mode="json")
    data["storage"]["url"] = redact_url(data["storage"]["url"])
    return data


def save_spec(study: optuna.Study, spec: SearchSpec) -> None:
    study.set_user_attr(SPEC_ATTR, storable(spec_record(spec)))  # text when long (autopeft.attrs)


def load_study(storage, name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Load an existing study; `StudyError` listing the known ones when there is none by that name."""
    if name not in study_names(storage):
        known = ", ".join(study_names(storage)) or "none"
        raise StudyError(f"no study named {name!r} in this storage (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler)


def stored_spec(study: optuna.Study) -> SearchSpec:
    data = readable(study.user_attrs.get(SPEC_ATTR))
    if data is None and REFINEMENT_OF in study.user_attrs:
        raise StudyError(f"study {study.study_name!r} holds the `autopeft refine` runs of study "
                         f"{study.user_attrs[REFINEMENT_OF]!r}, not a search; pass {study.user_attrs[REFINEMENT_OF]!r}")
    if data is None:
        raise StudyError(f"study {study.study_name!r} was not made by autopeft (it stores no spec)")
    return SearchSpec.model_validate(data)


DRIVER_PREFIX = "autopeft:driver:"


def heartbeat(study: optuna.Study, driver: str) -> None:
    """Record that search process `driver` is alive now (a study system attr: driver id → unix time)."""
    study._storage.set_study_system_attr(study._study_id, DRIVER_PREFIX + driver, time.time())


def live_drivers(study: optuna.Study, stale_after: float) -> set[str]:
    """Search processes whose last heartbeat is younger than `stale_after` seconds."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
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
            study._storage.set_trial_user_attr(trial._trial_id, "failure", {"kind": "stale", "message": reason})
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # finished meanwhile (e.g. failed as stale by another process sweeping at the same moment)
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        stale.append(trial)
    return stale


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def points(trials: list[FrozenTrial]) -> list[tuple[float, float]]:
    return [(float(t.values[0]), float(t.values[1])) for t in trials]


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Pareto-optimal completed trials, cheapest first."""
    done = completed(study)
    return [done[i] for i in pareto_indices(points(done), objective_of(study).maximize)]


@dataclass(frozen=True)
class StudySummary:
    """One row of `autopeft studies` and of the dashboard's study list."""

    name: str
    model: str
    task: str
    space: str
    states: dict[str, int]
    best_metric: float | None
    hypervolume: float
    pareto_size: int
    last_update: str | None
    refinements: tuple[str, ...] = ()  # linked studies of `autopeft refine` (see autopeft.refinement)
    metric: str = "metric"  # the objective's metric name and direction (see autopeft.objective)
    direction: str = "maximize"

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "refinements": list(self.refinements)}


def summarize(study: optuna.Study) -> StudySummary:
    spec = stored_spec(study)
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    objective = objective_of(study)
    reference = objective.reference_point(spec.budget.max_params_pct)
    within = [t.values[0] for t in done if t.values[1] <= reference[1]]
    stamps = [t.datetime_complete or t.datetime_start for t in trials if t.datetime_complete or t.datetime_start]
    return StudySummary(
        name=study.study_name,
        model=spec.model,
        task=spec.task,
        space=spec.space,
        states=states,
        best_metric=objective.best(within),
        hypervolume=hypervolume(points(done), reference, objective.maximize),
        pareto_size=len(pareto_indices(points(done), objective.maximize)),
        last_update=max(stamps).isoformat(timespec="seconds") if stamps else None,
        refinements=tuple(study.user_attrs.get("refinements") or ()),
        metric=objective.metric,
        direction=objective.direction,
    )


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
