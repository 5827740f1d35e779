"""What the low-rank families (LoRA, LoHa, LoKr) share: target groups, peft target regexes, per-layer
ranks as peft's `rank_pattern`, and their synthetic-problem capacity.

Target groups: ``qv`` the attention query and value projections (a fused qkv counts), ``attention``
every linear layer of the attention block, ``all-linear`` every linear layer of the block.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING

from autopeft.search_spaces.errors import PlanError

if TYPE_CHECKING:
    from autopeft.search_spaces.model_structure import LinearLayer, ModelStructure
    from autopeft.search_spaces.plan import ModulePlan

TARGET_GROUPS = ("qv", "attention", "all-linear")
_FALLBACK_QV = ("query", "value", "q_proj", "v_proj", "q_lin", "v_lin", "c_attn", "qkv", "query_key_value", "Wqkv")
# Synthetic problem: size scale (rank at which capacity is 63% of its top) and gain per target group.
TARGET_SCALE = {"qv": 4.0, "attention": 8.0, "all-linear": 12.0}
TARGET_GAIN = {"qv": 1.0, "attention": 1.15, "all-linear": 1.3}


def select(structure: ModelStructure, targets: str | None, family: str) -> tuple[LinearLayer, ...]:
    """Linear layers of one block for a low-rank target group (peft's LoRA defaults for ``qv``)."""
    if targets in (None, "qv"):
        return structure.named(structure.peft_default("LORA_TARGET") or _FALLBACK_QV)
    if targets == "attention":
        return structure.attention_linears()
    if targets == "all-linear":
        return structure.linears
    raise PlanError(f"{family}.targets: unknown target group {targets!r}")


def layer_regex(structure: ModelStructure, layers, paths) -> str:
    """Regex that peft full-matches against module names: the given block paths in the given layers."""
    block = re.escape(structure.layers_path)
    layer_alt = "|".join(str(i) for i in layers)
    path_alt = "|".join(re.escape(p) for p in paths)
    return rf"(?:.*\.)?{block}\.(?:{layer_alt})\.(?:{path_alt})"


def ranks(module: ModulePlan, structure: ModelStructure) -> tuple[int, dict[str, int]]:
    """(default rank, peft `rank_pattern`): the most common rank, and the layers whose rank differs."""
    per_layer = {i: s for i, s in enumerate(module.sizes) if s}
    default = Counter(per_layer.values()).most_common(1)[0][0]
    block = re.escape(structure.layers_path)
    return default, {rf"{block}\.{i}\..*": r for i, r in per_layer.items() if r != default}


def peft_targets(module: ModulePlan, structure: ModelStructure, linears) -> str:
    """peft `target_modules`: the module's target layers in the layers it is in."""
    return layer_regex(structure, module.layers, [lin.path for lin in linears])


def capacity(efficiency: float, size: int, targets: str | None, alpha: float | None, alpha_rank: float) -> float:
    """Synthetic capacity of a low-rank module: ``eff * (1 - exp(-r / scale_t)) * gain_t``, times a mild
    Gaussian penalty in ``log2(alpha / (2 * alpha_rank))`` (LoRA works best with alpha near 2r;
    `alpha_rank` is r, or sqrt(r) under rsLoRA's alpha / sqrt(r) scaling)."""
    if size <= 0:
        return 0.0
    c = efficiency * (1.0 - math.exp(-size / TARGET_SCALE.get(targets or "qv", 4.0)))
    c *= TARGET_GAIN.get(targets or "qv", 1.0)
    if alpha is not None:
        c *= math.exp(-0.05 * math.log2(alpha / (2.0 * alpha_rank)) ** 2)
    return c
