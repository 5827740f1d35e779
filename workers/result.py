"""`TrialResult`: everything one evaluation produced; failures are values, not exceptions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

FAILURE_KINDS = ("oom", "nan_loss", "data_error", "error")


@dataclass
class TrialResult:
    """Result of one trial. Times in seconds, memory in MiB, params in parameters (and % of the base model).

    `metric` is the task's official metric on the held-out split (the search objective); `metrics`
    holds every metric (`dev_*` entries: on the dev set, for final reporting); `curve` is the held-out
    metric after each epoch. A failed trial has `status="failed"` and `failure={kind, message}`.
    """

    status: str = "ok"
    metric: float | None = None
    metric_name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    params: int = 0
    params_pct: float = 0.0
    head_params: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    throughput: float = 0.0  # training examples per second
    peak_memory_mb: float = 0.0
    steps: int = 0
    seed: int = 0
    device: str = "cpu"
    host: str = ""
    fidelity: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, str] | None = None

    @classmethod
    def failed(cls, kind: str, message: str, **fields: Any) -> TrialResult:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"failure kind: expected one of {', '.join(FAILURE_KINDS)}, got {kind!r}")
        return cls(status="failed", failure={"kind": kind, "message": message}, **fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)
