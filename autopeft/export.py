"""Write a plan as a file another tool loads: peft `adapter_config.json`, AdapterHub config, autopeft YAML.

Each writer puts one file in `out_dir` and returns its path:

- `peft`: `adapter_config.json`, loadable with `peft.PeftConfig.from_pretrained(out_dir)`; given the
  trial's `TaskHead` it carries the task's `task_type` (``SEQ_CLS``, ``CAUSAL_LM``, ``SEQ_2_SEQ_LM``)
  and the head the trial trained in `modules_to_save`, so `get_peft_model` trains (and
  `save_pretrained` saves) what the trial trained;
- `adapters`: `adapter_config.json` in AdapterHub's saved-adapter form, loadable with
  `adapters.AdapterConfig.load(path)` and `model.add_adapter(name, config=path)`; its `head` entry
  (`TaskHead.to_dict`) says which model class to load and which head modules to train with the adapter;
- `yaml`: `plan.yaml`, the `autopeft-plan/v1` form (loads back with `Plan.from_text`).

Which of the first two can express a plan is the family registry's answer (`families.export_formats`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from autopeft.backends import ADAPTER_NAME, adapters_config, peft_config
from autopeft.heads import TaskHead, trial_head
from autopeft.optional import require_adapters
from autopeft.search_spaces import families
from autopeft.search_spaces.counting import check_buildable
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import Plan
from autopeft.store.attrs import trial_attr, trial_result

FORMATS = families.FORMATS


def export_plan(plan: Plan, structure: ModelStructure, fmt: str, out_dir: str | Path, model: str | None = None,
                head: TaskHead | None = None) -> Path:
    """Write `plan` in format `fmt` into `out_dir`; `PlanError` names a format that can when `fmt` cannot.

    `head`: what the trial trained besides the adapter (None: the adapter alone, no task type).
    `MissingExtra` (one line) for `adapters` where the `autopeft[adapters]` extra is not installed.
    """
    out = Path(out_dir)
    if fmt == "peft":
        config = peft_config(plan, structure, task_type=head.task_type if head else None)
        config.base_model_name_or_path = model
        if head is not None and head.modules:
            config.modules_to_save = list(head.modules)
        out.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(str(out))
        return out / "adapter_config.json"
    if fmt == "adapters":
        check_buildable(plan, "adapters")  # what the format cannot express is said first, installed or not
        adapters = require_adapters("the AdapterHub export format (--format adapters)")
        config = adapters_config(plan, structure)
        data = {
            "config": config.to_dict(),
            "hidden_size": structure.hidden_size,
            "model_name": model,
            "model_type": structure.model_type,
            "name": ADAPTER_NAME,
            "version": f"adapters.{adapters.__version__}",
        }
        if head is not None:
            data["head"] = head.to_dict()
        out.mkdir(parents=True, exist_ok=True)
        path = out / "adapter_config.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return path
    if fmt == "yaml":
        out.mkdir(parents=True, exist_ok=True)
        path = out / "plan.yaml"
        path.write_text(plan.to_yaml())
        return path
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def formats_for(user_attrs) -> tuple[str, ...]:
    """The export formats that can express the plan a trial records (() when it records none)."""
    plan = trial_attr(user_attrs, "plan")
    if not isinstance(plan, dict):
        return ()
    return families.export_formats(m.family for m in Plan.from_dict(plan).active)


def trial_format(user_attrs) -> str:
    """The format to suggest for a trial: the library's that built its plan, else yaml."""
    return (formats_for(user_attrs) or ("yaml",))[0]


class Exported(NamedTuple):
    path: Path
    head: TaskHead


def export_frozen_trial(trial, spec, fmt: str, out_dir: str | Path) -> Exported:
    """Write a completed `FrozenTrial` of an autopeft study whose spec is `spec` as `fmt`, with the head it trained."""
    from autopeft.search_spaces.model_structure import load_config, structure_of

    config = load_config(spec.model)
    plan = Plan.from_dict(trial_attr(trial.user_attrs, "plan"))
    head = trial_head(spec.task, trial_result(trial.user_attrs), config)
    return Exported(export_plan(plan, structure_of(config), fmt, out_dir, model=spec.model, head=head), head)


def complete_trial(study, number: int):
    """Completed trial `number` of `study` (a `FrozenTrial`); `ValueError` naming the problem otherwise."""
    from optuna.trial import TrialState

    from autopeft.store import trial_by_number

    try:
        trial = trial_by_number(study, number)
    except KeyError:
        raise ValueError(f"trial {number}: no such trial in study {study.study_name!r}; pick one from "
                         f"`autopeft pareto {study.study_name}`") from None
    if trial.state != TrialState.COMPLETE:
        raise ValueError(f"trial {number}: is {trial.state.name.lower()}, not complete; export a complete trial "
                         "(see `autopeft pareto`)")
    return trial


def _recorded_plan(trial, study_name: str) -> dict:
    plan = trial_attr(trial.user_attrs, "plan")
    if not isinstance(plan, dict):
        raise ValueError(f"trial {trial.number}: records no plan (it was not run by autopeft); export another trial "
                         f"(see `autopeft pareto {study_name}`)")
    return plan


def trial_plan(study, number: int) -> Plan:
    """The plan recorded on completed trial `number`; `ValueError` naming the problem otherwise."""
    return Plan.from_dict(_recorded_plan(complete_trial(study, number), study.study_name))


def export_trial(study, number: int, fmt: str, out_dir: str | Path) -> Exported:
    """Write completed trial `number` of an autopeft study as `fmt` (see `export_plan`)."""
    from autopeft.store import stored_spec

    spec = stored_spec(study)
    trial = complete_trial(study, number)
    _recorded_plan(trial, study.study_name)  # a trial another tool added records none: say so, not a KeyError
    return export_frozen_trial(trial, spec, fmt, out_dir)
