"""The error of a plan that is malformed or cannot be built (shared by plans, families and counting)."""

from __future__ import annotations


class PlanError(ValueError):
    """A plan that is malformed or cannot be built; the message names the field."""
