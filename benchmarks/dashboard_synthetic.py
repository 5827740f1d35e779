"""Synthetic autopeft studies for the dashboard's tests, benchmark and screenshots.

Trials carry real plans decoded from a real search space and their exact parameter counts; only the
metric (a smooth function of where and how many parameters a plan places, plus noise), the timings
and the worker fields are made up. A study is written with Optuna's own API (`create_study`,
`Study.add_trials`), so it is exactly what the runner would leave in the DB.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autopeft.objective import Objective
from autopeft.search_spaces import load_space, structure_of
from autopeft.search_spaces.model_structure import load_config
from autopeft.spec import build_spec
from autopeft.store import create_study

# BERT-base shaped config (no weights): 12 layers, hidden 768. Counting needs the config alone.
BERT_BASE = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 768, "num_hidden_layers": 12,
             "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522,
             "max_position_embeddings": 512, "type_vocab_size": 2}
TINY_BERT = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 32, "num_hidden_layers": 4,
             "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 120, "max_position_embeddings": 64}

FAILURES = (
    ("oom", "CUDA out of memory. Tried to allocate 1.50 GiB (GPU 0; 15.78 GiB total capacity)"),
    ("nan_metric", "metric is nan"),
    ("worker_lost", "the Ray actor running this trial died (node gpu-3 lost)"),
)
START = dt.datetime(2026, 3, 2, 9, 0, 0)


def write_model_dir(path: str | Path, config: dict[str, Any] = TINY_BERT) -> str:
    """Write a weightless model directory (`config.json` only) and return its path."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


def fast_sqlite_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage for bulk writes: on SQLite, no fsync per commit (the benchmark's DB is disposable)."""
    import sqlalchemy

    storage = optuna.storages.RDBStorage(url)
    if url.startswith("sqlite"):
        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA journal_mode=MEMORY")
            cursor.close()

        storage.engine.dispose()
    return storage


def bulk_add_trials(storage: optuna.storages.RDBStorage, study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """Insert finished or running `trials` into `study` in one transaction through Optuna's ORM models.

    `Study.add_trials` makes ~50 queries per trial (about 50 ms each on SQLite); this writes the same
    rows (trial, values, params, user attrs) with one flush, numbering trials after the existing ones.
    """
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        study_id = storage.get_study_id_from_name(study.study_name)
        first = session.query(models.TrialModel).filter(models.TrialModel.study_id == study_id).count()
        for offset, t in enumerate(trials):
            row = models.TrialModel(study_id=study_id, number=first + offset, state=t.state,
                                    datetime_start=t.datetime_start, datetime_complete=t.datetime_complete)
            for objective, value in enumerate(t.values or []):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                row.values.append(models.TrialValueModel(objective=objective, value=stored, value_type=kind))
            for name, value in t.params.items():
                dist = t.distributions[name]
                row.params.append(models.TrialParamModel(param_name=name, param_value=dist.to_internal_repr(value),
                                                         distribution_json=distribution_to_json(dist)))
            for key, value in t.user_attrs.items():
                row.user_attributes.append(models.TrialUserAttributeModel(key=key, value_json=json.dumps(value)))
            session.add(row)
        session.commit()
    finally:
        session.close()


def _metric(plan, rng: random.Random, num_layers: int) -> float:
    """Accuracy-like score: rises with parameters placed, more so in higher layers; saturates; noisy."""
    effective = 0.0
    for module in plan.active:
        weight = {"lora": 1.0, "ia3": 0.6, "serial": 0.9, "parallel": 1.1, "prefix": 0.5}[module.family]
        for layer, size in enumerate(module.sizes):
            if size:
                effective += weight * (0.4 + layer / num_layers) * math.log2(1 + size)
    return min(0.99, max(0.0, 0.5 + 0.42 * (1 - math.exp(-effective / 18.0)) + rng.gauss(0, 0.012)))


def _random_params(space, rng: random.Random) -> dict[str, Any]:
    """Random valid trial parameters, with a random number of active layers (so sizes vary widely)."""
    dists = space.distributions()
    keep = rng.uniform(0.1, 1.0)
    while True:
        params = {}
        for name, dist in dists.items():
            if isinstance(dist, CategoricalDistribution):
                value = rng.choice(dist.choices)
                is_size = ".size" in name
                params[name] = value if (not is_size or rng.random() < keep) else dist.choices[0]
            else:
                params[name] = int(rng.random() < keep)
        if space.is_valid(params):
            return params


def build_study(storage: str | optuna.storages.BaseStorage, name: str, model_dir: str, *, n_trials: int = 60,
                space: str = "lora", task: str = "glue:sst2", budget_pct: float = 1.0, seed: int = 0,
                failed_fraction: float = 0.04, running: int = 0, bulk: bool = False) -> optuna.Study:
    """Create study `name` with `n_trials` trials (a few failed, the last `running` still running).

    `bulk=True` (needs an `RDBStorage`) writes them with `bulk_add_trials` instead of `Study.add_trials`.
    """
    spec = build_spec({}, {"model": model_dir, "task": task, "space": space, "budget.max_params_pct": budget_pct,
                           "objectives.metric_floor": 0.5, "storage.study": name})
    study = create_study(storage, name, spec, Objective("metric", "maximize", 0.5))
    bound = load_space(space, structure_of(load_config(model_dir)))
    dists = bound.distributions()
    rng = random.Random(seed)
    pending: list[FrozenTrial] = []
    clock = START
    for number in range(n_trials):
        while True:
            params = _random_params(bound, rng)
            plan = bound.decode(params)
            count = bound.count(plan)
            if count.pct <= budget_pct:
                break
        attrs: dict[str, Any] = {"plan": plan.to_dict(), "plan_summary": plan.summary(), "params": count.params,
                                 "params_pct": count.pct, "driver_host": "driver-0"}
        state, values = TrialState.COMPLETE, None
        start = clock
        clock += dt.timedelta(seconds=rng.uniform(8, 30))
        train, evals = rng.uniform(30, 110), rng.uniform(2, 6)
        finish: dt.datetime | None = start + dt.timedelta(seconds=train + evals + 3)
        if number >= n_trials - running:
            state, finish = TrialState.RUNNING, None
        elif rng.random() < failed_fraction:
            kind, message = rng.choice(FAILURES)
            state = TrialState.FAIL
            attrs.update(status="failed", failure={"kind": kind, "message": message}, host=f"gpu-{number % 4}")
        else:
            metric = _metric(plan, rng, bound.num_layers)
            values = [metric, count.pct]
            attrs.update(
                status="ok", metric=metric, metrics={"accuracy": metric, "loss": round(1.2 - metric, 4)},
                train_seconds=round(train, 2), eval_seconds=round(evals, 2),
                peak_memory_mb=round(900 + count.params / 2000 + rng.uniform(0, 80), 1),
                host=f"gpu-{number % 4}", device="cuda:0", seed=spec.fidelity.seed,
                fidelity={"train_size": spec.fidelity.train_size, "eval_size": spec.fidelity.eval_size,
                          "epochs": spec.fidelity.epochs, "max_steps": spec.fidelity.max_steps},
            )
        pending.append(FrozenTrial(
            number=number, state=state, value=None, values=values, datetime_start=start, datetime_complete=finish,
            params=params, distributions=dists, user_attrs=attrs, system_attrs={}, intermediate_values={},
            trial_id=number,
        ))
    if bulk:
        bulk_add_trials(storage, study, pending)
    else:
        study.add_trials(pending)
    return study
