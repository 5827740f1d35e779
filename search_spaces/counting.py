"""Exact trainable-parameter count of a plan, from the model's config alone (no weights).

Counts are additive over (family, layer): `layer_cost` gives the parameters one family adds to one
layer at one size, following the library that builds the plan (`library_for`):

- LoRA (peft): r * (in + out) per targeted linear layer;
- LoRA (adapters, q and v only): r * ((hidden + q_out) + (hidden + v_out));
- IA3 (peft): one vector per target, of its output size (input size for feed-forward targets);
- IA3 (adapters, feed-forward block): one vector per projection of the block, of its output size:
  intermediate + hidden (adapters wraps the up and the down projection, in either order);
- serial / parallel bottleneck adapter of width d: 2 * hidden * d + d + hidden;
- prefix of length L (flat): L * 2 * kv_heads * head_dim.

No count needs the adapters library: every family, whichever library builds it, is counted from the
config (tests check each against the instantiated model, in the environment that has the library).
The classification head is not counted: it depends on the task, not on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import ModulePlan, Plan, PlanError

PEFT_FAMILIES = ("lora", "ia3")
# Where adapters puts IA3: the feed-forward block, since its attention block holds LoRA in mixed plans.
ADAPTERS_IA3_PLACEMENT = {"selfattn_lora": False, "intermediate_lora": True, "output_lora": True}


@dataclass(frozen=True)
class ParamCount:
    """Trainable adapter parameters of a plan: absolute and as % of the base model."""

    params: int
    base_params: int

    @property
    def pct(self) -> float:
        return 100.0 * self.params / self.base_params


def library_for(plan: Plan) -> str:
    """`peft` for a plan with LoRA alone or IA3 alone (peft cannot mix types), else `adapters`."""
    families = plan.families
    return "peft" if len(families) == 1 and families[0] in PEFT_FAMILIES else "adapters"


def adapters_only(families) -> tuple[str, ...]:
    """The families among `families` that only AdapterHub `adapters` builds (the `autopeft[adapters]` extra)."""
    return tuple(f for f in families if f not in PEFT_FAMILIES)


def combinable(families) -> bool:
    """Whether some library builds these families together: neither peft nor adapters mixes LoRA and IA3."""
    return not {"lora", "ia3"} <= set(families)


def check_buildable(plan: Plan, library: str) -> None:
    """Raise `PlanError` naming the problem when `library` cannot express `plan`."""
    if not combinable(plan.families):
        raise PlanError("plan: LoRA and IA3 cannot be combined in one model (peft and adapters refuse it); drop one")
    if library == "peft":
        if library_for(plan) != "peft":
            raise PlanError(
                f"peft cannot express {' + '.join(plan.families) or 'an empty plan'}: it holds one adapter type "
                "(LoRA or IA3) per model; use the adapters (AdapterHub) format"
            )
        return
    for m in plan.active:
        sizes = {s for s in m.sizes if s}
        if m.family == "lora" and (len(sizes) > 1 or m.targets != "qv"):
            raise PlanError(
                "adapters cannot express LoRA with per-layer ranks or targets other than qv; "
                "use the peft format (LoRA alone)"
            )
        if m.family == "prefix" and len(sizes) > 1:
            raise PlanError("prefix.sizes: adapters needs one prefix length for all layers; use a single length")


def layer_cost(structure: ModelStructure, family: str, size: int, library: str, targets: str | None = None) -> int:
    """Parameters that `family` at `size` adds to one layer when built by `library`."""
    if size == 0:
        return 0
    h = structure.hidden_size
    if family == "lora":
        if library == "adapters":
            q_out = structure.num_attention_heads * structure.head_dim
            v_out = structure.num_kv_heads * structure.head_dim
            return size * ((h + q_out) + (h + v_out))
        return size * sum(lin.in_features + lin.out_features for lin in structure.select("lora", targets or "qv"))
    if family == "ia3":
        if library == "adapters":
            return structure.intermediate_size + h
        feedforward = set(structure.ia3_feedforward())
        return sum(lin.in_features if lin in feedforward else lin.out_features for lin in structure.select("ia3", "kv-ffn"))
    if family in ("serial", "parallel"):
        return 2 * h * size + size + h
    if family == "prefix":
        return size * 2 * structure.num_kv_heads * structure.head_dim
    raise PlanError(f"family: unknown family {family!r}")


def module_params(structure: ModelStructure, module: ModulePlan, library: str) -> int:
    return sum(layer_cost(structure, module.family, s, library, module.targets) for s in module.sizes)


def count_plan(plan: Plan, structure: ModelStructure) -> ParamCount:
    """Exact trainable adapter parameters of `plan` on the model described by `structure`."""
    if plan.num_layers != structure.num_layers:
        raise PlanError(f"num_layers: the model has {structure.num_layers} layers, the plan {plan.num_layers}")
    library = library_for(plan)
    total = sum(module_params(structure, m, library) for m in plan.active)
    return ParamCount(params=total, base_params=structure.base_params)

