"""Encoding of a search space for surrogate models: trial params ⇄ integer indices ⇄ numeric features.

A configuration is held as an integer *index vector* ``z`` of shape ``d`` (one entry per Optuna
parameter, in `SearchSpace.distributions()` order): the position of the chosen value in the
distribution's choices (flags: 0/1). Index vectors are exact, hashable (``z.tobytes()``) and cheap
to move around; a batch of them is an ``n x d`` int64 array ``Z``.

`features(Z)` turns them into the ``n x D`` surrogate inputs in [0, 1]:

- on/off layer flags → 0 or 1;
- numeric choices (sizes, ascending with 0 = off, and lora alpha) → ordinal index / (choices - 1):
  the built-in sizes are geometric (hidden/2^k, ranks 2..16), so the ordinal index is a log scale;
- non-numeric choices (target groups) → one-hot, one column per choice.

`neighbours(z)` is the one-exchange neighbourhood AutoPEFT (Zhou et al., TACL 2024, §3.3) searches
over: flip one flag, move one ordinal value one step, or change one one-hot categorical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from autopeft.search_spaces.space import SearchSpace

Kind = Literal["flag", "ordinal", "onehot"]
Role = Literal["flag", "size", "targets", "alpha", "other"]


@dataclass(frozen=True)
class Dim:
    """One Optuna parameter: `kind` says how it is encoded, `role` what it means in the plan."""

    name: str
    kind: Kind
    role: Role
    choices: tuple[Any, ...]

    @property
    def n(self) -> int:
        return len(self.choices)

    @property
    def width(self) -> int:
        """Columns in the feature encoding."""
        return self.n if self.kind == "onehot" else 1


def _dim_of(name: str, dist: BaseDistribution) -> Dim:
    if isinstance(dist, IntDistribution):
        if (dist.low, dist.high, dist.step) != (0, 1, 1):
            raise ValueError(f"{name}: expected a 0/1 flag IntDistribution(0, 1), got {dist}")
        return Dim(name, "flag", "flag", (0, 1))
    if not isinstance(dist, CategoricalDistribution):
        raise ValueError(f"{name}: expected IntDistribution(0, 1) or CategoricalDistribution, got {type(dist).__name__}")
    choices = tuple(dist.choices)
    numeric = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)
    role: Role = ("size" if ".size" in name else "alpha" if name.endswith(".alpha")
                  else "targets" if name.endswith(".targets") else "other")
    if numeric and list(choices) != sorted(choices):
        raise ValueError(f"{name}: expected numeric choices in ascending order, got {list(choices)}")
    return Dim(name, "ordinal" if numeric else "onehot", role, choices)


class SpaceEncoding:
    """Index vectors and features of one `SearchSpace` (see the module docstring)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.dims: tuple[Dim, ...] = tuple(_dim_of(n, d) for n, d in space.distributions().items())
        self.names = tuple(d.name for d in self.dims)
        self.position = {d.name: i for i, d in enumerate(self.dims)}
        self.sizes = np.array([d.n for d in self.dims], dtype=np.int64)
        self.num_features = sum(d.width for d in self.dims)
        self._neighbour_moves = self._build_moves()

    @property
    def d(self) -> int:
        """Number of Optuna parameters (length of an index vector)."""
        return len(self.dims)

    # --- params ⇄ index vectors -------------------------------------------------------------------
    def index(self, params: dict[str, Any]) -> np.ndarray:
        """Trial params → index vector ``z`` (shape ``d``); raises `KeyError`/`ValueError` when incomplete."""
        z = np.empty(self.d, dtype=np.int64)
        for i, dim in enumerate(self.dims):
            value = params[dim.name]
            try:
                z[i] = dim.choices.index(value)
            except ValueError:
                raise ValueError(f"{dim.name}: expected one of {list(dim.choices)}, got {value!r}") from None
        return z

    def try_index(self, params: dict[str, Any]) -> np.ndarray | None:
        """Like `index`, but None for params that do not cover this space (e.g. a trial still being sampled)."""
        try:
            return self.index(params)
        except (KeyError, ValueError):
            return None

    def params(self, z: np.ndarray) -> dict[str, Any]:
        """Index vector → trial params with the distributions' own choice values (plain Python types)."""
        return {dim.name: dim.choices[int(k)] for dim, k in zip(self.dims, z, strict=True)}

    @staticmethod
    def key(z: np.ndarray) -> bytes:
        return np.ascontiguousarray(z, dtype=np.int64).tobytes()

    # --- random and unit-cube points -----------------------------------------------------------------
    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n x d`` uniformly random index vectors."""
        return rng.integers(0, self.sizes, size=(n, self.d), dtype=np.int64)

    def from_unit(self, U: np.ndarray) -> np.ndarray:
        """``n x d`` points of the unit cube (e.g. Sobol) → index vectors, each cell of equal width."""
        return np.minimum((np.asarray(U) * self.sizes).astype(np.int64), self.sizes - 1)

    # --- features ---------------------------------------------------------------------------------
    def features(self, Z: np.ndarray) -> np.ndarray:
        """``n x d`` index vectors → ``n x D`` features in [0, 1] (D = `num_features`)."""
        Z = np.atleast_2d(Z)
        cols = []
        for i, dim in enumerate(self.dims):
            if dim.kind == "flag":
                cols.append(Z[:, i : i + 1].astype(np.float64))
            elif dim.kind == "ordinal":
                cols.append((Z[:, i : i + 1] / max(dim.n - 1, 1)).astype(np.float64))
            else:
                cols.append(np.eye(dim.n)[Z[:, i]])
        return np.concatenate(cols, axis=1) if cols else np.zeros((len(Z), 0))

    # --- one-exchange neighbourhood ----------------------------------------------------------------
    def _build_moves(self) -> list[tuple[int, int]]:
        """(dimension, delta-or-target) moves; delta for flags/ordinals, a target index for one-hots."""
        moves: list[tuple[int, int]] = []
        for i, dim in enumerate(self.dims):
            if dim.kind == "onehot":
                moves.extend((i, -(k + 1)) for k in range(dim.n))  # negative: set to index k
            else:
                moves.extend([(i, +1), (i, -1)])
        return moves

    def neighbours(self, z: np.ndarray) -> np.ndarray:
        """One-exchange neighbours of ``z``: ``k x d`` (flip a flag, ordinal ±1, other one-hot value)."""
        out = []
        for i, move in self._neighbour_moves:
            dim = self.dims[i]
            if dim.kind == "onehot":
                target = -move - 1
                if target == z[i]:
                    continue
                value = target
            else:
                value = z[i] + move
                if not 0 <= value < dim.n:
                    continue
            w = z.copy()
            w[i] = value
            out.append(w)
        return np.array(out, dtype=np.int64).reshape(-1, self.d)

    def shrink_moves(self, z: np.ndarray) -> np.ndarray:
        """Neighbours with fewer parameters: a flag switched off or a size one step smaller (``k x d``)."""
        out = []
        for i, dim in enumerate(self.dims):
            if dim.role in ("flag", "size") and z[i] > 0:
                w = z.copy()
                w[i] -= 1
                out.append(w)
        return np.array(out, dtype=np.int64).reshape(-1, self.d)
