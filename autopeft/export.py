"""Write a plan as a file another tool loads: peft `adapter_config.json`, AdapterHub config, autopeft YAML.

Each writer puts one file in `out_dir` and returns its path:

- `peft`: `adapter_config.json`, loadable with `peft.PeftConfig.from_pretrained(out_dir)`;
- `adapters`: `adapter_config.json` in AdapterHub's saved-adapter form, loadable with
  `adapters.AdapterConfig.load(path)` and `model.add_adapter(name, config=path)`;
- `yaml`: `plan.yaml`, the `autopeft-plan/v1` form (loads back with `Plan.from_text`).

Which of the first two can express a plan is the family registry's answer (`families.export_formats`).
"""

from __future__ import annotations

import json
from pathlib import Path

from autopeft.backends import ADAPTER_NAME, adapters_config, peft_config
from autopeft.optional import require_adapters
from autopeft.search_spaces import families
from autopeft.search_spaces.counting import check_buildable
from autopeft.search_spaces.model_structure import ModelStructure
from autopeft.search_spaces.plan import Plan

FORMATS = families.FORMATS


def export_plan(plan: Plan, structure: ModelStructure, fmt: str, out_dir: str | Path, model: str | None = None) -> Path:
    """Write `plan` in format `fmt` into `out_dir`; `PlanError` names a format that can when `fmt` cannot.

    `MissingExtra` (one line) for `adapters` where the `autopeft[adapters]` extra is not installed.
    """
    out = Path(out_dir)
    if fmt == "peft":
        config = peft_config(plan, structure)
        config.base_model_name_or_path = model
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


def trial_plan(study, number: int) -> Plan:
    """The plan recorded on completed trial `number`; `ValueError` naming the problem otherwise."""
    from optuna.trial import TrialState

    storage = study._storage
    try:
        trial = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
    except KeyError:
        raise ValueError(f"trial {number}: no such trial in study {study.study_name!r}; pick one from "
                         f"`autopeft pareto {study.study_name}`") from None
    if trial.state != TrialState.COMPLETE:
        raise ValueError(f"trial {number}: is {trial.state.name.lower()}, not complete; export a complete trial "
                         "(see `autopeft pareto`)")
    if not isinstance(trial.user_attrs.get("plan"), dict):
        raise ValueError(f"trial {number}: records no plan (it was not run by autopeft); export another trial "
                         f"(see `autopeft pareto {study.study_name}`)")
    return Plan.from_dict(trial.user_attrs["plan"])


def export_trial(study, number: int, fmt: str, out_dir: str | Path) -> Path:
    """Write completed trial `number` of an autopeft study as `fmt` (see `export_plan`)."""
    from autopeft.search_spaces.model_structure import load_config, structure_of
    from autopeft.study import stored_spec

    spec = stored_spec(study)
    plan = trial_plan(study, number)
    return export_plan(plan, structure_of(load_config(spec.model)), fmt, out_dir, model=spec.model)
