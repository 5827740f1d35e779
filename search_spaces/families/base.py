"""`Family`: everything autopeft knows about one adapter family, in one object.

A family module (``lora.py``, ``serial.py``, …) defines one `Family` subclass and an instance
``FAMILY``; the registry (``families/__init__.py``) lists them. Nothing outside this package names a
family: plans, spaces, counting, backends, export, the optimisers' feasibility tables, the synthetic
problem and the dashboard ask the registry.

What a family declares:

- **sizes**: what a size means (`size_name`: rank, width, length, on) and its largest value
  (`max_size`, 1 for IA3 which is on/off);
- **targets**: the target groups it accepts (`target_groups`, first = default) and which linear
  layers of a block each group means (`targets_of`);
- **options**: `default_alpha` (None: takes no alpha) and on/off `options` with their defaults
  (e.g. LoRA's ``use_dora``, ``use_rslora``);
- **libraries** that build it, in order of preference (`libraries`: ``peft``, ``adapters``), the
  `adapters_kind` that AdapterHub allows once per model, and what a library cannot express of one
  module (`check`); the export formats follow from the libraries;
- **counting**: `layer_cost`, the exact trainable parameters one layer gets at one size;
- **build**: `peft_config` / `adapters_config` for one module;
- **text**: `description` (one line), `summary` of one module in a plan;
- **synthetic problem**: `synthetic_side` (attention or feed-forward sub-layer) and
  `synthetic_capacity` (see ``autopeft/optim/synthetic.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from autopeft.search_spaces.errors import PlanError

if TYPE_CHECKING:
    from autopeft.search_spaces.model_structure import LinearLayer, ModelStructure
    from autopeft.search_spaces.plan import ModulePlan

Library = Literal["peft", "adapters"]
LIBRARIES: tuple[Library, ...] = ("peft", "adapters")


class Family:
    """One adapter family (see the module docstring); subclasses set the class attributes."""

    name: ClassVar[str]
    description: ClassVar[str]
    size_name: ClassVar[str]  # rank | width | length | on
    size_letter: ClassVar[str] = ""  # prefix of the sizes in plan summaries ("r8"), "" = sizes not shown
    max_size: ClassVar[int | None] = None
    target_groups: ClassVar[tuple[str, ...]] = ()
    default_alpha: ClassVar[float | None] = None
    options: ClassVar[dict[str, bool]] = {}
    libraries: ClassVar[tuple[Library, ...]]
    adapters_kind: ClassVar[str | None] = None  # AdapterHub holds one module of each kind per model
    synthetic_side: ClassVar[Literal["attention", "ffn"]]

    # --- targets ------------------------------------------------------------------------------
    def targets_of(self, structure: ModelStructure, targets: str | None) -> tuple[LinearLayer, ...]:
        """Linear layers of one block that target group `targets` means (families without targets: none)."""
        return ()

    def unavailable(self, structure: ModelStructure) -> str | None:
        """Why this model cannot hold the family at all (None: it can)."""
        return None

    # --- feasibility and build ---------------------------------------------------------------------
    def check(self, module: ModulePlan, library: Library) -> str | None:
        """What `library` cannot express of `module` (None: it can); called only for listed libraries."""
        return None

    def layer_cost(self, structure: ModelStructure, module: ModulePlan, size: int, library: Library) -> int:
        """Exact trainable parameters that `module` at `size` adds to one layer when `library` builds it."""
        raise NotImplementedError

    def peft_config(self, module: ModulePlan, structure: ModelStructure, task_type: str | None = None):
        """The peft config that builds exactly `module` (families whose `libraries` hold peft)."""
        raise PlanError(f"{self.name}: peft cannot build it; use the adapters format")

    def check_together(self, modules: tuple[ModulePlan, ...]) -> str | None:
        """What stops these modules of this family (on different target groups) from going into one peft
        config (None: nothing). Families that cannot hold more than one module say so."""
        if len(modules) > 1:
            return f"{self.name}: peft builds one {self.name} module per model; merge its entries into one"
        return None

    def peft_config_for(self, modules: tuple[ModulePlan, ...], structure: ModelStructure, task_type: str | None = None):
        """The one peft config for every module of this family in a plan (see `check_together`)."""
        (module,) = modules
        return self.peft_config(module, structure, task_type)

    def adapters_config(self, module: ModulePlan, structure: ModelStructure):
        """The AdapterHub config of `module` (families whose `libraries` hold adapters)."""
        raise PlanError(f"{self.name}: AdapterHub adapters cannot build it; use the peft format")

    # --- text and the synthetic problem -----------------------------------------------------------
    def summary(self, module: ModulePlan) -> str:
        """One module in a plan summary, e.g. ``lora r8/16@L2-5 qv a16 dora``."""
        sizes = "/".join(str(s) for s in sorted({s for s in module.sizes if s}))
        text = f"{self.name}{f' {self.size_letter}{sizes}' if self.size_letter else ''}@L{_ranges(module.layers)}"
        if self.target_groups and module.targets:
            text += f" {module.targets}"
        if module.alpha is not None:
            text += f" a{module.alpha:g}"
        for option, on in module.options:
            if on:
                text += f" {option.removeprefix('use_')}"
        return text

    def synthetic_capacity(self, module: ModulePlan, size: int, hidden: int) -> float:
        """Capacity in [0, ~1.3] that `module` at `size` gives one layer of the synthetic problem."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<family {self.name}>"


def option_values(family: Family, given: Mapping[str, Any] | tuple | None) -> tuple[tuple[str, bool], ...]:
    """`given` on/off options completed with the family's defaults, as sorted (name, value) pairs."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(family.options))
    if unknown:
        allowed = ", ".join(family.options) or "none"
        raise PlanError(f"{family.name}.{unknown[0]}: not an option of {family.name} (options: {allowed})")
    out = {}
    for name, default in family.options.items():
        value = given.get(name, default)
        if not isinstance(value, bool):
            raise PlanError(f"{family.name}.{name}: expected true or false, got {value!r}")
        out[name] = value
    return tuple(sorted(out.items()))


def _ranges(layers: tuple[int, ...]) -> str:
    """(0, 1, 2, 5) → '0-2,5'."""
    out, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            out.append(f"{start}-{layer}" if layer > start else f"{start}")
            start = None
    return ",".join(out)
