"""Regression targets standardised with the training split's mean and standard deviation.

A freshly initialised regression head outputs values near 0 with a small spread; trained with MSE on
raw targets (STS-B scores 0–5, prices, ratings 1–10), the first hundreds of steps go to learning the
offset and the scale, so at the low fidelities a search uses every configuration scores near zero
correlation. Trained on ``z = (y - mean) / std`` instead, the head starts at the right scale and the
metric no longer depends on the units of the labels. Predictions are mapped back with
``y = mean + std * z`` and scored on the original scale; `mean` and `std` are kept with the trial's
result (``TrialResult.target_scaling``) so its predictions can be reproduced.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TargetScaling:
    """``z = (y - mean) / std``: `mean` and `std` (population) of the training targets, in label units."""

    mean: float
    std: float

    @classmethod
    def fit(cls, targets: Sequence[float]) -> TargetScaling:
        """The scaling of `targets` (the training split, shape (n,)); std 1.0 when they do not vary."""
        values = [float(v) for v in targets]
        mean = statistics.fmean(values) if values else 0.0
        std = statistics.pstdev(values, mean) if len(values) > 1 else 0.0
        return cls(mean, std if std > 0 and math.isfinite(std) else 1.0)

    def standardise(self, targets: Sequence[float]) -> list[float]:
        """`targets` (label units) as z-scores, shape (n,)."""
        return [(float(v) - self.mean) / self.std for v in targets]

    def original(self, outputs: np.ndarray) -> np.ndarray:
        """Head outputs (z-scores, any shape) back in label units, same shape."""
        return self.mean + self.std * np.asarray(outputs, dtype=float)

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}
