"""What peft's LyCORIS families (LoHa, LoKr) share: nn.Linear targets only, per-layer rank and alpha.

peft builds LoHa and LoKr on `nn.Linear` (and convolutions), not on GPT-2's `Conv1D`: their target
groups are the low-rank groups (``qv``, ``attention``, ``all-linear``) without Conv1D layers, and a
model whose blocks hold only Conv1D layers cannot take them.
"""

from __future__ import annotations

from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.families import _lowrank
from autopeft.search_spaces.families.base import Family


class Lycoris(Family):
    size_name = "rank"
    size_letter = "r"
    target_groups = _lowrank.TARGET_GROUPS
    default_alpha = 8.0  # peft's default for LoHa and LoKr
    libraries = ("peft",)
    synthetic_side = "attention"
    efficiency: float
    peft_class: str  # LoHaConfig | LoKrConfig

    def targets_of(self, structure, targets):
        linears = tuple(lin for lin in _lowrank.select(structure, targets, self.name) if not lin.fan_in_fan_out)
        if not linears:
            raise PlanError(self.unavailable(structure) or f"{self.name}.targets: no nn.Linear layer in group {targets!r}")
        return linears

    def unavailable(self, structure):
        if not any(not lin.fan_in_fan_out for lin in structure.linears):
            return (f"{self.name}: peft builds it on nn.Linear layers only, and {structure.model_type}'s blocks hold "
                    "Conv1D layers; use lora")
        return None

    def peft_config(self, module, structure, task_type=None):
        import peft

        rank, pattern = _lowrank.ranks(module, structure)
        return getattr(peft, self.peft_class)(
            r=rank, alpha=module.alpha, rank_pattern=pattern,
            target_modules=_lowrank.peft_targets(module, structure, self.targets_of(structure, module.targets)),
            task_type=task_type, **dict(module.options),
        )

    def synthetic_capacity(self, module, size, hidden):
        return _lowrank.capacity(self.efficiency, size, module.targets, module.alpha, size)
