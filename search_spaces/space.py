"""Declarative search spaces: a YAML file → Optuna distributions → `Plan`s for one model.

A space file lists modules; each is one family or a choice among families (``family: [lora, loha,
lokr]`` with a ``name`` for its parameters), has sizes, and either a layer mask (``mask: shared``,
one on/off flag per layer shared with the other ``shared`` modules, or ``mask: own``) or one size per
layer (``per_layer: true``, 0 = off)::

    name: autopeft
    description: The AutoPEFT paper's space
    modules:
      - {family: serial, sizes: hidden/2^k, mask: shared}
      - {family: lora, sizes: [0, 2, 4, 8], per_layer: true, targets: [qv, attention], alpha: [8, 16],
         options: {use_dora: [false, true]}}
      - {family: [lora, loha, lokr], name: lowrank, sizes: [0, 4, 8], per_layer: true}

``hidden/2^k`` means {0} ∪ {max(1, hidden // 2^k) : k = 0..9}: for hidden 768, {0, 1, 3, 6, ..., 768}.
Which families exist, their target groups, alpha and options are the registry's
(``search_spaces/families``). Optuna parameter names, for a module called ``N`` (its family's name
unless given): ``N.size``, ``N.size.{layer}`` (per-layer), ``mask.{layer}`` (shared),
``N.mask.{layer}`` (own), and, when there is a choice, ``N.family``, ``N.targets``, ``N.alpha`` and
``N.{option}``. Flags are `IntDistribution(0, 1)`; everything else is categorical. A family the
model cannot hold (LoHa/LoKr on GPT-2's Conv1D) is left out of a choice.

A low-rank family may be listed by two modules with disjoint target groups (``llm-lora``: LoRA on
``attention`` and on ``mlp``, peft builds them as one config); ``options_from: M`` makes a module read
module M's alpha and option parameters instead of having its own (a `LoraConfig` holds one
``use_dora``), so every point stays buildable.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autopeft.search_spaces import families
from autopeft.search_spaces.counting import ParamCount, count_plan
from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import ModulePlan, Plan
from autopeft.spec import DuplicateKeyError, safe_load

SPACES_DIR = Path(__file__).parent
HIDDEN_POW2 = "hidden/2^k"


class SpaceError(ValueError):
    """A space file that cannot be used; the message names the file and the field."""


class ModuleSpec(BaseModel):
    """One module of a space file: a family, or a choice among families."""

    model_config = ConfigDict(extra="forbid")

    family: str | list[str] = Field(..., description="A registered family, or a list of them to choose from.")
    name: str | None = Field(None, description="Parameter prefix; defaults to the family's name.")
    sizes: list[int] | Literal["hidden/2^k"] = Field(..., description="Size choices (0 = off) or hidden/2^k.")
    mask: Literal["shared", "own"] | None = None
    per_layer: bool = False
    targets: list[str] | None = None
    alpha: list[float] | None = None
    options: dict[str, list[bool]] | None = None
    options_from: str | None = Field(None, description="Take alpha and options from this earlier module's choices.")

    @property
    def families(self) -> list[str]:
        return [self.family] if isinstance(self.family, str) else list(self.family)


class SpaceFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    modules: list[ModuleSpec] = Field(..., min_length=1)


@dataclass(frozen=True)
class ModuleSpace:
    """One module of a space bound to a model: concrete `sizes` (ascending, 0 first) and choices.

    `families`, `targets`, `alpha` and each option's values are choices, the first being the default;
    `dims` lists the categorical parameters other than sizes (suffix, choices) that have a choice.
    """

    name: str
    families: tuple[str, ...]
    sizes: tuple[int, ...]
    mask: str | None  # "shared", "own", or None for per-layer sizes
    targets: tuple[str | None, ...]
    alpha: tuple[float | None, ...]
    options: tuple[tuple[str, tuple[bool, ...]], ...] = ()
    options_from: str | None = None  # the module whose alpha and option parameters this one reads

    def param_names(self) -> dict[str, str]:
        """Suffix → Optuna parameter name of each of `dims` (another module's for what `options_from` shares)."""
        return {k: f"{self.options_from if self.options_from and k not in ('family', 'targets') else self.name}.{k}"
                for k in self.dims}

    def owns(self, suffix: str) -> bool:
        return self.param_names()[suffix] == f"{self.name}.{suffix}"

    @property
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """Every categorical parameter other than sizes, with its choices (one choice = fixed)."""
        return {"family": self.families, "targets": self.targets, "alpha": self.alpha, **dict(self.options)}

    @property
    def dims(self) -> dict[str, tuple[Any, ...]]:
        return {k: v for k, v in self.choices.items() if len(v) > 1}

    def module_plan(self, sizes: tuple[int, ...], chosen: dict[str, Any]) -> ModulePlan:
        """The `ModulePlan` for `sizes` and the chosen values (suffix → value; missing = default)."""
        pick = {k: chosen.get(k, v[0]) for k, v in self.choices.items()}
        fam = families.get(pick["family"])
        return ModulePlan(
            family=fam.name, sizes=sizes,
            targets=pick["targets"] if fam.target_groups else None,
            alpha=pick["alpha"] if fam.default_alpha is not None else None,
            options={k: pick[k] for k, _ in self.options if k in fam.options},
        )


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
    if path.is_dir():
        raise SpaceError(f"{path}: is a folder, not a space file; pass the path of a space YAML file")
    if not path.is_file():
        raise SpaceError(f"{path}: space file not found")
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
        return _validate_space(SpaceFile.model_validate(data), path.name)
    except DuplicateKeyError as exc:
        raise SpaceError(f"{path.name}: {exc.describe()}") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path.name}: not UTF-8 text; save the space file as UTF-8") from None
    except yaml.YAMLError:
        raise SpaceError(f"{path.name}: not valid YAML; fix the syntax") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("str", "list["))) or "space"
        raise SpaceError(f"{path.name}: {where}: {err['msg'].lower()}, got {err.get('input')!r}") from None


def _validate_space(space: SpaceFile, filename: str) -> SpaceFile:
    seen: dict[str, int] = {}
    names = [m.name or "-".join(m.families) for m in space.modules]
    for i, m in enumerate(space.modules):
        where = f"{filename}: modules.{i}"
        for f in m.families:
            if f not in families.NAMES:
                raise SpaceError(f"{where}.family: expected one of {', '.join(families.NAMES)}, got {f!r}")
            if f in seen and not (m.targets and len(m.families) == 1 and space.modules[seen[f]].targets
                                  and not set(m.targets) & set(space.modules[seen[f]].targets)):
                raise SpaceError(f"{where}.family: {f} appears twice; list each family once, or give each of its "
                                 "modules its own target groups")
            seen[f] = i
        fams = [families.get(f) for f in m.families]
        if len(fams) > 1 and not m.name:
            raise SpaceError(f"{where}.name: a choice of families needs a name for its parameters, e.g. name: lowrank")
        if m.name is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", m.name):
            raise SpaceError(f"{where}.name: expected letters, digits, _ or -, got {m.name!r}")
        if names.count(names[i]) > 1:
            raise SpaceError(f"{where}.name: {names[i]} names two modules; give each its own name")
        if m.per_layer == (m.mask is not None):
            raise SpaceError(f"{where}: give either `mask: shared|own` or `per_layer: true`")
        if isinstance(m.sizes, list) and (0 not in m.sizes or min(m.sizes) < 0 or len(set(m.sizes)) < 2):
            raise SpaceError(f"{where}.sizes: expected non-negative sizes including 0 (off) and one other, got {m.sizes}")
        for f in fams:
            if f.max_size is not None and (m.sizes == HIDDEN_POW2 or max(m.sizes) > f.max_size):
                raise SpaceError(f"{where}.sizes: {f.name} sizes go up to {f.max_size} ({f.size_name}), got {m.sizes}")
        allowed = set.intersection(*(set(f.target_groups) for f in fams))
        if m.targets is not None and (not m.targets or not set(m.targets) <= allowed):
            raise SpaceError(f"{where}.targets: expected a list from {sorted(allowed) or '(none for this family)'}, "
                             f"got {m.targets}")
        if m.alpha is not None and (not m.alpha or any(f.default_alpha is None for f in fams)):
            raise SpaceError(f"{where}.alpha: only families that take alpha take alpha choices")
        for option, values in (m.options or {}).items():
            if not any(option in f.options for f in fams) or not values:
                known = sorted({o for f in fams for o in f.options}) or "none"
                raise SpaceError(f"{where}.options.{option}: not an option of {', '.join(m.families)} (options: {known})")
    for i, m in enumerate(space.modules):
        if m.options_from is None:
            continue
        where = f"{filename}: modules.{i}.options_from"
        source = next((s for s in space.modules[:i] if (s.name or s.family) == m.options_from), None)
        if source is None:
            raise SpaceError(f"{where}: expected the name of an earlier module, got {m.options_from!r}")
        if source.families != m.families or source.options_from or m.alpha is not None or m.options is not None:
            raise SpaceError(f"{where}: expected a module of the same family that takes no alpha or options of its "
                             f"own, sharing those of {m.options_from!r}")
    if len(space.modules) > 1 and len({f for m in space.modules for f in m.families}) > 1:
        for i, m in enumerate(space.modules):
            problem = _mixed_problem(m)
            if problem:
                raise SpaceError(f"{filename}: modules.{i}: mixed with other families, {problem}")
    return space


def _mixed_problem(m: ModuleSpec) -> str | None:
    """What AdapterHub (which builds mixed plans) cannot express of some point of module `m`, or None."""
    sizes = [1, 2] if m.sizes == HIDDEN_POW2 else sorted(s for s in m.sizes if s)
    protos = [(sizes[0], sizes[-1]) if m.per_layer else (sizes[-1], sizes[-1])]
    for name in m.families:
        fam = families.get(name)
        if "adapters" not in fam.libraries:
            return f"{name} is built by {fam.libraries[0]} alone; put it in a space of its own"
        option_choices = [[(k, v) for v in vs] for k, vs in (m.options or {}).items() if k in fam.options]
        for proto, targets, options in itertools.product(protos, m.targets or [None], itertools.product(*option_choices)):
            try:
                module = ModulePlan(name, proto, targets=targets if fam.target_groups else None, options=dict(options))
            except PlanError as exc:
                return str(exc)
            problem = fam.check(module, "adapters")
            if problem:
                return problem
    return None


class SearchSpace:
    """A space file bound to one model: its dimensions, decoding, validity and parameter range."""

    def __init__(self, space: SpaceFile, structure: ModelStructure):
        self.name = space.name
        self.description = space.description
        self.structure = structure
        self.num_layers = structure.num_layers
        modules: tuple[ModuleSpace, ...] = ()
        for m in space.modules:
            modules += (self._bind(m, modules),)
        self.modules = modules

    def _bind(self, m: ModuleSpec, bound: tuple[ModuleSpace, ...] = ()) -> ModuleSpace:
        if m.sizes == HIDDEN_POW2:
            h = self.structure.hidden_size
            sizes = {0} | {max(1, h // 2**k) for k in range(10)}
        else:
            sizes = set(m.sizes)
        reasons = {f: families.get(f).unavailable(self.structure) for f in m.families}
        fams = tuple(f for f in m.families if reasons[f] is None)
        if not fams:
            raise SpaceError(f"{self.name}: {'; '.join(r for r in reasons.values() if r)}")
        source = next((b for b in bound if b.name == m.options_from), None)
        return ModuleSpace(
            name=m.name or fams[0],
            families=fams,
            sizes=tuple(sorted(sizes)),
            mask=m.mask,
            targets=tuple(m.targets) if m.targets else (None,),
            alpha=source.alpha if source else tuple(m.alpha) if m.alpha else (None,),
            options=source.options if source else tuple((k, tuple(v)) for k, v in (m.options or {}).items()
                                                        if any(k in families.get(f).options for f in fams)),
            options_from=m.options_from,
        )

    def adapters_families(self) -> tuple[str, ...]:
        """Families of the space that only AdapterHub `adapters` builds: searching the space needs that extra."""
        return families.adapters_only(f for m in self.modules for f in m.families)

    # --- dimensions ---------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions of every dimension, in a stable order."""
        dims: dict[str, BaseDistribution] = {}
        for m in self.modules:
            if m.mask is None:
                for layer in range(self.num_layers):
                    dims[f"{m.name}.size.{layer}"] = CategoricalDistribution(m.sizes)
            else:
                dims[f"{m.name}.size"] = CategoricalDistribution(m.sizes)
            for suffix, choices in m.dims.items():
                if m.owns(suffix):
                    dims[f"{m.name}.{suffix}"] = CategoricalDistribution(choices)
        for name in self._mask_names():
            for layer in range(self.num_layers):
                dims[f"{name}.{layer}"] = IntDistribution(0, 1)
        return dims

    def _mask_names(self) -> list[str]:
        names = ["mask"] if any(m.mask == "shared" for m in self.modules) else []
        return names + [f"{m.name}.mask" for m in self.modules if m.mask == "own"]

    def mask_of(self, m: ModuleSpace) -> str:
        """The prefix of module `m`'s layer flags (``mask`` or ``N.mask``)."""
        return "mask" if m.mask == "shared" else f"{m.name}.mask"

    # --- decoding -----------------------------------------------------------------------------
    def decode(self, params: dict[str, Any]) -> Plan:
        """Trial parameters (names as in `distributions`) → `Plan`."""
        modules = []
        for m in self.modules:
            if m.mask is None:
                sizes = tuple(int(params[f"{m.name}.size.{layer}"]) for layer in range(self.num_layers))
            else:
                size = int(params[f"{m.name}.size"])
                mask = self.mask_of(m)
                sizes = tuple(size * int(params[f"{mask}.{layer}"]) for layer in range(self.num_layers))
            chosen = {k: params[name] for k, name in m.param_names().items()}
            modules.append(m.module_plan(sizes, chosen))
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
        """Valid: the plan puts a module in some layer, and some library builds its families together."""
        return self.is_valid_plan(self.decode(params))

    @staticmethod
    def is_valid_plan(plan: Plan) -> bool:
        return not plan.is_empty and families.library_for(plan.families) is not None

    # --- size of the space --------------------------------------------------------------------
    def num_configurations(self) -> int:
        """All points of the space, valid or not."""
        return math.prod(len(d.choices) if isinstance(d, CategoricalDistribution) else 2
                         for d in self.distributions().values())

    def num_valid_configurations(self) -> int:
        """Exact number of valid points, by combining per-mask-group counts of which families are active.

        Per group, a count for each set of active families: with every flag off any sizes (and family
        choices) give no module; with some flag on (2^L - 1 ways) each member is off (size 0, any of its
        c family choices) or on as one of its families (n - 1 sizes). A per-layer module is off in c
        ways and on as family f in n^L - 1 ways.
        """
        layers = self.num_layers
        on_masks = 2**layers - 1
        groups: list[dict[frozenset, int]] = []
        for mask in self._mask_names():
            members = [m for m in self.modules if m.mask is not None and self.mask_of(m) == mask]
            c = {m.name: len(m.families) for m in members}
            counts = {frozenset(): math.prod(c[m.name] * len(m.sizes) for m in members) + on_masks * math.prod(c.values())}
            for k in range(1, len(members) + 1):
                for active in itertools.combinations(members, k):
                    rest = math.prod(c[m.name] for m in members if m not in active)
                    ways = on_masks * math.prod(len(m.sizes) - 1 for m in active) * rest
                    for picked in itertools.product(*(m.families for m in active)):
                        key = frozenset(picked)
                        counts[key] = counts.get(key, 0) + ways
            groups.append(counts)
        for m in self.modules:
            if m.mask is None:
                groups.append({frozenset(): len(m.families),
                               **{frozenset([f]): len(m.sizes) ** layers - 1 for f in m.families}})
        joint: dict[frozenset, int] = {frozenset(): 1}
        for counts in groups:
            joint = _combine(joint, counts)
        extras = math.prod(len(v) for m in self.modules for k, v in m.choices.items()
                           if k != "family" and (k not in m.dims or m.owns(k)))
        return extras * sum(n for active, n in joint.items() if active and families.library_for(active))

    def param_range(self) -> tuple[tuple[Plan, ParamCount], tuple[Plan, ParamCount]]:
        """The smallest and the largest valid plan with their exact parameter counts."""
        smallest = min((self._plans_with(m, layer) for m in self.modules for layer in range(self.num_layers)),
                       key=lambda t: t[0])
        largest = max((self._full(active) for k in range(1, len(self.modules) + 1)
                       for active in itertools.combinations(self.modules, k)), key=lambda t: t[0])
        return smallest[1:], largest[1:]

    def _variants(self, modules) -> list[dict[str, tuple[ModuleSpace, dict[str, Any]]]]:
        """Every combination of the modules' choices: module name → chosen values (shared ones chosen once)."""
        names: dict[str, tuple[Any, ...]] = {}
        for m in modules:
            for k, v in m.choices.items():
                names.setdefault(m.param_names().get(k, f"{m.name}.{k}"), v)
        out = []
        for values in itertools.product(*names.values()):
            pick = dict(zip(names, values, strict=True))
            out.append({m.name: (m, {k: pick[m.param_names().get(k, f"{m.name}.{k}")] for k in m.choices})
                        for m in modules})
        return out

    def _plans_with(self, m: ModuleSpace, layer: int) -> tuple[int, Plan, ParamCount]:
        """The cheapest plan with module `m` at its smallest size in `layer` alone."""
        sizes = tuple(m.sizes[1] if i == layer else 0 for i in range(self.num_layers))
        best = None
        for variant in self._variants([m]):
            plan = Plan(self.num_layers, (m.module_plan(sizes, variant[m.name][1]),))
            count = self.count(plan)
            if best is None or count.params < best[0]:
                best = (count.params, plan, count)
        return best

    def _full(self, active) -> tuple[int, Plan, ParamCount]:
        """The largest valid plan with the `active` modules at their largest size in every layer (-1: none)."""
        best = (-1, Plan(self.num_layers), ParamCount(0, self.structure.base_params))
        for variant in self._variants(active):
            modules = tuple(m.module_plan((max(m.sizes),) * self.num_layers, chosen)
                            for m, chosen in variant.values())
            plan = Plan(self.num_layers, modules)
            if not self.is_valid_plan(plan):
                continue
            count = self.count(plan)
            if count.params > best[0]:
                best = (count.params, plan, count)
        return best


def _combine(left: dict[frozenset, int], right: dict[frozenset, int]) -> dict[frozenset, int]:
    out: dict[frozenset, int] = {}
    for a, n in left.items():
        for b, k in right.items():
            out[a | b] = out.get(a | b, 0) + n * k
    return out


def load_space(name_or_path: str, structure: ModelStructure) -> SearchSpace:
    """The space `name_or_path` (built-in name or YAML path) bound to the model `structure`."""
    return SearchSpace(read_space_file(name_or_path), structure)
