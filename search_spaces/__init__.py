"""Search spaces, plans, adapter families and exact parameter counts (`autopeft.search_spaces`)."""

from autopeft.search_spaces import families
from autopeft.search_spaces.counting import ParamCount, count_plan, library_for
from autopeft.search_spaces.errors import PlanError
from autopeft.search_spaces.model_structure import ModelError, ModelStructure, load_config, structure_of
from autopeft.search_spaces.plan import PLAN_FORMAT, ModulePlan, Plan
from autopeft.search_spaces.space import SearchSpace, SpaceError, builtin_spaces, load_space, read_space_file

FAMILIES = families.NAMES

__all__ = [
    "FAMILIES",
    "PLAN_FORMAT",
    "ModelError",
    "ModelStructure",
    "ModulePlan",
    "ParamCount",
    "Plan",
    "PlanError",
    "SearchSpace",
    "SpaceError",
    "builtin_spaces",
    "count_plan",
    "families",
    "library_for",
    "load_config",
    "load_space",
    "read_space_file",
    "structure_of",
]
