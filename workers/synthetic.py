"""A synthetic evaluator for scheduling benchmarks and orchestration tests: sleeps, then scores.

It stands in for training where training is not the point (Ray scaling, fault handling, resume):
the metric is a deterministic function of the plan (more parameters in higher layers score higher,
with diminishing returns), so results are checkable. `fail_when` lets tests make chosen plans fail.
"""

from __future__ import annotations

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
    """Callable plan dict → `SyntheticResult` after sleeping `seconds` (wall time of a pretend trial)."""

    seconds: float = 0.0
    fail_when: Callable[[dict[str, Any]], str | None] | None = None  # plan dict -> failure kind, or None

    def __call__(self, plan: dict[str, Any]) -> SyntheticResult:
        start = time.perf_counter()
        if self.seconds:
            time.sleep(self.seconds)
        where = {"host": socket.gethostname(), "pid": os.getpid(), "train_seconds": time.perf_counter() - start}
        kind = self.fail_when(plan) if self.fail_when else None
        if kind:
            return SyntheticResult(metric=None, status="failed", failure={"kind": kind, "message": f"synthetic {kind}"},
                                   extra=where)
        return SyntheticResult(metric=synthetic_metric(plan), extra=where)
