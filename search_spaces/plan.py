"""`Plan`: one concrete adapter configuration, and its versioned serial form `autopeft-plan/v1`.

Serial form (YAML or JSON)::

    format: autopeft-plan/v1
    num_layers: 12
    modules:
      - family: lora          # lora | ia3 | serial | parallel | prefix
        sizes: [0, 0, 8, 8, 8, 16, 0, 0, 0, 0, 0, 0]   # per layer; 0 = not in that layer
        targets: qv           # lora / ia3: target module group (see TARGET_GROUPS)
        alpha: 16             # lora only: lora_alpha
      - family: serial
        sizes: [48, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 48]  # bottleneck width per layer

`sizes` is a LoRA rank, a bottleneck width (serial / parallel adapters), a prefix length, or 1 for
IA3 (which has no size: 1 = on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

PLAN_FORMAT = "autopeft-plan/v1"
FAMILIES = ("lora", "ia3", "serial", "parallel", "prefix")
# Target module groups. qv: the attention query and value projections (a fused qkv counts);
# attention: every linear layer of the attention block; all-linear: every linear layer of the block.
# ia3: keys, values and the feed-forward output (peft's IA3 default).
TARGET_GROUPS = {"lora": ("qv", "attention", "all-linear"), "ia3": ("kv-ffn",)}
DEFAULT_TARGETS = {"lora": "qv", "ia3": "kv-ffn"}


class PlanError(ValueError):
    """A plan that is malformed or cannot be built; the message names the field."""


@dataclass(frozen=True)
class ModulePlan:
    """One module family placed in some layers. `sizes[i]` is its size in layer i (0 = absent)."""

    family: str
    sizes: tuple[int, ...]
    targets: str | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise PlanError(f"family: expected one of {', '.join(FAMILIES)}, got {self.family!r}")
        if any((not isinstance(s, int)) or s < 0 for s in self.sizes):
            raise PlanError(f"{self.family}.sizes: expected non-negative integers, got {list(self.sizes)}")
        groups = TARGET_GROUPS.get(self.family)
        if groups is None and self.targets is not None:
            raise PlanError(f"{self.family}.targets: only lora and ia3 take targets, got {self.targets!r}")
        if groups is not None:
            if self.targets is None:
                object.__setattr__(self, "targets", DEFAULT_TARGETS[self.family])
            elif self.targets not in groups:
                raise PlanError(f"{self.family}.targets: expected one of {', '.join(groups)}, got {self.targets!r}")
        if self.family == "lora" and self.alpha is None:
            object.__setattr__(self, "alpha", 16.0)
        if self.family != "lora" and self.alpha is not None:
            raise PlanError(f"{self.family}.alpha: only lora takes alpha, got {self.alpha!r}")
        if self.family == "ia3" and any(s > 1 for s in self.sizes):
            raise PlanError(f"ia3.sizes: IA3 has no size, expected 0 or 1 per layer, got {list(self.sizes)}")

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
        return out


@dataclass(frozen=True)
class Plan:
    """A full configuration: families in layers, for a model with `num_layers` transformer blocks."""

    num_layers: int
    modules: tuple[ModulePlan, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        seen = set()
        for m in self.modules:
            if len(m.sizes) != self.num_layers:
                raise PlanError(
                    f"{m.family}.sizes: expected {self.num_layers} entries (one per layer), got {len(m.sizes)}"
                )
            if m.family in seen:
                raise PlanError(f"modules: family {m.family!r} appears twice; merge its sizes into one entry")
            seen.add(m.family)

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

    def summary(self) -> str:
        """Short human text, e.g. ``lora r8@L2-5 qv a16 + serial d48@L0,1,11``."""
        if self.is_empty:
            return "(no modules)"
        parts = []
        for m in self.active:
            letter = {"lora": "r", "serial": "d", "parallel": "d", "prefix": "l"}.get(m.family)
            sizes = "/".join(str(s) for s in sorted({s for s in m.sizes if s}))
            text = f"{m.family}{f' {letter}{sizes}' if letter else ''}@L{_ranges(m.layers)}"
            if m.targets:
                text += f" {m.targets}"
            if m.alpha is not None:
                text += f" a{m.alpha:g}"
            parts.append(text)
        return " + ".join(parts)

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
