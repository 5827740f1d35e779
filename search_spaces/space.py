"""Declarative search spaces: a YAML file → Optuna distributions → `Plan`s for one model.

A space file lists module families; each has sizes, and either a layer mask (``mask: shared``, one
on/off flag per layer shared with the other ``shared`` families, or ``mask: own``) or one size per
layer (``per_layer: true``, 0 = off)::

    name: autopeft
    description: The AutoPEFT paper's space
    modules:
      - {family: serial, sizes: hidden/2^k, mask: shared}
      - {family: lora, sizes: [0, 2, 4, 8], per_layer: true, targets: [qv, attention], alpha: [8, 16]}

``hidden/2^k`` means {0} ∪ {max(1, hidden // 2^k) : k = 0..9}: for hidden 768, {0, 1, 3, 6, ..., 768}.
Optuna parameter names: ``{family}.size``, ``{family}.size.{layer}`` (per-layer), ``mask.{layer}``
(shared), ``{family}.mask.{layer}`` (own), ``{family}.targets``, ``{family}.alpha`` (when there is a
choice). Flags are `IntDistribution(0, 1)`; sizes, targets and alpha are categorical.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopeft.search_spaces.counting import ParamCount, adapters_only, combinable, count_plan
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import TARGET_GROUPS, ModulePlan, Plan

SPACES_DIR = Path(__file__).parent
HIDDEN_POW2 = "hidden/2^k"


class SpaceError(ValueError):
    """A space file that cannot be used; the message names the file and the field."""


class ModuleSpec(BaseModel):
    """One family in a space file."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["lora", "ia3", "serial", "parallel", "prefix"]
    sizes: list[int] | Literal["hidden/2^k"] = Field(..., description="Size choices (0 = off) or hidden/2^k.")
    mask: Literal["shared", "own"] | None = None
    per_layer: bool = False
    targets: list[str] | None = None
    alpha: list[float] | None = None


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    modules: list[ModuleSpec] = Field(..., min_length=1)


@dataclass(frozen=True)
class ModuleSpace:
    """One family of a space bound to a model: concrete `sizes` (ascending, 0 first)."""

    family: str
    sizes: tuple[int, ...]
    mask: str | None  # "shared", "own", or None for per-layer sizes
    targets: tuple[str | None, ...]
    alpha: tuple[float | None, ...]


def builtin_spaces() -> list[str]:
    """Names of the spaces shipped with autopeft."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def read_space_file(name_or_path: str) -> SpaceFile:
    """Parse a built-in space by name, or a space YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SPACES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise SpaceError(
                f"{name_or_path}: no such space; built-in spaces are {', '.join(builtin_spaces())}, "
                "or pass the path of a space YAML file"
            )
    if not path.is_file():
        raise SpaceError(f"{path}: space file not found")
    try:
        data = yaml.safe_load(path.read_text())
        return _validate_space(SpaceFile.model_validate(data), path.name)
    except yaml.YAMLError:
        raise SpaceError(f"{path.name}: not valid YAML; fix the syntax") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "space"
        raise SpaceError(f"{path.name}: {where}: {err['msg'].lower()}, got {err.get('input')!r}") from None


def _validate_space(space: SpaceFile, filename: str) -> SpaceFile:
    families = [m.family for m in space.modules]
    for i, m in enumerate(space.modules):
        where = f"{filename}: modules.{i}"
        if families.count(m.family) > 1:
            raise SpaceError(f"{where}.family: {m.family} appears twice; list each family once")
        if m.per_layer == (m.mask is not None):
            raise SpaceError(f"{where}: give either `mask: shared|own` or `per_layer: true`")
        if isinstance(m.sizes, list) and (0 not in m.sizes or min(m.sizes) < 0 or len(set(m.sizes)) < 2):
            raise SpaceError(f"{where}.sizes: expected non-negative sizes including 0 (off) and one other, got {m.sizes}")
        allowed = TARGET_GROUPS.get(m.family)
        if m.targets is not None and (allowed is None or not set(m.targets) <= set(allowed) or not m.targets):
            raise SpaceError(f"{where}.targets: expected a list from {allowed or '(none for this family)'}, got {m.targets}")
        if m.alpha is not None and (m.family != "lora" or not m.alpha):
            raise SpaceError(f"{where}.alpha: only lora takes alpha choices")
        if m.family == "ia3" and m.sizes != [0, 1]:
            raise SpaceError(f"{where}.sizes: IA3 has no size, expected [0, 1], got {m.sizes}")
    if len(space.modules) > 1:
        # Mixed plans are built by adapters: one LoRA rank and prefix length for all layers, LoRA on q and v.
        for i, m in enumerate(space.modules):
            if m.per_layer and m.family in ("lora", "prefix"):
                raise SpaceError(f"{filename}: modules.{i}: per-layer {m.family} sizes only work alone in a space")
            if m.family == "lora" and (m.targets or ["qv"]) != ["qv"]:
                raise SpaceError(f"{filename}: modules.{i}.targets: mixed with other families, LoRA targets only qv")
    return space


class SearchSpace:
    """A space file bound to one model: its dimensions, decoding, validity and parameter range."""

    def __init__(self, space: SpaceFile, structure: ModelStructure):
        self.name = space.name
        self.description = space.description
        self.structure = structure
        self.num_layers = structure.num_layers
        self.modules = tuple(self._bind(m) for m in space.modules)

    def _bind(self, m: ModuleSpec) -> ModuleSpace:
        if m.sizes == HIDDEN_POW2:
            h = self.structure.hidden_size
            sizes = {0} | {max(1, h // 2**k) for k in range(10)}
        else:
            sizes = set(m.sizes)
        return ModuleSpace(
            family=m.family,
            sizes=tuple(sorted(sizes)),
            mask=m.mask,
            targets=tuple(m.targets) if m.targets else (None,),
            alpha=tuple(m.alpha) if m.alpha else (None,),
        )

    def adapters_families(self) -> tuple[str, ...]:
        """Families of the space that only AdapterHub `adapters` builds: searching the space needs that extra."""
        return adapters_only(m.family for m in self.modules)

    # --- dimensions ---------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions of every dimension, in a stable order."""
        dims: dict[str, BaseDistribution] = {}
        for m in self.modules:
            if m.mask is None:
                for layer in range(self.num_layers):
                    dims[f"{m.family}.size.{layer}"] = CategoricalDistribution(m.sizes)
            else:
                dims[f"{m.family}.size"] = CategoricalDistribution(m.sizes)
            if len(m.targets) > 1:
                dims[f"{m.family}.targets"] = CategoricalDistribution(m.targets)
            if len(m.alpha) > 1:
                dims[f"{m.family}.alpha"] = CategoricalDistribution(m.alpha)
        for name in self._mask_names():
            for layer in range(self.num_layers):
                dims[f"{name}.{layer}"] = IntDistribution(0, 1)
        return dims

    def _mask_names(self) -> list[str]:
        names = ["mask"] if any(m.mask == "shared" for m in self.modules) else []
        return names + [f"{m.family}.mask" for m in self.modules if m.mask == "own"]

    def _mask_of(self, m: ModuleSpace) -> str:
        return "mask" if m.mask == "shared" else f"{m.family}.mask"

    # --- decoding -----------------------------------------------------------------------------
    def decode(self, params: dict[str, Any]) -> Plan:
        """Trial parameters (names as in `distributions`) → `Plan`."""
        modules = []
        for m in self.modules:
            if m.mask is None:
                sizes = tuple(int(params[f"{m.family}.size.{layer}"]) for layer in range(self.num_layers))
            else:
                size = int(params[f"{m.family}.size"])
                mask = self._mask_of(m)
                sizes = tuple(size * int(params[f"{mask}.{layer}"]) for layer in range(self.num_layers))
            modules.append(
                ModulePlan(
                    family=m.family,
                    sizes=sizes,
                    targets=params.get(f"{m.family}.targets", m.targets[0]),
                    alpha=params.get(f"{m.family}.alpha", m.alpha[0]),
                )
            )
        return Plan(num_layers=self.num_layers, modules=tuple(modules))

    def suggest(self, trial) -> Plan:
        """Ask an Optuna trial for every dimension and decode the answer."""
        params = {}
        for name, dist in self.distributions().items():
            if isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high)
            else:
                params[name] = trial.suggest_categorical(name, dist.choices)
        return self.decode(params)

    def count(self, plan: Plan) -> ParamCount:
        return count_plan(plan, self.structure)

    def is_valid(self, params: dict[str, Any]) -> bool:
        """Valid: the plan puts a module in some layer, and its families can be built together."""
        return self.is_valid_plan(self.decode(params))

    @staticmethod
    def is_valid_plan(plan: Plan) -> bool:
        return not plan.is_empty and combinable(plan.families)

    # --- size of the space --------------------------------------------------------------------
    def num_configurations(self) -> int:
        """All points of the space, valid or not."""
        return math.prod(len(d.choices) if isinstance(d, CategoricalDistribution) else 2
                         for d in self.distributions().values())

    def num_valid_configurations(self) -> int:
        """Exact number of valid points, by combining per-mask-group counts of which families are active."""
        layers = self.num_layers
        groups: list[dict[frozenset, int]] = []
        for mask in self._mask_names():
            members = [m for m in self.modules if m.mask is not None and self._mask_of(m) == mask]
            counts = {frozenset(): math.prod(len(m.sizes) for m in members) + (2**layers - 1)}
            for k in range(1, len(members) + 1):
                for active in itertools.combinations(members, k):
                    counts[frozenset(m.family for m in active)] = (2**layers - 1) * math.prod(
                        len(m.sizes) - 1 for m in active)
            groups.append(counts)
        for m in self.modules:
            if m.mask is None:
                groups.append({frozenset(): 1, frozenset([m.family]): len(m.sizes) ** layers - 1})
        joint: dict[frozenset, int] = {frozenset(): 1}
        for counts in groups:
            joint = _combine(joint, counts)
        extras = math.prod(len(m.targets) * len(m.alpha) for m in self.modules)
        return extras * sum(n for active, n in joint.items() if active and combinable(active))

    def param_range(self) -> tuple[tuple[Plan, ParamCount], tuple[Plan, ParamCount]]:
        """The smallest and the largest valid plan with their exact parameter counts."""
        smallest = min((self._single(m, layer, t, a) for m in self.modules for layer in range(self.num_layers)
                        for t in m.targets for a in m.alpha), key=lambda pc: pc[1].params)
        largest = max((self._full(t_choice) for t_choice in self._choice_combos()), key=lambda pc: pc[1].params)
        return smallest, largest

    def _base_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, dist in self.distributions().items():
            params[name] = 0 if isinstance(dist, IntDistribution) else dist.choices[0]
        return params

    def _single(self, m: ModuleSpace, layer: int, targets, alpha) -> tuple[Plan, ParamCount]:
        params = self._base_params()
        smallest = m.sizes[1]
        if m.mask is None:
            params[f"{m.family}.size.{layer}"] = smallest
        else:
            params[f"{m.family}.size"] = smallest
            params[f"{self._mask_of(m)}.{layer}"] = 1
        params.update({k: v for k, v in ((f"{m.family}.targets", targets), (f"{m.family}.alpha", alpha)) if k in params})
        plan = self.decode(params)
        return plan, self.count(plan)

    def _choice_combos(self) -> list[dict[str, Any]]:
        combos: list[dict[str, Any]] = [{}]
        for name, dist in self.distributions().items():
            if name.endswith((".targets", ".alpha")):
                combos = [{**c, name: choice} for c in combos for choice in dist.choices]
        return combos

    def _full(self, choices: dict[str, Any]) -> tuple[Plan, ParamCount]:
        params = {name: 1 if isinstance(d, IntDistribution) else max(d.choices)
                  for name, d in self.distributions().items() if not name.endswith((".targets", ".alpha"))}
        plan = self.decode({**params, **choices})
        return plan, self.count(plan)


def _combine(left: dict[frozenset, int], right: dict[frozenset, int]) -> dict[frozenset, int]:
    out: dict[frozenset, int] = {}
    for a, n in left.items():
        for b, k in right.items():
            out[a | b] = out.get(a | b, 0) + n * k
    return out


def load_space(name_or_path: str, structure: ModelStructure) -> SearchSpace:
    """The space `name_or_path` (built-in name or YAML path) bound to the model `structure`."""
    return SearchSpace(read_space_file(name_or_path), structure)
