"""Setting a search up: open or create the study, check model, space, budget, data and objective, build the runner.

`prepare_search` checks everything a user can get wrong before the study DB is touched or any training
starts; `SearchSession` is what the CLI runs and reports on.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from autopeft.executors import Executor, make_executor
from autopeft.objective import Objective
from autopeft.runner import Progress, Runner, SearchError
from autopeft.search_spaces.space import SearchSpace
from autopeft.spec import SearchSpec
from autopeft.store import OBJECTIVE_ATTR, completed, objective_of


@dataclass
class SearchSession:
    """A study ready to run: the runner, and what the CLI reports before and after."""

    spec: SearchSpec
    study: optuna.Study
    space: SearchSpace
    runner: Runner
    recovered: int

    def run(self) -> Progress:
        return self.runner.run()

    def close(self) -> None:
        self.runner.executor.close()

    def best_under(self, max_pct: float) -> int | None:
        """Number of the best completed trial with at most `max_pct` % trainable params."""
        sign = self.runner.objective.sign
        eligible = [t for t in completed(self.study) if t.values[1] <= max_pct]
        return max(eligible, key=lambda t: sign * t.values[0]).number if eligible else None


def zero_params_line(space: SearchSpace, plan) -> str:
    """The one line for a space whose smallest configuration trains nothing on this model."""
    return (f"space {space.name!r}: its smallest configuration ({plan.summary()}) trains 0 parameters on "
            f"{space.structure.model_type}: its target group holds no layer of this model; pick another target group "
            "or space")


def check_budget(space: SearchSpace, spec: SearchSpec) -> None:
    """`SearchError` when even the smallest configuration of the space exceeds the budget."""
    (plan, smallest), _ = space.param_range()
    if smallest.params == 0:
        raise SearchError(zero_params_line(space, plan))
    budget_pct, budget_abs = spec.budget.max_params_pct, spec.budget.max_params
    if (budget_pct is not None and smallest.pct > budget_pct) or (budget_abs is not None and smallest.params > budget_abs):
        raise SearchError(
            f"budget.max_params_pct: the budget ({budget_pct}% / {budget_abs} params) is below the smallest "
            f"configuration of space {space.name!r} ({smallest.pct:.4g}%, {smallest.params:,} params: {plan.summary()}); "
            "raise the budget or pick a smaller space"
        )


def prepare_search(spec: SearchSpec, name: str, executor: Executor | None = None) -> SearchSession:
    """Open or create study `name`, check model, space, budget and data, and build the runner.

    Everything a user can get wrong is checked here, before any training starts; a space with
    families that only AdapterHub builds raises `MissingExtra` where `adapters` is not installed.
    """
    from autopeft.optim import make_sampler
    from autopeft.optional import require_adapters
    from autopeft.search_spaces import load_config, load_space, structure_of
    from autopeft.store import create_study, load_study, open_db, save_spec, study_names
    from autopeft.workers import check_task

    space = load_space(spec.space, structure_of(load_config(spec.model)))
    if space.adapters_families():
        require_adapters(f"space {space.name!r} ({', '.join(space.adapters_families())})",
                         alternative="or search a peft space such as lora")
    check_budget(space, spec)
    data = check_task(spec.model, spec.task, spec.fidelity, data_dir=spec.data_dir, device=_local_device(spec))
    objective = search_objective(spec, data.task.metric, data.task.metrics)
    if data.task.kind in ("causal-lm", "seq2seq"):
        from autopeft.workers.lm_evaluate import check_lm_fidelity

        check_lm_fidelity(objective.metric, spec.fidelity)
    sampler = make_sampler(
        spec.optimizer.sampler, space, budget_pct=spec.budget.max_params_pct, max_params=spec.budget.max_params,
        metric_reference=objective.reference, n_startup_trials=spec.optimizer.n_startup_trials,
        surrogate=spec.optimizer.surrogate, seed=spec.optimizer.seed,
    )
    if executor is None:
        executor = make_executor(spec)  # a local Ray too small for the workers fails here, before the DB is touched
    storage = open_db(spec.storage.url)  # only now: a mistake found above leaves no DB file and no study
    new = name not in study_names(storage)
    source = load_study(storage, spec.warm_start) if new and spec.warm_start else None  # a missing one: nothing made
    if new:
        try:
            create_study(storage, name, spec, objective)
        except optuna.exceptions.DuplicatedStudyError:
            new = False  # another search process created it a moment ago: join it
    study = load_study(storage, name, sampler=sampler)
    stored = objective_of(study)  # a study made before objectives were stored names no metric: check its direction
    named = OBJECTIVE_ATTR in study.user_attrs
    if stored.direction != objective.direction or (named and stored.metric != objective.metric):
        raise SearchError(f"objectives.metric: study {name!r} {stored.direction}s {stored.metric}, this spec asks for "
                          f"{objective.metric} ({objective.direction}); resume with the same metric or pick a new --study")
    if new and source is not None:
        warm_start(study, source, space)
    save_spec(study, spec)
    runner = Runner(spec, study, space, executor)
    return SearchSession(spec=spec, study=study, space=space, runner=runner, recovered=runner.recover())


def _local_device(spec: SearchSpec) -> str | None:
    """Where trials run when they run on this machine (the inline executor, or a local Ray): ``cuda`` or
    ``cpu``; None for a Ray cluster, whose workers check their own device."""
    if spec.execution.executor == "ray" and spec.execution.ray_address:
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def search_objective(spec: SearchSpec, task_metric: str, task_metrics: tuple[str, ...]) -> Objective:
    """The search's first objective: `objectives.metric` (`auto` = the task's official metric), its direction,
    and its reference value (`metric_floor` when maximised; `metric_ceiling`, else the metric's value for a
    uniform prediction over the model's vocabulary, when minimised). `SearchError` for a metric the task lacks."""
    from autopeft.search_spaces import load_config
    from autopeft.workers.metrics import metric_direction, uniform_prediction_value

    metric = task_metric if spec.objectives.metric == "auto" else spec.objectives.metric
    if metric not in task_metrics:
        raise SearchError(f"objectives.metric: expected auto or one of {', '.join(task_metrics)} for "
                          f"{spec.task}, got {spec.objectives.metric!r}")
    direction = metric_direction(metric)
    if direction == "maximize":
        return Objective(metric, direction, spec.objectives.metric_floor)
    ceiling = spec.objectives.metric_ceiling
    if ceiling is None:
        config = load_config(spec.model)
        vocab = getattr(config.get_text_config() if hasattr(config, "get_text_config") else config, "vocab_size", None)
        ceiling = uniform_prediction_value(metric, int(vocab)) if vocab else None
    if ceiling is None:
        raise SearchError(f"objectives.metric_ceiling: {metric} is minimised and no default ceiling is known for "
                          f"{spec.model}; set objectives.metric_ceiling (the worst acceptable {metric})")
    return Objective(metric, direction, float(ceiling))


def warm_start(study: optuna.Study, source: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the Pareto-optimal configurations of `source` to be evaluated first in `study`.

    The source must use the same space on a model with the same layer count (e.g. the same model
    family on another task, as in the AutoPEFT paper's transfer experiments). Returns how many.
    """
    from autopeft.store import pareto_trials

    dims = space.distributions()
    front = pareto_trials(source)
    for trial in front:
        choices = {k: getattr(d, "choices", None) or range(d.low, d.high + 1) for k, d in dims.items()}
        if set(trial.params) != set(dims) or any(v not in choices[k] for k, v in trial.params.items()):
            raise SearchError(f"warm_start: study {source.study_name!r} was searched in another space or on a model "
                              f"with another layer count; warm-start from a study of space {space.name!r}")
    for trial in front:
        study.enqueue_trial(trial.params, user_attrs={"warm_start_from": f"{source.study_name}#{trial.number}"})
    return len(front)
