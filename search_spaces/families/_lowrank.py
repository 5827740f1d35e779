"""What the low-rank families (LoRA, LoHa, LoKr) share: target groups, peft target regexes, per-layer
ranks as peft's `rank_pattern`, and their synthetic-problem capacity.

Target groups: ``qv`` the attention query and value projections (a fused qkv counts), ``attention``
every linear layer of the attention blocks (self- and, in decoders of encoder-decoder models,
cross-attention), ``mlp`` every linear layer outside attention (the feed-forward: gate/up/down,
fc1/fc2, T5's wi/wo), ``all-linear`` every linear layer of the block.

Regexes and rank patterns are written per stack (`ModelStructure.split`): an encoder-decoder model's
global layer n+i is block i of the decoder.
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

TARGET_GROUPS = ("qv", "attention", "mlp", "all-linear")
_FALLBACK_QV = ("query", "value", "q_proj", "v_proj", "q_lin", "v_lin", "c_attn", "qkv", "qkv_proj", "query_key_value", "Wqkv")
# Synthetic problem: size scale (rank at which capacity is 63% of its top) and gain per target group.
TARGET_SCALE = {"qv": 4.0, "attention": 8.0, "mlp": 8.0, "all-linear": 12.0}
TARGET_GAIN = {"qv": 1.0, "attention": 1.15, "mlp": 1.1, "all-linear": 1.3}


def select(structure: ModelStructure, targets: str | None, family: str) -> tuple[LinearLayer, ...]:
    """Linear layers of one block for a low-rank target group (peft's LoRA defaults for ``qv``)."""
    if targets in (None, "qv"):
        return structure.named(structure.peft_default("LORA_TARGET") or _FALLBACK_QV)
    if targets == "attention":
        return structure.attention_linears()
    if targets == "mlp":
        return structure.mlp_linears()
    if targets == "all-linear":
        return structure.linears
    raise PlanError(f"{family}.targets: unknown target group {targets!r}")


def layer_regex(structure: ModelStructure, pieces) -> str:
    """Regex that peft full-matches against module names. `pieces` are (global layers, `linears_of`)
    pairs: in each stack, those layers in it and the block paths `linears_of` gives for the stack's view."""
    parts = []
    for layers, linears_of in pieces:
        for stack, local in structure.split(layers):
            paths = [lin.path for lin in linears_of(structure.stack_view(stack))]
            if paths:
                layer_alt = "|".join(str(i) for i in local)
                path_alt = "|".join(re.escape(p) for p in paths)
                parts.append(rf"{re.escape(stack.path)}\.(?:{layer_alt})\.(?:{path_alt})")
    return rf"(?:.*\.)?(?:{'|'.join(parts)})"


def ranks(module: ModulePlan, structure: ModelStructure) -> tuple[int, dict[str, int]]:
    """(default rank, peft `rank_pattern`): the most common rank, and the layers whose rank differs."""
    per_layer = {i: s for i, s in enumerate(module.sizes) if s}
    default = Counter(per_layer.values()).most_common(1)[0][0]
    out = {}
    for i, r in per_layer.items():
        if r != default:
            stack, local = structure.locate(i)
            out[rf"{re.escape(stack.path)}\.{local}\..*"] = r
    return default, out


def merged_ranks(modules, structure: ModelStructure, linears_of) -> tuple[int, float, dict[str, int], dict[str, float]]:
    """Several modules of one family on disjoint target groups as one peft config: (default rank, default
    alpha, `rank_pattern`, `alpha_pattern`), the defaults the most common over (layer, linear layer), the
    patterns naming each other (layer, linear layer) by its full path."""
    entries = []  # (pattern key, rank, alpha)
    for m in modules:
        for i in m.layers:
            stack, local = structure.locate(i)
            for lin in linears_of(m, structure.block(i)):
                entries.append((rf"{re.escape(stack.path)}\.{local}\.{re.escape(lin.path)}", m.sizes[i], m.alpha))
    rank = Counter(r for _, r, _ in entries).most_common(1)[0][0]
    alpha = Counter(a for _, _, a in entries).most_common(1)[0][0]
    return (rank, alpha, {k: r for k, r, _ in entries if r != rank},
            {k: a for k, _, a in entries if a != alpha and a is not None})


def peft_targets(modules, structure: ModelStructure, linears_of) -> str:
    """peft `target_modules`: each module's target layers (`linears_of(module, view)` per stack) in its layers."""
    return layer_regex(structure, [(m.layers, lambda view, m=m: linears_of(m, view)) for m in modules])


def check_together(family: str, modules) -> str | None:
    """What stops several modules of one low-rank family going into one peft config (None: nothing):
    peft takes per-layer ranks and alphas through patterns, but one value of each on/off option."""
    if len({m.options for m in modules}) > 1:
        return (f"{family}: its modules on {' and '.join(str(m.targets) for m in modules)} differ in "
                f"{', '.join(k for k, _ in modules[0].options) or 'options'}; peft holds one value per model, "
                "make them equal")
    return None


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
