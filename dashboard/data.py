"""Plot and table data for the dashboard: pure functions of trial rows (no I/O, no plotly).

The split follows Optuna's `visualization/_pareto_front.py`: these functions compute *what* to draw
(`*_info`), `figures.py` decides *how*. Everything here is plain data, serialisable to JSON, and
what the JSON API returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from autopeft.pareto import hypervolume_history
from autopeft.refine_compare import Comparison, Refinement, compare
from autopeft.search_spaces import families
from autopeft.search_spaces.families import NAMES as FAMILIES
from autopeft.store.attrs import RESULT_PARTS, readable, trial_result
from autopeft.store.reader import TrialRow
from autopeft.store.summary import complete_rows, front

STATES = ("complete", "running", "waiting", "fail", "pruned")
SIZE_NAMES = {name: families.get(name).size_name for name in FAMILIES}  # what a size means: rank, width, ...


# --- Pareto front ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    number: int
    metric: float | None
    params_pct: float | None
    summary: str
    note: str = ""  # failure reason for failed trials


@dataclass(frozen=True)
class ParetoFrontInfo:
    """Pareto-optimal (cheapest first), dominated and failed trials; the budget line at `budget_pct`.

    Failed trials have no metric: they are drawn at `failed_y`, just beyond the worst metric (below the
    lowest when the metric is maximised, above the highest when it is minimised).
    """

    front: list[Point]
    dominated: list[Point]
    failed: list[Point]
    budget_pct: float | None
    failed_y: float | None

    def to_dict(self) -> dict[str, Any]:
        # not `asdict`: it deep-copies every point, which a 10,000-trial study notices
        return {"front": [vars(p).copy() for p in self.front], "dominated": [vars(p).copy() for p in self.dominated],
                "failed": [vars(p).copy() for p in self.failed], "budget_pct": self.budget_pct,
                "failed_y": self.failed_y}


def pareto_front_info(rows: Sequence[TrialRow], budget_pct: float | None, maximize: bool = True) -> ParetoFrontInfo:
    done = complete_rows(rows)
    optimal = front(rows, maximize)
    on_front = {r.number for r in optimal}
    dominated = [_point(r) for r in done if r.number not in on_front]
    failed = [Point(r.number, None, r.params_pct, r.summary, _failure_text(r.failure))
              for r in rows if r.state == "fail" and r.params_pct is not None]
    failed_y = None
    if failed:
        metrics = [r.metric for r in done]
        low, high = (min(metrics), max(metrics)) if metrics else (0.0, 1.0)
        margin = 0.05 * max(high - low, 0.01)
        failed_y = low - margin if maximize else high + margin
    return ParetoFrontInfo(front=[_point(r) for r in optimal], dominated=dominated, failed=failed, budget_pct=budget_pct, failed_y=failed_y)


def _point(r: TrialRow) -> Point:
    return Point(r.number, r.metric, r.params_pct, r.summary)


def _failure_text(failure: dict[str, Any] | None) -> str:
    if not failure:
        return "failed"
    kind, message = failure.get("kind", ""), failure.get("message", "")
    return f"{kind}: {message}" if kind and message else str(kind or message or "failed")


# --- refinement (autopeft refine) ----------------------------------------------------------------
@dataclass(frozen=True)
class RefinementInfo:
    """The search front next to its refined values (mean ± sd over seeds) from a linked study.

    `comparison.points` follow the search front (cheapest first); `comparison.note` says whether the
    refined front reorders the search front (`reorders`, `swaps`, `dropped`).
    """

    refinement: Refinement
    comparison: Comparison
    refinements: list[str]  # every linked study of the source, oldest first (the newest is shown)

    def to_dict(self) -> dict[str, Any]:
        return {**self.refinement.to_dict(), "refinements": self.refinements, **self.comparison.to_dict()}


def refinement_info(front: Sequence[Point], refinement: Refinement, refinements: Sequence[str] = ()) -> RefinementInfo:
    """Compare the search front (`ParetoFrontInfo.front`) with `refinement`'s values per source trial."""
    comparison = compare([(p.number, p.metric, p.params_pct) for p in front], refinement.values, refinement.maximize)
    return RefinementInfo(refinement=refinement, comparison=comparison, refinements=list(refinements or [refinement.name]))


# --- hypervolume history -----------------------------------------------------------------------
@dataclass(frozen=True)
class HypervolumeInfo:
    """Hypervolume after each completed trial, by trial number and by completion time (ISO, local)."""

    reference: tuple[float, float]
    numbers: list[int]
    by_number: list[float]
    times: list[str]
    by_time: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def hypervolume_info(rows: Sequence[TrialRow], reference: tuple[float, float], maximize: bool = True) -> HypervolumeInfo:
    done = [r for r in rows if r.state == "complete" and r.metric is not None and r.params_pct is not None]
    by_number = sorted(done, key=lambda r: r.number)
    by_time = sorted((r for r in done if r.complete is not None), key=lambda r: (r.complete, r.number))
    return HypervolumeInfo(
        reference=reference,
        numbers=[r.number for r in by_number],
        by_number=hypervolume_history([(r.metric, r.params_pct) for r in by_number], reference, maximize),
        times=[r.complete.isoformat(timespec="seconds") for r in by_time],
        by_time=hypervolume_history([(r.metric, r.params_pct) for r in by_time], reference, maximize),
    )


# --- layer placement ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerMapInfo:
    """Where the Pareto-optimal configurations put their modules.

    `sizes[family][k][layer]` is trial `numbers[k]`'s size (rank, width, length; IA3 1 = on) in that
    layer, 0 = absent; `usage[family][layer]` is the share of those trials with the family there.
    Families are listed in the registry's order (`FAMILIES`), only those used by some trial.
    """

    num_layers: int
    numbers: list[int]
    params_pct: list[float]
    families: list[str]
    sizes: dict[str, list[list[int]]]
    usage: dict[str, list[float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_map_info(rows: Sequence[TrialRow]) -> LayerMapInfo:
    """Layer map of `rows` (normally the Pareto-optimal trials, cheapest first)."""
    rows = [r for r in rows if r.plan is not None]
    num_layers = max((int(r.plan.get("num_layers", 0)) for r in rows), default=0)
    per_trial = [plan_sizes(r.plan, num_layers) for r in rows]
    families = [f for f in _in_registry_order(k for s in per_trial for k in s) if any(any(s.get(f, [])) for s in per_trial)]
    sizes = {f: [s.get(f, [0] * num_layers) for s in per_trial] for f in families}
    usage = {f: [sum(1 for s in sizes[f] if s[layer]) / len(rows) for layer in range(num_layers)] for f in families}
    return LayerMapInfo(num_layers=num_layers, numbers=[r.number for r in rows],
                        params_pct=[r.params_pct or 0.0 for r in rows], families=families, sizes=sizes, usage=usage)


def plan_sizes(plan: dict[str, Any], num_layers: int | None = None) -> dict[str, list[int]]:
    """`{family: [size per layer]}` of an `autopeft-plan/v1` dict, padded to `num_layers`."""
    n = int(plan.get("num_layers", 0)) if num_layers is None else num_layers
    out: dict[str, list[int]] = {}
    for key, module in zip(row_keys(plan), plan.get("modules", []), strict=True):
        sizes = [int(s) for s in module.get("sizes", [])][:n]
        out[key] = sizes + [0] * (n - len(sizes))
    return out


def row_keys(plan: dict[str, Any]) -> list[str]:
    """One row name per module: its family, or ``family:targets`` for a family that appears more than once
    (LoRA on attention and on the MLP in llm-lora)."""
    modules = plan.get("modules", [])
    names = [str(m.get("family")) for m in modules]
    return [f"{f}:{m.get('targets')}" if names.count(f) > 1 else f for f, m in zip(names, modules, strict=True)]


def _in_registry_order(keys) -> list[str]:
    """Row names sorted by their family's place in the registry (unknown families last, as given)."""
    keys = list(dict.fromkeys(keys))
    rank = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(keys, key=lambda k: rank.get(k.split(":")[0], len(rank)))


@dataclass(frozen=True)
class PlanInfo:
    """One plan per layer, for the trial page: families (rows) x layers (columns), cell = size."""

    num_layers: int
    families: list[str]
    sizes: dict[str, list[int]]
    options: dict[str, dict[str, Any]]  # per family: targets, alpha, options (use_dora, …) when present
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_info(plan: dict[str, Any], summary: str = "") -> PlanInfo:
    sizes = plan_sizes(plan)
    options = {key: {k: v for k, v in m.items() if k not in ("family", "sizes") and v is not None}
               for key, m in zip(row_keys(plan), plan.get("modules", []), strict=True)}
    families = [f for f in _in_registry_order(sizes) if any(sizes[f])]
    return PlanInfo(num_layers=int(plan.get("num_layers", 0)), families=families,
                    sizes={f: sizes[f] for f in families}, options={f: options.get(f, {}) for f in families},
                    summary=summary)


# --- trials table ------------------------------------------------------------------------------
SortKey = Literal["number", "metric", "params_pct", "params", "state"]


@dataclass(frozen=True)
class TrialQuery:
    """Filter, sort and page the trials table. Ranges are inclusive; None = no bound."""

    state: str | None = None
    family: str | None = None
    min_metric: float | None = None
    max_metric: float | None = None
    min_params_pct: float | None = None
    max_params_pct: float | None = None
    pareto_only: bool = False
    sort: SortKey = "number"
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True)
class TrialPage:
    total: int
    matched: int
    offset: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trial_table(rows: Sequence[TrialRow], query: TrialQuery, pareto: set[int] | frozenset[int] = frozenset()) -> TrialPage:
    """The rows matching `query`, sorted (missing values last either way), one page of them."""

    def keep(r: TrialRow) -> bool:
        return ((query.state is None or r.state == query.state)
                and (query.family is None or query.family in r.families)
                and (not query.pareto_only or r.number in pareto)
                and _within(r.metric, query.min_metric, query.max_metric)
                and _within(r.params_pct, query.min_params_pct, query.max_params_pct))

    matched = [r for r in rows if keep(r)]
    present = [r for r in matched if getattr(r, query.sort) is not None]
    missing = [r for r in matched if getattr(r, query.sort) is None]
    present.sort(key=lambda r: (getattr(r, query.sort), r.number), reverse=query.descending)
    ordered = present + sorted(missing, key=lambda r: r.number)
    page = ordered[query.offset:query.offset + query.limit]
    return TrialPage(total=len(rows), matched=len(matched), offset=query.offset,
                     rows=[table_row(r, r.number in pareto) for r in page])


def _within(value: float | None, low: float | None, high: float | None) -> bool:
    if low is None and high is None:
        return True
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def table_row(r: TrialRow, pareto: bool) -> dict[str, Any]:
    return {"number": r.number, "state": r.state, "metric": r.metric, "params_pct": r.params_pct, "params": r.params,
            "families": list(r.families), "summary": r.summary, "pareto": pareto,
            "failure": _failure_text(r.failure) if r.state == "fail" else None,
            "complete": r.complete.isoformat(timespec="seconds") if r.complete else None,
            "device": (r.resources or {}).get("device"), "precision": (r.resources or {}).get("precision"),
            "peak_memory_mb": (r.resources or {}).get("peak_memory_mb")}


# --- trial page --------------------------------------------------------------------------------
RESULT_KEYS = ("metric", "metrics", "status", "fidelity", "seed", "train_seconds", "eval_seconds", "peak_memory_mb",
               "host", "device", "precision", "resources", "failure", "plan", "plan_summary", "params", "params_pct")


def trial_detail(trial, study_id: int, pareto: bool) -> dict[str, Any]:
    """Everything the trial page shows of an Optuna `FrozenTrial` made by autopeft.

    The worker's result is the `result` attribute and its parts (see `autopeft.store.attrs`); its fields are read
    as if they were attributes of their own, the trial's own attributes (plan, params, failure) winning.
    """
    result = trial_result(trial.user_attrs)
    stored = ("result", *RESULT_PARTS.values()) if result else ("result",)
    attrs = {**result, **{k: readable(v) for k, v in trial.user_attrs.items() if k not in stored}}
    start, complete = trial.datetime_start, trial.datetime_complete
    return {
        "study_id": study_id,
        "number": trial.number,
        "state": trial.state.name.lower(),
        "pareto": pareto,
        "values": list(trial.values) if trial.values else None,
        "metric": trial.values[0] if trial.values else attrs.get("metric"),
        "params": attrs.get("params"),
        "params_pct": attrs.get("params_pct"),
        "summary": attrs.get("plan_summary", ""),
        "plan": attrs.get("plan"),
        "metrics": attrs.get("metrics") or {},
        "fidelity": attrs.get("fidelity") or {},
        "timings": {
            "start": _iso(start), "complete": _iso(complete),
            "wall_seconds": (complete - start).total_seconds() if start and complete else None,
            "train_seconds": attrs.get("train_seconds"), "eval_seconds": attrs.get("eval_seconds"),
        },
        "resources": {"peak_memory_mb": attrs.get("peak_memory_mb"), "host": attrs.get("host"),
                      "device": attrs.get("device"), "precision": attrs.get("precision"), "seed": attrs.get("seed")},
        "failure": attrs.get("failure"),
        "params_suggested": dict(trial.params),
        "other": {k: v for k, v in sorted(attrs.items()) if k not in RESULT_KEYS},
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None
