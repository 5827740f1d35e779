"""`synthetic-peft`: a cheap, documented, PEFT-like benchmark function of a plan → metric in [0, 1].

It mimics what the PEFT literature reports, so that optimisers can be compared in seconds:

- **layer importance rises with depth** (IST, Yao et al. 2024; "Higher layers need more LoRA experts",
  Gao et al. 2024; AutoPEFT's found configurations favour upper layers): layer ``l`` of ``L`` has
  weight ``w_l = 0.25 + 0.75 * (l / (L - 1))^1.5``;
- **diminishing returns in size/rank**: a family of size ``s`` in a layer gives capacity
  ``c = eff_f * (1 - exp(-s / scale_f))`` with a family efficiency ``eff_f`` and a size scale
  ``scale_f`` (LoRA rank scale 4, or 8 / 12 for attention / all-linear targets; bottleneck adapters
  hidden/64; prefix 16 tokens; IA3 has no size). Each family declares its own term
  (`Family.synthetic_capacity` in ``search_spaces/families``; efficiencies: LoRA 1, LoHa 0.95,
  parallel 0.95, serial 0.9, LoKr 0.9, prefix 0.7, IA3 0.5);
- **interactions between families**: families acting on the same sub-layer (`Family.synthetic_side`)
  substitute for each other (``1 - prod(1 - c)`` per sub-layer: attention side = LoRA, LoHa, LoKr,
  prefix, parallel adapter; feed-forward side = serial adapter, IA3), while the two sides complement
  each other — a layer scores ``(0.65 a + 0.35 f + 0.3 a f) / 1.3`` for attention capacity ``a`` and
  feed-forward ``f``;
- low-rank targets widen capacity (qv x1, attention x1.15, all-linear x1.3) and ``alpha`` works best
  near ``2 r`` (a mild Gaussian penalty in ``log2(alpha / 2r)``; under rsLoRA, whose scaling is
  alpha / sqrt(r), near ``2 sqrt(r)``); DoRA adds 4% (Liu et al. 2024 report about a point over LoRA);
- **too many parameters hurt slightly with little data** (Pu et al. 2023): ``-0.02 * min(1, pct / 2)``;
- the metric is ``floor + (top - floor) * (1 - exp(-4 q)) / (1 - exp(-4))`` for the depth-weighted
  mean layer score ``q`` (chance ``floor = 0.5``, ``top = 0.92``: an SST-2-like accuracy);
- **noise**: Gaussian, sd 0.004, a fixed function of (plan, seed) — repeating a plan on one seed
  returns the same value, so optimisers see one fixed noisy landscape per benchmark seed.

`SyntheticPeft(space, seed)` is a benchmark *problem*: ``space``, ``model`` (the config it counts
parameters on), ``metric_floor`` and ``evaluate(plan_dict) -> float``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from autopeft.search_spaces import families
from autopeft.search_spaces.plan import ModulePlan, Plan
from autopeft.search_spaces.space import SearchSpace

FLOOR, TOP = 0.5, 0.92
NOISE_SD = 0.004


def layer_weights(num_layers: int) -> np.ndarray:
    """``L`` importance weights rising with depth, from 0.25 (first layer) to 1 (last)."""
    if num_layers == 1:
        return np.ones(1)
    return 0.25 + 0.75 * (np.arange(num_layers) / (num_layers - 1)) ** 1.5


def capacity(family: str, size: int, hidden: int, targets: str | None = None, alpha: float | None = None,
             options: dict[str, bool] | None = None) -> float:
    """Capacity in [0, ~1.3] one family of `size` gives one layer (the family's `synthetic_capacity`)."""
    module = ModulePlan(family, (size,), targets=targets, alpha=alpha, options=options or {})
    return families.get(family).synthetic_capacity(module, size, hidden)


def quality(plan: Plan, hidden: int) -> float:
    """Depth-weighted mean layer score ``q`` in [0, 1] (noise-free, before the metric's saturation)."""
    L = plan.num_layers
    w = layer_weights(L)
    score = np.zeros(L)
    for layer in range(L):
        miss = {"attention": 1.0, "ffn": 1.0}
        for m in plan.active:
            fam = families.get(m.family)
            miss[fam.synthetic_side] *= 1.0 - min(fam.synthetic_capacity(m, m.sizes[layer], hidden), 1.0)
        a, f = 1.0 - miss["attention"], 1.0 - miss["ffn"]
        score[layer] = (0.65 * a + 0.35 * f + 0.3 * a * f) / 1.3
    return float(np.dot(w, score) / w.sum())


def clean_metric(plan: Plan, hidden: int, pct: float) -> float:
    """The noise-free metric of a plan (see the module docstring)."""
    q = quality(plan, hidden)
    value = FLOOR + (TOP - FLOOR) * (1.0 - math.exp(-4.0 * q)) / (1.0 - math.exp(-4.0))
    return value - 0.02 * min(1.0, pct / 2.0)


def plan_noise(plan: Plan, seed: int, sd: float = NOISE_SD) -> float:
    """Gaussian noise that is a fixed function of (plan, seed)."""
    digest = hashlib.sha256(f"{seed}:{plan.to_json()}".encode()).digest()
    return float(np.random.default_rng(int.from_bytes(digest[:8], "little")).normal(0.0, sd))


class SyntheticPeft:
    """The `synthetic-peft` problem over a real space (default: AutoPEFT's space on BERT-base's config)."""

    name = "synthetic-peft"
    metric_floor = FLOOR

    def __init__(self, space: SearchSpace, seed: int = 0, model: str | None = None, noise_sd: float = NOISE_SD):
        self.space = space
        self.model = model
        self.seed = seed
        self.noise_sd = noise_sd

    def evaluate(self, plan: Plan | dict[str, Any]) -> float:
        """Metric in [0, 1] of a `Plan` or its ``autopeft-plan/v1`` dict."""
        if isinstance(plan, dict):
            plan = Plan.from_dict(plan)
        if plan.is_empty:
            return FLOOR
        pct = self.space.count(plan).pct
        value = clean_metric(plan, self.space.structure.hidden_size, pct) + plan_noise(plan, self.seed, self.noise_sd)
        return float(min(1.0, max(0.0, value)))
