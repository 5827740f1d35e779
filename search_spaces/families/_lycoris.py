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
        linears = self.linear_targets(structure, targets)
        if not linears:
            raise PlanError(self.unavailable(structure) or f"{self.name}.targets: no nn.Linear layer in group {targets!r}")
        return linears

    def linear_targets(self, structure, targets):
        """The group's nn.Linear layers (none: an empty tuple)."""
        return tuple(lin for lin in _lowrank.select(structure, targets, self.name) if not lin.fan_in_fan_out)

    def unavailable(self, structure):
        if not any(not lin.fan_in_fan_out for lin in structure.linears):
            return (f"{self.name}: peft builds it on nn.Linear layers only, and {structure.model_type}'s blocks hold "
                    "Conv1D layers; use lora")
        return None

    def peft_config(self, module, structure, task_type=None):
        return self.peft_config_for((module,), structure, task_type)

    def check_together(self, modules):
        return _lowrank.check_together(self.name, modules)

    def peft_config_for(self, modules, structure, task_type=None):
        import peft

        def linears_of(m, view):
            return self.linear_targets(view, m.targets)

        for m in modules:
            self.targets_of(structure, m.targets)  # one line when the group holds no nn.Linear layer
        if len(modules) == 1:
            rank, pattern = _lowrank.ranks(modules[0], structure)
            alpha, alpha_pattern = modules[0].alpha, {}
        else:
            rank, alpha, pattern, alpha_pattern = _lowrank.merged_ranks(modules, structure, linears_of)
        return getattr(peft, self.peft_class)(
            r=rank, alpha=alpha, rank_pattern=pattern, alpha_pattern=alpha_pattern,
            target_modules=_lowrank.peft_targets(modules, structure, linears_of),
            task_type=task_type, **dict(modules[0].options),
        )

    def synthetic_capacity(self, module, size, hidden):
        return _lowrank.capacity(self.efficiency, size, module.targets, module.alpha, size)
