"""`TrialResult`: everything one evaluation produced; failures are values, not exceptions."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

FAILURE_KINDS = ("oom", "nan_loss", "data_error", "error")


@dataclass
class TrialResult:
    """Result of one trial. Times in seconds, memory in MiB, params in parameters (and % of the base model).

    - `metric` / `metric_name`: the task's official metric on the held-out split (the search objective).
    - `metrics`: every metric on the held-out split; ``dev_*`` entries are on the dev split (final
      reporting only, present when asked for).
    - `curve`: the held-out `metric` after each pass over the training subset.
    - `params` / `params_pct`: trainable adapter parameters (exactly `count_plan`), and as % of the
      base model; `head_params`: the task head's trainable parameters, not counted in `params`, and
      `head_modules` the modules that hold them (``["classifier"]``; see `autopeft.heads`).
    - `train_seconds` (evaluation excluded), `eval_seconds` (held-out and dev scoring), `throughput`
      (training examples per second), `peak_memory_mb` (CUDA max allocated, or the peak RSS on CPU),
      `steps` (optimizer steps), `no_grad_layers` (blocks run without autograd).
    - `seed`, `device`, `host`, `fidelity` (the `FidelitySpec` as a dict), `split` (sizes, seed and
      row digests of the train / held-out split, see `TaskData.split_info`).
    - `truncated` (language-model tasks): rows cut at `max_seq_length` per split (``train``,
      ``heldout``, ``dev``) and rows left out because the cut removed every trained token
      (``train_dropped``, ...); see `autopeft.workers.lm_encode`.
    - `precision`: the frozen base weights' format, ``fp32``, ``bf16``, ``fp16``, ``4bit`` or ``8bit``
      (language-model tasks; adapters train in fp32), or, for classification/regression heads, ``fp32``
      weights computed under ``bf16-autocast`` / ``fp16-autocast`` on CUDA (``fp32`` on a CPU).
    - `target_scaling`: regression only, ``{"mean", "std"}`` of the training split's labels (label
      units): the head was trained on ``(y - mean) / std`` and predicts ``mean + std * output``; None
      for classification (see `autopeft.workers.targets`).
    - `status`: ``"ok"`` or ``"failed"``; a failed trial has `failure` = ``{"kind", "message"}`` with
      kind in `FAILURE_KINDS` (``oom``: CUDA or CPU out of memory; ``nan_loss``; ``data_error``; ``error``).
    """

    status: str = "ok"
    metric: float | None = None
    metric_name: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    params: int = 0
    params_pct: float = 0.0
    head_params: int = 0
    head_modules: list[str] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    throughput: float = 0.0
    peak_memory_mb: float = 0.0
    steps: int = 0
    no_grad_layers: int = 0
    seed: int = 0
    device: str = "cpu"
    host: str = ""
    fidelity: dict[str, Any] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)
    truncated: dict[str, int] = field(default_factory=dict)
    precision: str = ""
    target_scaling: dict[str, float] | None = None
    failure: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.metric is not None and math.isfinite(self.metric)

    @classmethod
    def failed(cls, kind: str, message: str, **values: Any) -> TrialResult:
        """A failed trial; `values` fills any other field known at the time of failure."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"failure kind: expected one of {', '.join(FAILURE_KINDS)}, got {kind!r}")
        return cls(status="failed", failure={"kind": kind, "message": message}, **values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data (``json.dumps`` works on it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """Inverse of `to_dict`; keys this version does not know (from a newer one) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
