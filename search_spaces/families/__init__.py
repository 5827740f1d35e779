"""The registry of adapter families: one module per family, listed here; nobody else names families.

Adding a family: write ``families/NAME.py`` defining a `Family` subclass and ``FAMILY``, add it to
`_MODULES`, and add a row to the table-driven tests (``tests/test_families.py``).

`library_for` is the one feasibility rule across families: peft builds one family alone (it holds
one adapter type per model); AdapterHub builds any union of families it supports, with at most one
module of each `adapters_kind` (its LoRA-type modules, LoRA and IA3, share a kind: that is why LoRA
and IA3 never go together).
"""

from __future__ import annotations

from collections.abc import Iterable

from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.families import ia3, loha, lokr, lora, parallel, prefix, serial
from autopeft.search_spaces.families.base import LIBRARIES, Family, Library

_MODULES = (lora, ia3, serial, parallel, prefix, loha, lokr)
REGISTRY: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in _MODULES}
#: family names in registry order (the order plans, tables and the dashboard list them in)
NAMES: tuple[str, ...] = tuple(REGISTRY)
#: export formats: a library's config, or autopeft's own plan YAML
FORMATS: tuple[str, ...] = (*LIBRARIES, "yaml")


def get(name: str) -> Family:
    """The family called `name`; `PlanError` listing the known ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise PlanError(f"family: expected one of {', '.join(NAMES)}, got {name!r}") from None


def library_for(families: Iterable[str]) -> Library | None:
    """The library that builds these families together (peft preferred), or None when none can.

    A family named more than once (LoRA on attention and on the MLP, say) goes into one peft config:
    only peft builds it, and alone.
    """
    listed = list(families)
    members = [get(f) for f in dict.fromkeys(listed)]
    if not members:
        return None
    if len(members) == 1:
        if len(listed) > 1:
            return "peft" if "peft" in members[0].libraries else None
        return members[0].libraries[0]
    if len(listed) > len(members):
        return None
    if all("adapters" in f.libraries for f in members):
        kinds = [f.adapters_kind for f in members]
        if len(set(kinds)) == len(kinds):
            return "adapters"
    return None


def adapters_only(families: Iterable[str]) -> tuple[str, ...]:
    """The families among `families` that only AdapterHub `adapters` builds (the `autopeft[adapters]` extra)."""
    return tuple(f for f in dict.fromkeys(families) if "peft" not in get(f).libraries)


def export_formats(families: Iterable[str]) -> tuple[str, ...]:
    """Export formats that can express a plan of these families: its library's, and autopeft's yaml."""
    library = library_for(families)
    return ((library,) if library else ()) + ("yaml",)


__all__ = ["FORMATS", "NAMES", "REGISTRY", "Family", "Library", "adapters_only", "export_formats", "get", "library_for"]
