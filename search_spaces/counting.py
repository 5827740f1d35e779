"""Exact trainable-parameter count of a plan, from the model's config alone (no weights).

Counts are additive over (family, layer): each family's `layer_cost` (``search_spaces/families/``)
gives the parameters one module adds to one layer at one size, following the library that builds
the plan (`library_for`: peft for one peft family alone, else AdapterHub `adapters`). Each family
module documents its formula.

No count needs the adapters library: every family, whichever library builds it, is counted from the
config (tests check each against the instantiated model, in the environment that has the library).
The classification head is not counted: it depends on the task, not on the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopeft.search_spaces import families
from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.families.base import Library
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import ModulePlan, Plan


@dataclass(frozen=True)
class ParamCount:
    """Trainable adapter parameters of a plan: absolute and as % of the base model."""

    params: int
    base_params: int

    @property
    def pct(self) -> float:
        return 100.0 * self.params / self.base_params


def library_for(plan: Plan) -> Library:
    """The library that builds `plan` (see `families.library_for`); `PlanError` when none can."""
    library = families.library_for(plan.families)
    if library is None:
        in_adapters = [families.get(f) for f in families.NAMES if "adapters" in families.get(f).libraries]
        kinds: dict[str | None, list[str]] = {}
        for f in in_adapters:
            kinds.setdefault(f.adapters_kind, []).append(f.name)
        shared = "; ".join(f"one of {' / '.join(names)}" for names in kinds.values() if len(names) > 1)
        raise PlanError(f"plan: no library builds {' + '.join(plan.families) or 'an empty plan'} in one model: peft "
                        f"holds one family, AdapterHub only {', '.join(f.name for f in in_adapters)} "
                        f"({shared}); drop one")
    return library


def check_buildable(plan: Plan, library: Library) -> None:
    """Raise `PlanError` naming the problem (and a format that can) when `library` cannot express `plan`."""
    if plan.is_empty:
        raise PlanError("plan: no module in any layer; nothing to build")
    chosen = library_for(plan)
    if library == "peft" and chosen != "peft":
        raise PlanError(f"peft cannot express {' + '.join(plan.families)}: it holds one adapter type per model "
                        f"({', '.join(f for f in families.NAMES if 'peft' in families.get(f).libraries)}); "
                        "use the adapters (AdapterHub) format")
    repeated = [f for f in dict.fromkeys(plan.families) if plan.families.count(f) > 1]
    if library == "adapters" and repeated:
        raise PlanError(f"adapters cannot express {repeated[0]} on several target groups; use the peft format")
    for m in plan.active:
        fam = families.get(m.family)
        if library not in fam.libraries:
            raise PlanError(f"{library} cannot build {m.family}; use the {fam.libraries[0]} format")
        problem = fam.check(m, library)
        if problem:
            raise PlanError(problem)
    for name in dict.fromkeys(plan.families):
        problem = families.get(name).check_together(plan.modules_of(name))
        if problem:
            raise PlanError(problem)


def module_params(structure: ModelStructure, module: ModulePlan, library: Library) -> int:
    """Parameters of one module: each layer counted on its own block (`ModelStructure.block`)."""
    fam = families.get(module.family)
    return sum(fam.layer_cost(structure.block(i), module, s, library) for i, s in enumerate(module.sizes) if s)


def check_disjoint(plan: Plan, structure: ModelStructure) -> None:
    """`PlanError` when two modules of one family target the same linear layer of some block."""
    for name in dict.fromkeys(plan.families):
        modules = plan.modules_of(name)
        if len(modules) < 2:
            continue
        fam = families.get(name)
        for i in range(plan.num_layers):
            seen: dict[str, str] = {}
            for m in modules:
                if not m.sizes[i]:
                    continue
                for lin in fam.targets_of(structure.block(i), m.targets):
                    if lin.path in seen:
                        raise PlanError(f"{name}: its modules on {seen[lin.path]} and {m.targets} both target "
                                        f"{lin.path} in layer {i}; give each module its own target group")
                    seen[lin.path] = str(m.targets)


def count_plan(plan: Plan, structure: ModelStructure) -> ParamCount:
    """Exact trainable adapter parameters of `plan` on the model described by `structure`."""
    if plan.num_layers != structure.num_layers:
        raise PlanError(f"num_layers: the model has {structure.num_layers} layers, the plan {plan.num_layers}")
    total = 0
    if not plan.is_empty:
        library = library_for(plan)
        check_disjoint(plan, structure)
        total = sum(module_params(structure, m, library) for m in plan.active)
    return ParamCount(params=total, base_params=structure.base_params)
