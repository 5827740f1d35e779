"""LoRA (Hu et al. 2021): a rank-r update ``B A`` beside each targeted linear layer, one rank per layer.

Options: ``use_dora`` (DoRA, Liu et al. 2024: a learned magnitude per output feature of each adapted
layer) and ``use_rslora`` (rsLoRA, Kalajdzievski 2023: scaling alpha / sqrt(r) instead of alpha / r).

Counting (peft): ``r * (in + out)`` per targeted linear layer, plus ``out`` with DoRA (the magnitude
vector; GPT-2's Conv1D stores its weight transposed, peft takes the norm over the input side, so it
is still the output size). In mixed plans AdapterHub builds it, on q and v only:
``r * ((hidden + q_out) + (hidden + v_out))``, twice in decoder blocks of encoder-decoder models
(cross-attention too); there one rank for all layers and neither option.
"""

from __future__ import annotations

from autopeft.search_spaces.families import _lowrank
from autopeft.search_spaces.families.base import Family


class Lora(Family):
    name = "lora"
    description = "LoRA: a low-rank update per targeted linear layer, one rank per layer; DoRA and rsLoRA as options"
    size_name = "rank"
    size_letter = "r"
    target_groups = _lowrank.TARGET_GROUPS
    default_alpha = 16.0
    options = {"use_dora": False, "use_rslora": False}
    libraries = ("peft", "adapters")
    adapters_kind = "lora"  # adapters' LoRA-type modules (LoRA, IA3): one per model
    synthetic_side = "attention"
    efficiency = 1.0

    def targets_of(self, structure, targets):
        return _lowrank.select(structure, targets, self.name)

    def check(self, module, library):
        if library != "adapters":
            return None
        if len({s for s in module.sizes if s}) > 1:
            problem = "adapters cannot express LoRA with per-layer ranks"
        elif module.targets != "qv":
            problem = f"adapters (mixed plans): LoRA targets only qv, got {module.targets}"
        elif any(on for _, on in module.options):
            problem = "adapters cannot express DoRA or rsLoRA"
        else:
            return None
        return f"{problem}; use the peft format (LoRA alone)"

    def layer_cost(self, structure, module, size, library):
        if size == 0:
            return 0
        if library == "adapters":
            q_out = structure.num_attention_heads * structure.head_dim
            v_out = structure.num_kv_heads * structure.head_dim
            h = structure.hidden_size
            # decoder blocks of encoder-decoder models: on the cross-attention's q and v too
            return size * ((h + q_out) + (h + v_out)) * (2 if structure.has_cross_attention else 1)
        linears = self.targets_of(structure, module.targets)
        dora = module.option("use_dora")
        return sum(size * (lin.in_features + lin.out_features) + (lin.out_features if dora else 0) for lin in linears)

    def peft_config(self, module, structure, task_type=None):
        return self.peft_config_for((module,), structure, task_type)

    def check_together(self, modules):
        return _lowrank.check_together(self.name, modules)

    def peft_config_for(self, modules, structure, task_type=None):
        """One `LoraConfig` for one or more LoRA modules on disjoint target groups (per-layer, per-module
        ranks and alphas through `rank_pattern` / `alpha_pattern`)."""
        from peft import LoraConfig

        def linears_of(m, view):
            return self.targets_of(view, m.targets)

        if len(modules) == 1:
            (module,) = modules
            rank, pattern = _lowrank.ranks(module, structure)
            alpha, alpha_pattern = module.alpha, {}
        else:
            rank, alpha, pattern, alpha_pattern = _lowrank.merged_ranks(modules, structure, linears_of)
        first = modules[0]
        return LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=0.0,
            target_modules=_lowrank.peft_targets(modules, structure, linears_of),
            rank_pattern=pattern,
            alpha_pattern=alpha_pattern,
            fan_in_fan_out=any(lin.fan_in_fan_out for m in modules for lin in self.targets_of(structure, m.targets)),
            use_dora=first.option("use_dora"),
            use_rslora=first.option("use_rslora"),
            task_type=task_type,
        )

    def adapters_config(self, module, structure):
        import adapters

        leave_out = [i for i, s in enumerate(module.sizes) if s == 0]
        return adapters.LoRAConfig(r=max(module.sizes), alpha=int(module.alpha), attn_matrices=["q", "v"],
                                   leave_out=leave_out)

    def synthetic_capacity(self, module, size, hidden):
        rank_for_alpha = size**0.5 if module.option("use_rslora") else size
        c = _lowrank.capacity(self.efficiency, size, module.targets, module.alpha, rank_for_alpha)
        return c * (1.04 if module.option("use_dora") else 1.0)


FAMILY = Lora()
