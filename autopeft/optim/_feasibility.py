"""Exact, vectorised parameter counts, validity and the hard budget for batches of index vectors.

The optimisers score thousands of candidate configurations per proposal, so decoding each one into a
`Plan` and counting it (about 0.15 ms each) is too slow. `Feasibility` computes the same exact
numbers for an ``n x d`` batch at once: the count of a plan is additive over (family, layer), and a
family's cost in one layer depends only on its size, its target group and the library that builds
the plan (``search_spaces.counting.library_for``: peft for LoRA alone or IA3 alone, else adapters).
Per-layer costs come from ``search_spaces.counting.layer_cost`` itself, so the numbers are the ones
`SearchSpace.count` gives (a test checks equality over random configurations of every built-in space).

A configuration is *feasible* when it is valid (some module in some layer, families buildable
together) and within the budget: ``pct <= budget_pct`` and, when given, ``params <= max_params``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autopeft.optim._encoding import SpaceEncoding
from autopeft.search_spaces.counting import PEFT_FAMILIES, layer_cost
from autopeft.search_spaces.space import SearchSpace

LIBRARIES = ("peft", "adapters")


@dataclass(frozen=True)
class _FamilyLayout:
    """Where one family's sizes, mask, targets and alpha live in an index vector."""

    family: str
    size_cols: np.ndarray  # L columns (per-layer sizes) or 1 column (shared size)
    mask_cols: np.ndarray | None  # L flag columns, or None for per-layer sizes
    targets_col: int | None
    alpha_col: int | None
    targets: tuple[str | None, ...]
    costs: np.ndarray  # library x targets x size-choice → parameters in one layer


class Feasibility:
    """Exact counts and the feasibility test for one space, model and budget (see module docstring)."""

    def __init__(self, space: SearchSpace, encoding: SpaceEncoding, budget_pct: float | None,
                 max_params: int | None = None):
        if budget_pct is None and max_params is None:
            raise ValueError("expected a budget: budget_pct or max_params, got neither")
        self.space = space
        self.encoding = encoding
        self.base_params = space.structure.base_params
        self.num_layers = space.num_layers
        self.max_params = max_params
        limits = [b for b in (budget_pct, None if max_params is None else 100.0 * max_params / self.base_params)
                  if b is not None]
        self.budget_pct = float(budget_pct) if budget_pct is not None else float("inf")
        #: the tighter of the two bounds, as % of the model: the reference point's params coordinate
        self.effective_budget_pct = float(min(limits))
        self.layouts = tuple(self._layout(m) for m in space.modules)

    def _layout(self, m) -> _FamilyLayout:
        pos = self.encoding.position
        L = self.num_layers
        if m.mask is None:
            size_cols = np.array([pos[f"{m.family}.size.{layer}"] for layer in range(L)])
            mask_cols = None
        else:
            size_cols = np.array([pos[f"{m.family}.size"]])
            mask = "mask" if m.mask == "shared" else f"{m.family}.mask"
            mask_cols = np.array([pos[f"{mask}.{layer}"] for layer in range(L)])
        structure = self.space.structure
        costs = np.array([[[layer_cost(structure, m.family, int(s), lib, t) for s in m.sizes]
                           for t in m.targets] for lib in LIBRARIES], dtype=np.int64)
        return _FamilyLayout(
            family=m.family, size_cols=size_cols, mask_cols=mask_cols,
            targets_col=pos.get(f"{m.family}.targets"), alpha_col=pos.get(f"{m.family}.alpha"),
            targets=m.targets, costs=costs,
        )

    # --- per-family, per-layer size indices ------------------------------------------------------
    def size_index(self, Z: np.ndarray, lay: _FamilyLayout) -> np.ndarray:
        """``n x L`` index of the family's size in each layer (0 = absent)."""
        if lay.mask_cols is None:
            return Z[:, lay.size_cols]
        return Z[:, lay.size_cols] * Z[:, lay.mask_cols]

    def _targets_index(self, Z: np.ndarray, lay: _FamilyLayout) -> np.ndarray:
        return Z[:, lay.targets_col] if lay.targets_col is not None else np.zeros(len(Z), dtype=np.int64)

    # --- counts -------------------------------------------------------------------------------------
    def active(self, Z: np.ndarray) -> np.ndarray:
        """``n x F`` booleans: family present in some layer."""
        Z = np.atleast_2d(Z)
        return np.stack([(self.size_index(Z, lay) > 0).any(axis=1) for lay in self.layouts], axis=1)

    def params(self, Z: np.ndarray) -> np.ndarray:
        """``n`` exact trainable-parameter counts (int64)."""
        Z = np.atleast_2d(Z)
        active = self.active(Z)
        families = [lay.family for lay in self.layouts]
        alone_peft = (active.sum(axis=1) == 1) & active[:, [f in PEFT_FAMILIES for f in families]].any(axis=1)
        library = np.where(alone_peft, 0, 1)
        total = np.zeros(len(Z), dtype=np.int64)
        for lay in self.layouts:
            idx = self.size_index(Z, lay)
            per_layer = lay.costs[library[:, None], self._targets_index(Z, lay)[:, None], idx]
            total += per_layer.sum(axis=1)
        return total

    def pct(self, Z: np.ndarray) -> np.ndarray:
        """``n`` trainable parameters as % of the base model (same formula as `ParamCount.pct`)."""
        return 100.0 * self.params(Z) / self.base_params

    def valid(self, Z: np.ndarray) -> np.ndarray:
        """``n`` booleans: some module somewhere, and no LoRA together with IA3 (no library builds that)."""
        active = self.active(Z)
        families = [lay.family for lay in self.layouts]
        ok = active.any(axis=1)
        if "lora" in families and "ia3" in families:
            ok &= ~(active[:, families.index("lora")] & active[:, families.index("ia3")])
        return ok

    def feasible(self, Z: np.ndarray) -> np.ndarray:
        """``n`` booleans: valid and within the budget."""
        Z = np.atleast_2d(Z)
        if len(Z) == 0:
            return np.zeros(0, dtype=bool)
        params = self.params(Z)
        ok = self.valid(Z) & (100.0 * params / self.base_params <= self.budget_pct)
        if self.max_params is not None:
            ok &= params <= self.max_params
        return ok

    def check(self, params: dict) -> bool:
        """The slow, authoritative test through `SearchSpace` (used on the one proposal handed out)."""
        if not self.space.is_valid(params):
            return False
        count = self.space.count(self.space.decode(params))
        return count.pct <= self.budget_pct and (self.max_params is None or count.params <= self.max_params)

    # --- identity of configurations ----------------------------------------------------------------
    def plan_keys(self, Z: np.ndarray) -> list[bytes]:
        """A key per row that is equal exactly when two configurations decode to the same trained plan.

        Parameters that do not matter (the mask of a family whose size is 0, the targets or alpha of
        an absent family) are dropped, so e.g. two configurations differing only there are one.
        """
        Z = np.atleast_2d(Z)
        parts = []
        for lay in self.layouts:
            idx = self.size_index(Z, lay)
            on = (idx > 0).any(axis=1, keepdims=True)
            parts.append(idx)
            for col in (lay.targets_col, lay.alpha_col):
                if col is not None:
                    parts.append(np.where(on, Z[:, col : col + 1], -1))
        canon = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.int64)
        return [row.tobytes() for row in canon]

    # --- drawing feasible configurations -------------------------------------------------------------
    def repair(self, z: np.ndarray, rng: np.random.Generator, max_steps: int = 10_000) -> np.ndarray | None:
        """Shrink ``z`` by random one-step moves (flag off, size one step down) until it is feasible.

        Keeps as much of the configuration as the budget allows; None when shrinking empties it.
        """
        z = np.array(z, dtype=np.int64)
        for _ in range(max_steps):
            if self.feasible(z)[0]:
                return z
            moves = self.encoding.shrink_moves(z)
            if len(moves) == 0:
                return None
            ok = self.valid(moves)
            if not ok.any():
                return None
            candidates = moves[ok]
            z = candidates[rng.integers(len(candidates))]
        return None

    def random_feasible(self, rng: np.random.Generator, n: int, exclude: set[bytes] | frozenset = frozenset(),
                        max_rounds: int = 20, chunk: int = 2048) -> np.ndarray:
        """Up to ``n`` distinct feasible configurations, uniform over the feasible set by rejection,
        topped up by `repair` of random draws when the feasible share is tiny (``m x d``, m <= n)."""
        out: list[np.ndarray] = []
        seen = set(exclude)
        for _ in range(max_rounds):
            Z = self.encoding.random(rng, chunk)
            Z = Z[self.feasible(Z)]
            for z, k in zip(Z, self.plan_keys(Z), strict=True):
                if k not in seen:
                    seen.add(k)
                    out.append(z)
                    if len(out) >= n:
                        return np.array(out)
        for z in self.encoding.random(rng, chunk):
            fixed = self.repair(z, rng)
            if fixed is not None:
                k = self.plan_keys(fixed)[0]
                if k not in seen:
                    seen.add(k)
                    out.append(fixed)
                    if len(out) >= n:
                        break
        return np.array(out, dtype=np.int64).reshape(-1, self.encoding.d)
