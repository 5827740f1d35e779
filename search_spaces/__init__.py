"""Search spaces, plans and exact parameter counts (`autopeft.search_spaces`)."""

from autopeft.search_spaces.counting import ParamCount, count_plan, library_for
from autopeft.search_spaces.model_structure import ModelError, ModelStructure, load_config, structure_of
from autopeft.search_spaces.plan import FAMILIES, PLAN_FORMAT, ModulePlan, Plan, PlanError
from autopeft.search_spaces.space import SearchSpace, SpaceError, builtin_spaces, load_space, read_space_file

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
    "library_for",
    "load_config",
    "load_space",
    "read_space_file",
    "structure_of",
]
