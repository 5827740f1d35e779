"""`Plan`: one concrete adapter configuration, and its versioned serial form `autopeft-plan/v1`.

A family may appear more than once when each entry has its own target group (LoRA on ``attention``
and on ``mlp``, each with its own per-layer ranks); peft builds them as one config. Layers are
numbered as `ModelStructure` does: encoder-decoder models encoder blocks first, then decoder blocks.

Serial form (YAML or JSON)::

    format: autopeft-plan/v1
    num_layers: 12
    modules:
      - family: lora          # a name of the family registry (search_spaces/families)
        sizes: [0, 0, 8, 8, 8, 16, 0, 0, 0, 0, 0, 0]   # per layer; 0 = not in that layer
        targets: qv           # families with target groups (Family.target_groups)
        alpha: 16             # families that take alpha (lora_alpha, LoHa/LoKr alpha)
        use_dora: true        # the family's on/off options, written only when on
      - family: serial
        sizes: [48, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 48]  # bottleneck width per layer

`sizes` is what the family's `size_name` says: a LoRA/LoHa/LoKr rank, a bottleneck width (serial /
parallel adapters), a prefix length, or 1 for IA3 (which has no size: 1 = on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from autopeft.search_spaces import families
from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.families.base import option_values

_MODULE_KEYS = ("family", "sizes", "targets", "alpha")

PLAN_FORMAT = "autopeft-plan/v1"


@dataclass(frozen=True)
class ModulePlan:
    """One module family placed in some layers. `sizes[i]` is its size in layer i (0 = absent).

    `targets` and `alpha` default to the family's (None where it takes none); `options` holds the
    family's on/off options (e.g. LoRA's ``use_dora``), given as a mapping and kept as sorted
    (name, value) pairs with every option of the family.
    """

    family: str
    sizes: tuple[int, ...]
    targets: str | None = None
    alpha: float | None = None
    options: Mapping[str, bool] | tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        fam = families.get(self.family)
        if any((not isinstance(s, int)) or s < 0 for s in self.sizes):
            raise PlanError(f"{self.family}.sizes: expected non-negative integers, got {list(self.sizes)}")
        groups = fam.target_groups
        if not groups and self.targets is not None:
            raise PlanError(f"{self.family}.targets: {self.family} takes no targets, got {self.targets!r}")
        if groups:
            if self.targets is None:
                object.__setattr__(self, "targets", groups[0])
            elif self.targets not in groups:
                raise PlanError(f"{self.family}.targets: expected one of {', '.join(groups)}, got {self.targets!r}")
        if fam.default_alpha is None and self.alpha is not None:
            raise PlanError(f"{self.family}.alpha: {self.family} takes no alpha, got {self.alpha!r}")
        if fam.default_alpha is not None:
            object.__setattr__(self, "alpha", float(fam.default_alpha if self.alpha is None else self.alpha))
        if fam.max_size is not None and any(s > fam.max_size for s in self.sizes):
            raise PlanError(f"{self.family}.sizes: expected sizes up to {fam.max_size} per layer "
                            f"({fam.size_name}), got {list(self.sizes)}")
        object.__setattr__(self, "options", option_values(fam, self.options))

    def option(self, name: str) -> bool:
        """The value of on/off option `name` (KeyError when the family has no such option)."""
        return dict(self.options)[name]

    @property
    def layers(self) -> tuple[int, ...]:
        """Indices of the layers this module is in."""
        return tuple(i for i, s in enumerate(self.sizes) if s > 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"family": self.family, "sizes": list(self.sizes)}
        if self.targets is not None:
            out["targets"] = self.targets
        if self.alpha is not None:
            out["alpha"] = self.alpha
        out.update({name: True for name, on in self.options if on})  # off (the default) is left out
        return out


@dataclass(frozen=True)
class Plan:
    """A full configuration: families in layers, for a model with `num_layers` transformer blocks."""

    num_layers: int
    modules: tuple[ModulePlan, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        seen: dict[str, list[str | None]] = {}
        for m in self.modules:
            if len(m.sizes) != self.num_layers:
                raise PlanError(
                    f"{m.family}.sizes: expected {self.num_layers} entries (one per layer), got {len(m.sizes)}"
                )
            if m.family in seen and (not families.get(m.family).target_groups or m.targets in seen[m.family]):
                raise PlanError(f"modules: family {m.family!r} appears twice on the same targets; merge its sizes "
                                "into one entry, or give each entry its own target group")
            seen.setdefault(m.family, []).append(m.targets)

    @property
    def active(self) -> tuple[ModulePlan, ...]:
        """Modules present in at least one layer."""
        return tuple(m for m in self.modules if m.layers)

    @property
    def is_empty(self) -> bool:
        return not self.active

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(m.family for m in self.active)

    def module(self, family: str) -> ModulePlan | None:
        return next((m for m in self.active if m.family == family), None)

    def modules_of(self, family: str) -> tuple[ModulePlan, ...]:
        """The active modules of `family` (several when it sits on different target groups)."""
        return tuple(m for m in self.active if m.family == family)

    def summary(self) -> str:
        """Short human text, e.g. ``lora r8@L2-5 qv a16 + serial d48@L0,1,11``."""
        if self.is_empty:
            return "(no modules)"
        return " + ".join(families.get(m.family).summary(m) for m in self.active)

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "num_layers": self.num_layers, "modules": [m.to_dict() for m in self.modules]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if not isinstance(data, dict):
            raise PlanError(f"plan: expected a mapping, got {type(data).__name__}")
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(f"format: expected {PLAN_FORMAT!r}, got {data.get('format')!r}")
        try:
            num_layers = int(data["num_layers"])
            modules = tuple(
                ModulePlan(
                    family=m["family"],
                    sizes=tuple(int(s) for s in m["sizes"]),
                    targets=m.get("targets"),
                    alpha=None if m.get("alpha") is None else float(m["alpha"]),
                    options={k: v for k, v in m.items() if k not in _MODULE_KEYS},
                )
                for m in data.get("modules", [])
            )
        except (KeyError, TypeError) as exc:
            raise PlanError(f"plan: missing or malformed field {exc}") from None
        return cls(num_layers=num_layers, modules=modules)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_text(cls, text: str) -> Plan:
        """Parse the YAML or JSON serial form (JSON is YAML)."""
        return cls.from_dict(yaml.safe_load(text))
