"""Exact, vectorised parameter counts, validity and the hard budget for batches of index vectors.

The optimisers score thousands of candidate configurations per proposal, so decoding each one into a
`Plan` and counting it (about 0.15 ms each) is too slow. `Feasibility` computes the same exact
numbers for an ``n x d`` batch at once: the count of a plan is additive over (module, layer), and a
module's cost in one layer depends only on its size, its other choices (family, targets, alpha,
options: one *variant*) and the library that builds the plan. The library and the validity of a
configuration depend only on which families are active: both come from the family registry
(``search_spaces.families.library_for``) through a table indexed by the active set's bit mask.
Per-layer costs come from each family's ``layer_cost``, so the numbers are the ones `SearchSpace.count`
gives (a test checks equality over random configurations of every built-in space).

A configuration is *feasible* when it is valid (some module in some layer, families buildable
together) and within the budget: ``pct <= budget_pct`` and, when given, ``params <= max_params``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from autopeft.optim._encoding import SpaceEncoding
from autopeft.search_spaces import families
from autopeft.search_spaces.families.base import LIBRARIES
from autopeft.search_spaces.space import ModuleSpace, SearchSpace


@dataclass(frozen=True)
class _ModuleLayout:
    """Where one module's sizes, mask and other choices live in an index vector, and what they cost."""

    module: ModuleSpace
    size_cols: np.ndarray  # L columns (per-layer sizes) or 1 column (shared size)
    mask_cols: np.ndarray | None  # L flag columns, or None for per-layer sizes
    choice_cols: np.ndarray  # k columns: the module's categorical dims (family, targets, alpha, options)
    strides: np.ndarray  # k: variant index = sum(choice index * stride)
    family_col: int | None  # column of the family choice (None: one family)
    family_ids: np.ndarray  # family choice index → position in Feasibility.families
    relevant: np.ndarray  # family choice x k: whether the chosen family uses that dim
    costs: np.ndarray  # library x variant x layer x size choice → parameters in that layer


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
        #: every family some module can be, in module order: the columns of `active`
        self.families = tuple(f for m in space.modules for f in m.families)
        self.layouts = tuple(self._layout(m) for m in space.modules)
        # active-set bit mask → library index (0 peft, 1 adapters) or -1 when no library builds it
        self._library = np.array([
            -1 if (lib := families.library_for(f for k, f in enumerate(self.families) if bits >> k & 1)) is None
            else LIBRARIES.index(lib)
            for bits in range(2 ** len(self.families))], dtype=np.int64)

    def _layout(self, m: ModuleSpace) -> _ModuleLayout:
        pos = self.encoding.position  # a module sharing another's alpha/options reads that module's columns
        L = self.num_layers
        if m.mask is None:
            size_cols = np.array([pos[f"{m.name}.size.{layer}"] for layer in range(L)])
            mask_cols = None
        else:
            size_cols = np.array([pos[f"{m.name}.size"]])
            mask_cols = np.array([pos[f"{self.space.mask_of(m)}.{layer}"] for layer in range(L)])
        dims = m.dims
        counts = [len(v) for v in dims.values()]
        strides = np.array([int(np.prod(counts[k + 1:])) for k in range(len(counts))], dtype=np.int64)
        structure = self.space.structure
        costs = np.zeros((len(LIBRARIES), int(np.prod(counts)), L, len(m.sizes)), dtype=np.int64)
        for v, values in enumerate(itertools.product(*dims.values())):
            proto = m.module_plan((0,) * L, dict(zip(dims, values, strict=True)))
            fam = families.get(proto.family)
            for li, lib in enumerate(LIBRARIES):
                if lib in fam.libraries:  # per layer: an encoder-decoder's decoder blocks hold more
                    costs[li, v] = [[fam.layer_cost(structure.block(i), proto, int(s), lib) for s in m.sizes]
                                    for i in range(L)]
        uses = {"family": lambda f: True, "targets": lambda f: bool(f.target_groups),
                "alpha": lambda f: f.default_alpha is not None}
        relevant = np.array([[uses.get(d, lambda f, d=d: d in f.options)(families.get(name)) for d in dims]
                             for name in m.families], dtype=bool).reshape(len(m.families), len(dims))
        first = self.families.index(m.families[0])
        return _ModuleLayout(
            module=m, size_cols=size_cols, mask_cols=mask_cols,
            choice_cols=np.array([pos[m.param_names()[d]] for d in dims], dtype=np.int64), strides=strides,
            family_col=pos.get(f"{m.name}.family"), family_ids=np.arange(first, first + len(m.families)),
            relevant=relevant, costs=costs,
        )

    # --- per-family, per-layer size indices ------------------------------------------------------
    def size_index(self, Z: np.ndarray, lay: _ModuleLayout) -> np.ndarray:
        """``n x L`` index of the module's size in each layer (0 = absent)."""
        if lay.mask_cols is None:
            return Z[:, lay.size_cols]
        return Z[:, lay.size_cols] * Z[:, lay.mask_cols]

    def _variant_index(self, Z: np.ndarray, lay: _ModuleLayout) -> np.ndarray:
        return Z[:, lay.choice_cols] @ lay.strides if len(lay.strides) else np.zeros(len(Z), dtype=np.int64)

    def _family_choice(self, Z: np.ndarray, lay: _ModuleLayout) -> np.ndarray:
        return Z[:, lay.family_col] if lay.family_col is not None else np.zeros(len(Z), dtype=np.int64)

    # --- counts -------------------------------------------------------------------------------------
    def active(self, Z: np.ndarray) -> np.ndarray:
        """``n x F`` booleans: family `families[f]` present in some layer."""
        Z = np.atleast_2d(Z)
        out = np.zeros((len(Z), len(self.families)), dtype=bool)
        for lay in self.layouts:
            on = (self.size_index(Z, lay) > 0).any(axis=1)
            out[np.arange(len(Z)), lay.family_ids[self._family_choice(Z, lay)]] |= on
        return out

    def _library_index(self, active: np.ndarray) -> np.ndarray:
        """``n`` library indices (0 peft, 1 adapters, -1 none) of the active family sets."""
        bits = active.astype(np.int64) @ (1 << np.arange(active.shape[1], dtype=np.int64))
        return self._library[bits]

    def params(self, Z: np.ndarray) -> np.ndarray:
        """``n`` exact trainable-parameter counts (int64)."""
        Z = np.atleast_2d(Z)
        library = np.maximum(self._library_index(self.active(Z)), 0)  # invalid rows: any library, never feasible
        total = np.zeros(len(Z), dtype=np.int64)
        for lay in self.layouts:
            idx = self.size_index(Z, lay)
            layers = np.arange(idx.shape[1])[None, :]
            per_layer = lay.costs[library[:, None], self._variant_index(Z, lay)[:, None], layers, idx]
            total += per_layer.sum(axis=1)
        return total

    def pct(self, Z: np.ndarray) -> np.ndarray:
        """``n`` trainable parameters as % of the base model (same formula as `ParamCount.pct`)."""
        return 100.0 * self.params(Z) / self.base_params

    def valid(self, Z: np.ndarray) -> np.ndarray:
        """``n`` booleans: some module somewhere, and some library builds the active families together."""
        active = self.active(Z)
        return active.any(axis=1) & (self._library_index(active) >= 0)

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

        Parameters that do not matter (the mask of a module whose size is 0, the choices of an absent
        module, an option the chosen family does not have) are dropped, so e.g. two configurations
        differing only there are one.
        """
        Z = np.atleast_2d(Z)
        parts = []
        for lay in self.layouts:
            idx = self.size_index(Z, lay)
            on = (idx > 0).any(axis=1, keepdims=True)
            parts.append(idx)
            if len(lay.choice_cols):
                used = on & lay.relevant[self._family_choice(Z, lay)]
                parts.append(np.where(used, Z[:, lay.choice_cols], -1))
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
