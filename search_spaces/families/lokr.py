"""LoKr (Yeh et al. 2023, LyCORIS; peft `LoKrConfig`): a Kronecker product ``w1 ⊗ w2`` per targeted layer.

Counting follows peft 0.21 (`peft/tuners/lokr/layer.py`) for an nn.Linear of in x out: both sizes are
factorised near their square root (``factorization``: in = m * n, out = l * k with m <= n, l <= k);
``w1`` is (l x m), ``w2`` is (k x n). ``w2`` is a full matrix when ``r >= max(k, n) / 2``, else a rank-r
product ``r * (k + n)``; ``w1`` is always full unless ``decompose_both`` and ``r < max(l, m) / 2``
(then ``r * (l + m)``). The count can thus stop growing with r once both factors are full.
"""

from __future__ import annotations

from autopeft.search_spaces.families._lycoris import Lycoris


def kron_factor(r: int, rows: int, cols: int, decompose: bool) -> int:
    """Parameters of one Kronecker factor of shape rows x cols: full, or rank-r when `decompose`."""
    return r * (rows + cols) if decompose else rows * cols


class Lokr(Lycoris):
    name = "lokr"
    description = "LoKr: Kronecker product of a small and a low-rank factor per targeted nn.Linear, rank per layer (peft)"
    peft_class = "LoKrConfig"
    options = {"decompose_both": False}
    efficiency = 0.9

    def layer_cost(self, structure, module, size, library):
        from peft.tuners.lokr.layer import factorization

        if size == 0:
            return 0
        both = module.option("decompose_both")
        total = 0
        for lin in self.targets_of(structure, module.targets):
            m, n = factorization(lin.in_features, -1)
            l, k = factorization(lin.out_features, -1)  # noqa: E741
            total += kron_factor(size, l, m, both and size < max(l, m) / 2)
            total += kron_factor(size, k, n, size < max(k, n) / 2)
        return total


FAMILY = Lokr()
