"""Samplers for autopeft studies: the default multi-objective BO (`mobo`) and named baselines.

Public API: `make_sampler(name, space, ...)` and `SAMPLER_NAMES`; the sampler classes for direct use
and type checks; `SyntheticPeft`, the `synthetic-peft` benchmark problem. Everything else lives in
private modules (``_encoding``, ``_feasibility``, ``_design``, ``_surrogate``, ``_acquisition``,
``_local_search``, ``_history``, ``_base``, ``_mobo``, ``_autopeft``, ``_feasible_sampler``,
``_factory``); the optimiser benchmark is `autopeft.optim.bench`.
"""

from __future__ import annotations

from autopeft.optim._autopeft import AutoPeftSampler
from autopeft.optim._base import SpaceExhaustedWarning
from autopeft.optim._factory import SAMPLER_NAMES, make_sampler
from autopeft.optim._feasible_sampler import FeasibleSampler
from autopeft.optim._mobo import MoboSampler
from autopeft.optim.synthetic import SyntheticPeft

__all__ = [
    "SAMPLER_NAMES",
    "AutoPeftSampler",
    "FeasibleSampler",
    "MoboSampler",
    "SpaceExhaustedWarning",
    "SyntheticPeft",
    "make_sampler",
]
