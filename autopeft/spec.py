"""`SearchSpec`: everything one search needs, loaded from YAML with CLI overrides.

Precedence is flag > file > default: `load_spec(path, overrides)` merges the YAML mapping with the
overrides (dotted field paths such as ``"budget.max_params_pct"``) before validating, so every
error names the field path and the expected value, e.g.
``budget.max_params_pct: expected a number in (0, 100], got "ten"``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SpecError(ValueError):
    """A spec that cannot be used; the message is one line meant for the user."""


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping key given twice in a YAML file (plain PyYAML keeps the last one and drops the first silently)."""

    def __init__(self, key: Any, line: int, first_line: int, mark=None):
        super().__init__(None, None, f"duplicate key {key!r}", mark)
        self.key, self.line, self.first_line = key, line, first_line

    def describe(self) -> str:
        return (f"key {self.key!r} appears twice (line {self.line}, first at line {self.first_line}); the second would "
                "silently replace the first: keep one and merge their fields")


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate mapping keys (merge keys `<<` may still be overridden)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, line, seen[key], key_node.start_mark)
                    seen[key] = line
                except TypeError:  # an unhashable key: the base class reports it
                    continue
        return super().construct_mapping(node, deep=deep)


def safe_load(text: str) -> Any:
    """`yaml.safe_load` that raises `DuplicateKeyError` (naming the key and both lines) for a key given twice."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  a SafeLoader subclass


def _expect(text: str) -> dict[str, Any]:
    return {"expected": text}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class BudgetSpec(_Section):
    """Hard upper bound on trainable adapter parameters; configurations above it are never trained."""

    max_params_pct: float | None = Field(
        1.0, gt=0, le=100, description="Largest trainable-parameter share, % of the base model.",
        json_schema_extra=_expect("a number in (0, 100]"),
    )
    max_params: int | None = Field(
        None, gt=0, description="Largest trainable-parameter count (absolute); both bounds apply if set.",
        json_schema_extra=_expect("a positive integer"),
    )


class ObjectivesSpec(_Section):
    """Optimise `metric` on the held-out split (in its own direction), minimise trainable parameters (% of the model)."""

    metric: str = Field("auto", description="Metric to optimise; `auto` = the task's official metric. Its direction "
                                            "is the metric's own (accuracy is maximised, eval_loss minimised).")
    metric_floor: float = Field(
        0.0, description="For a maximised metric: the metric value of the hypervolume reference point (worst "
                         "acceptable metric).",
        json_schema_extra=_expect("a number"),
    )
    metric_ceiling: float | None = Field(
        None, description="For a minimised metric (eval_loss, perplexity): the metric value of the hypervolume "
                          "reference point (worst acceptable); none = the metric's value for a uniform prediction "
                          "over the vocabulary (ln V for eval_loss, V for perplexity).",
        json_schema_extra=_expect("a number or none"),
    )


class FidelitySpec(_Section):
    """How much training one trial gets; a search usually runs at a cheap fidelity."""

    train_size: int | None = Field(
        2000, gt=0, description="Training examples used (None = all).", json_schema_extra=_expect("a positive integer")
    )
    eval_size: int | None = Field(
        500, gt=0, description="Held-out examples scored per trial (None = all).",
        json_schema_extra=_expect("a positive integer"),
    )
    heldout_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of train held out (seeded, stratified) for the search metric.",
        json_schema_extra=_expect("a number in (0, 1)"),
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the training subset.",
                          json_schema_extra=_expect("a positive number"))
    max_steps: int | None = Field(
        None, gt=0, description="Optimizer-step cap; overrides epochs when set.", json_schema_extra=_expect("a positive integer")
    )
    max_seq_length: int = Field(128, gt=0, le=8192, description="Tokens per example after truncation.",
                                json_schema_extra=_expect("an integer in (0, 8192]"))
    batch_size: int = Field(32, gt=0, description="Examples per optimizer step.", json_schema_extra=_expect("a positive integer"))
    learning_rate: float = Field(1e-3, gt=0, le=1, description="AdamW learning rate for adapter and head weights.",
                                 json_schema_extra=_expect("a number in (0, 1]"))
    seed: int = Field(0, ge=0, description="Seed for data subsets, initialisation and order.",
                      json_schema_extra=_expect("a non-negative integer"))
    max_new_tokens: int | None = Field(
        None, gt=0, le=4096, description="Language-model tasks: tokens generated greedily per held-out row for "
        "exact_match (None = no generation).", json_schema_extra=_expect("an integer in (0, 4096]"),
    )
    gradient_checkpointing: bool = Field(False, description="Language-model tasks: recompute block activations in "
                                         "the backward pass (less memory, more time).",
                                         json_schema_extra=_expect("true or false"))
    quantization: Literal["none", "4bit", "8bit"] = Field(
        "none", description="Language-model tasks on CUDA: load the frozen base in 4-bit (NF4, QLoRA) or 8-bit with "
        "bitsandbytes.", json_schema_extra=_expect("none, 4bit or 8bit"),
    )


class PromotionSpec(_Section):
    """Successive-halving promotion (asynchronous, multi-objective: ASHA / MOASHA); off by default.

    Each configuration trains first at the lowest rung; about 1 in `eta` results at a rung goes on to
    the next rung, `eta` times longer; the top rung is `fidelity.max_steps`. See `autopeft.promotion`.
    """

    enabled: bool = Field(False, description="Train many configurations briefly and continue only the best ranked "
                          "(non-dominated in metric and params) at each rung.", json_schema_extra=_expect("true or false"))
    eta: int = Field(3, ge=2, description="Reduction factor: about 1 in eta results at a rung is promoted; each rung "
                     "trains eta times longer than the one below.", json_schema_extra=_expect("an integer >= 2"))
    min_steps: int | None = Field(
        None, gt=0, description="Optimizer steps at the lowest rung (the ladder is fidelity.max_steps / eta^k, "
        "k = 0, 1, ... down to this); None = fidelity.max_steps / eta^2 (three rungs).",
        json_schema_extra=_expect("a positive integer"),
    )
    rank_by: Literal["metric", "model"] = Field(
        "metric", description="How results at a rung are ranked: by their rung metric, or (sampler mobo) by the "
        "fidelity-aware surrogate's prediction of each configuration's top-rung metric from every rung result.",
        json_schema_extra=_expect("metric or model"),
    )


class OptimizerSpec(_Section):
    """Which sampler proposes configurations."""

    sampler: Literal["mobo", "autopeft", "botorch", "gp", "tpe", "nsga2", "random"] = Field(
        "mobo", description="Sampler name; `mobo` is autopeft's default multi-objective BO.",
        json_schema_extra=_expect("one of mobo, autopeft, botorch, gp, tpe, nsga2, random"),
    )
    n_startup_trials: int = Field(8, ge=1, description="Space-filling feasible trials before the surrogate is used.",
                                  json_schema_extra=_expect("a positive integer"))
    surrogate: Literal["gp", "saas"] = Field("gp", description="Surrogate of the task metric for `mobo`.",
                                              json_schema_extra=_expect("gp or saas"))
    seed: int | None = Field(None, description="Sampler seed (None = random).", json_schema_extra=_expect("an integer"))


class ExecutionSpec(_Section):
    """Where and how many trials run."""

    trials: int = Field(20, gt=0, description="Completed trials to reach (a resumed study counts earlier ones).",
                        json_schema_extra=_expect("a positive integer"))
    workers: int = Field(1, gt=0, description="Trials evaluated at a time.", json_schema_extra=_expect("a positive integer"))
    executor: Literal["ray", "inline"] = Field(
        "ray", description="`ray`: Ray actors (local Ray unless ray_address is set); `inline`: in this process, one at a time.",
        json_schema_extra=_expect("ray or inline"),
    )
    ray_address: str | None = Field(None, description="Ray cluster address (or RAY_ADDRESS); None starts Ray locally.")
    gpus_per_trial: float = Field(1.0, ge=0, description="GPUs per trial where GPUs exist (fractions allowed).",
                                  json_schema_extra=_expect("a non-negative number"))
    cpus_per_trial: float = Field(1.0, gt=0, description="CPU slots per trial.", json_schema_extra=_expect("a positive number"))
    heartbeat_seconds: float = Field(10.0, gt=0, description="How often a search process says it is alive; its running "
                                     "trials count as stale after 3 missed beats.", json_schema_extra=_expect("a positive number"))
    max_retries: int = Field(2, ge=0, description="Retries of a trial whose worker died, before it is failed.",
                             json_schema_extra=_expect("a non-negative integer"))


class StorageSpec(_Section):
    """The study database (Optuna RDB storage)."""

    url: str = Field("sqlite:///autopeft.db", description="SQLAlchemy URL of the study DB.")
    study: str | None = Field(None, description="Study name; default derived from model, task and space.")


class SearchSpec(_Section):
    """One search: model, task, space, objectives, budget, fidelity, optimiser, execution, storage."""

    model: str = Field(..., min_length=1, description="Hugging Face hub name or local model directory.",
                       json_schema_extra=_expect("a model name or directory"))
    task: str = Field("glue:sst2", description="`glue:<name>` or a path to a CSV/TSV/JSONL file.")
    data_dir: str | None = Field(None, description="Directory in the GLUE TSV layout (`<dir>/SST-2/train.tsv`).")
    space: str = Field("lora", description="Built-in space name or path to a space YAML file.")
    warm_start: str | None = Field(None, description="Study (same storage, same space) whose Pareto-optimal "
                                   "configurations a new study evaluates first.")
    objectives: ObjectivesSpec = Field(default_factory=ObjectivesSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    fidelity: FidelitySpec = Field(default_factory=FidelitySpec)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)

    @model_validator(mode="after")
    def _promotion_needs_a_step_ladder(self) -> SearchSpec:
        promotion, max_steps = self.promotion, self.fidelity.max_steps
        if promotion.enabled and max_steps is None:
            raise ValueError("promotion.enabled: needs fidelity.max_steps (the steps of the top rung); set it")
        if promotion.enabled and promotion.min_steps is not None and promotion.min_steps > max_steps:
            raise ValueError(f"promotion.min_steps: expected at most fidelity.max_steps ({max_steps}), "
                             f"got {promotion.min_steps}")
        if promotion.enabled and promotion.rank_by == "model" and self.optimizer.sampler != "mobo":
            raise ValueError(f"promotion.rank_by: model needs optimizer.sampler mobo (its surrogate ranks the rung "
                             f"results), got {self.optimizer.sampler}; use rank_by: metric or sampler mobo")
        return self


def _field_info(model: type[BaseModel], loc: tuple[Any, ...]):
    """The FieldInfo at `loc` inside `model`, or None when the path leaves the known fields."""
    info = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    if not loc and error["type"] == "value_error":  # a cross-field check: its message names the field
        return str(error["ctx"]["error"])
    path = ".".join(str(p) for p in loc) or "spec"
    if error["type"] == "extra_forbidden":
        parent = _field_info(SearchSpec, loc[:-1])
        section = parent.annotation if parent is not None else SearchSpec
        known = ", ".join(section.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
        return f"{path}: unknown field; expected one of: {known}" + (f"; did you mean {close[0]}?" if close else "")
    if error["type"] == "missing":
        return f"{path}: required field is missing; set it in the spec file or pass --{path.replace('.', '-')}"
    info = _field_info(SearchSpec, loc)
    extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
    expected = extra.get("expected") or error["msg"].lower()
    if info is not None and isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
        expected = f"a mapping of {', '.join(info.annotation.model_fields)}"
    value = error.get("input")
    shown = f'"{value}"' if isinstance(value, str) else repr(value)
    return f"{path}: expected {expected}, got {shown}"


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[leaf] = value


def build_spec(data: dict[str, Any] | None, overrides: dict[str, Any] | None = None) -> SearchSpec:
    """Validate `data` with `overrides` (dotted path → value; None values are ignored) applied on top."""
    merged: dict[str, Any] = yaml.safe_load(yaml.safe_dump(data or {}))  # deep copy of plain data
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(merged, dotted, value)
    try:
        return SearchSpec.model_validate(merged)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] == "missing")  # a typo before a field still to set
        raise SpecError(_describe(errors[0])) from None


def load_spec(path: str | Path | None, overrides: dict[str, Any] | None = None) -> SearchSpec:
    """Read a YAML spec (or none) and apply CLI overrides; raises `SpecError` with a one-line message."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise SpecError(f"{path}: is a folder, not a spec file; pass the path of a YAML spec")
        if not path.is_file():
            raise SpecError(f"{path}: spec file not found; pass the path of a YAML spec")
        try:
            loaded = safe_load(path.read_text())
        except DuplicateKeyError as exc:
            raise SpecError(f"{path}: {exc.describe()}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            raise SpecError(f"{path}: not valid YAML{where}; fix the syntax and retry") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError(f"{path}: expected a mapping of spec fields at the top level, got {type(loaded).__name__}")
        data = loaded or {}
    return build_spec(data, overrides)


def reference_markdown() -> str:
    """The spec reference (every field, its default and description) as Markdown, from the field docs."""
    lines = ["| field | default | description |", "|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")
                continue
            default = "required" if info.is_required() else f"`{info.get_default(call_default_factory=True)!r}`"
            lines.append(f"| `{prefix}{name}` | {default} | {info.description or ''} |")

    walk(SearchSpec, "")
    return "\n".join(lines) + "\n"
