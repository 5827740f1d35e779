"""A synthetic evaluator for scheduling benchmarks and orchestration tests: sleeps, then scores.

It stands in for training where training is not the point (Ray scaling, fault handling, resume):
the metric is a deterministic function of the plan (more parameters in higher layers score higher,
with diminishing returns), so results are checkable. `fail_when` lets tests make chosen plans fail.

Given a fidelity (``{"max_steps": s}``, as successive halving sends), the metric follows
`synthetic_curve`: a learning curve towards `synthetic_metric` at a plan-dependent speed, plus
plan-seeded noise that shrinks with training, so short runs rank plans imperfectly.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def synthetic_metric(plan: dict[str, Any]) -> float:
    """Score in [0.5, 0.9) of an autopeft-plan/v1 dict: grows with log(size) weighted by layer depth."""
    layers = plan["num_layers"]
    depth_weighted = sum(
        (layer + 1) / layers * math.log1p(size) for m in plan["modules"] for layer, size in enumerate(m["sizes"]) if size
    )
    return 0.5 + 0.4 * (1.0 - math.exp(-depth_weighted / 8.0))


def _plan_uniforms(plan: dict[str, Any], salt: str) -> tuple[float, float]:
    """Two deterministic uniforms in [0, 1) from the plan's content and `salt`."""
    digest = hashlib.sha256((json.dumps(plan, sort_keys=True) + salt).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big") / 2**64


def synthetic_curve(plan: dict[str, Any], steps: int, full_steps: int, noise: float = 0.02) -> float:
    """Metric after `steps` optimizer steps of a run whose search fidelity is `full_steps` steps.

    ``0.5 + (synthetic_metric - 0.5) * (1 - exp(-steps / tau)) + noise * z * sqrt(full_steps / steps)``:
    tau = full_steps * u with u uniform in [0.1, 0.6) per plan (plans learn at different speeds), z a
    plan- and steps-seeded standard normal (Box-Muller), so the noise sd is `noise` at full steps.
    """
    u, _ = _plan_uniforms(plan, "speed")
    tau = full_steps * (0.1 + 0.5 * u)
    a, b = _plan_uniforms(plan, f"noise:{steps}")
    z = math.sqrt(-2.0 * math.log(1.0 - a)) * math.cos(2.0 * math.pi * b)
    asymptote = synthetic_metric(plan)
    return 0.5 + (asymptote - 0.5) * (1.0 - math.exp(-steps / tau)) + noise * z * math.sqrt(full_steps / steps)


@dataclass
class SyntheticResult:
    """The fields of a workers `TrialResult` that the runner reads, from a synthetic evaluation."""

    metric: float | None
    status: str = "ok"
    failure: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "metric": self.metric, "metrics": {"synthetic": self.metric},
                "failure": self.failure, **self.extra}


@dataclass
class SyntheticEvaluator:
    """Callable (plan dict[, fidelity overrides]) → `SyntheticResult` after sleeping (a pretend trial).

    Without a fidelity the metric is `synthetic_metric` and the sleep `seconds`. With
    ``{"max_steps": s}`` the metric is `synthetic_curve(plan, s, full_steps, noise)` and the sleep
    ``seconds + s * seconds_per_step``; the result reports ``steps = s``.
    """

    seconds: float = 0.0
    fail_when: Callable[[dict[str, Any]], str | None] | None = None  # plan dict -> failure kind, or None
    full_steps: int = 100  # the search fidelity the curve is scaled to
    noise: float = 0.02  # sd of the metric noise at full_steps
    seconds_per_step: float = 0.0

    def __call__(self, plan: dict[str, Any], fidelity: dict[str, Any] | None = None) -> SyntheticResult:
        start = time.perf_counter()
        steps = (fidelity or {}).get("max_steps")
        pause = self.seconds + (steps or 0) * self.seconds_per_step
        if pause:
            time.sleep(pause)
        where = {"host": socket.gethostname(), "pid": os.getpid(), "train_seconds": time.perf_counter() - start}
        if steps:
            where["steps"] = steps
        kind = self.fail_when(plan) if self.fail_when else None
        if kind:
            return SyntheticResult(metric=None, status="failed", failure={"kind": kind, "message": f"synthetic {kind}"},
                                   extra=where)
        metric = synthetic_curve(plan, steps, self.full_steps, self.noise) if steps else synthetic_metric(plan)
        return SyntheticResult(metric=metric, extra=where)
