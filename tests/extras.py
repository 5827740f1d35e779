"""Test parameters that need the `adapters` extra carry `@pytest.mark.adapters` (see conftest.py).

Which cases those are is not written by hand: a plan needs adapters when `library_for` says
AdapterHub builds it, a space when it has families that only AdapterHub builds.
"""

from __future__ import annotations

import pytest

from autopeft.search_spaces import Plan, builtin_spaces, read_space_file
from autopeft.search_spaces.counting import library_for
from autopeft.search_spaces.families import adapters_only

ADAPTERS = pytest.mark.adapters


def plan_params(plans: dict[str, Plan]) -> list:
    """The names of `plans` (sorted) as pytest params, marked `adapters` where AdapterHub builds the plan."""
    return [pytest.param(name, marks=ADAPTERS if library_for(plans[name]) == "adapters" else (), id=name)
            for name in sorted(plans)]


def space_params() -> list:
    """The built-in space names as pytest params, marked `adapters` for spaces with AdapterHub-only families."""
    return [pytest.param(name, marks=ADAPTERS if adapters_only(f for m in read_space_file(name).modules for f in m.families) else (),
                         id=name)
            for name in builtin_spaces()]
