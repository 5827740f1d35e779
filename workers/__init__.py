"""Evaluate one trial (`autopeft.workers`): data, training at a fidelity, metrics, Ray actors.

Names are imported lazily so that a Ray actor running a light evaluator does not pay for torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate_plan": "autopeft.workers.evaluate",
    "check_task": "autopeft.workers.evaluate",
    "check_model": "autopeft.workers.evaluate",
    "CACHE": "autopeft.workers.cache",
    "WorkerCache": "autopeft.workers.cache",
    "TrialResult": "autopeft.workers.result",
    "FAILURE_KINDS": "autopeft.workers.result",
    "DataError": "autopeft.workers.tasks",
    "TaskSpec": "autopeft.workers.tasks",
    "HubSplit": "autopeft.workers.tasks",
    "TaskData": "autopeft.workers.data",
    "load_task_data": "autopeft.workers.data",
    "resolve_task": "autopeft.workers.tasks",
    "GLUE_TASKS": "autopeft.workers.tasks",
    "LMTaskSpec": "autopeft.workers.lm_tasks",
    "LM_METRICS": "autopeft.workers.lm_tasks",
    "METRIC_DIRECTIONS": "autopeft.workers.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'autopeft.workers' has no attribute {name!r}")
