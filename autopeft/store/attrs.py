"""How autopeft writes the user attributes of trials and studies, so that every Optuna tool shows them whole.

optuna-dashboard cuts the JSON of any non-string attribute at `LIMIT` characters (a dict longer than
that reads as broken JSON there). So:

- the worker's result is stored in a few attributes: `result` (status, metrics, counts, timings,
  memory, host, ...) and, as attributes of their own (`RESULT_PARTS`), its fields `fidelity`,
  `split` (the data split, with row digests; attribute `data_split`, as refined trials already have a
  `split`) and `curve` (the held-out metric after each pass);
- any value whose JSON is longer than `LIMIT` is stored as its compact JSON text (a string, which no
  tool cuts); `readable` turns it back.

Readers go through `trial_result` and `readable`, which read studies written before this too (one
`result` attribute holding everything, every value as a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# --- attribute keys ------------------------------------------------------------------------------
SPEC_ATTR = "spec"  # study: the `SearchSpec` as JSON, password redacted (`autopeft.store.studies.spec_record`)
OBJECTIVE_ATTR = "objective"  # study: {metric, direction, reference} (`autopeft.objective`)
REFINEMENT_OF = "refinement_of"  # linked study of `autopeft refine`: the source study's name
REFINEMENTS = "refinements"  # source study: its linked studies, oldest first
DRIVER_PREFIX = "autopeft:driver:"  # study system attr per search process: driver id -> last heartbeat (unix s)

#: optuna-dashboard's `MAX_ATTR_LENGTH`: longer JSON of a non-string attribute is cut there
LIMIT = 1024
#: result field → the trial attribute it is stored in on its own (these fields are most of a result's length)
RESULT_PARTS = {"fidelity": "fidelity", "split": "data_split", "curve": "curve"}


def storable(value: Any) -> Any:
    """`value`, or its compact JSON text when the JSON Optuna tools show of it would be longer than `LIMIT`."""
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if len(json.dumps(value)) <= LIMIT:
        return value
    return json.dumps(value, separators=(",", ":"))


def readable(value: Any) -> Any:
    """Inverse of `storable`: the JSON object or list a long value was stored as text of; anything else as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def result_attrs(result: Mapping[str, Any]) -> dict[str, Any]:
    """The trial attributes that store a worker result (`TrialResult.to_dict()`), each within `LIMIT`."""
    core = {k: v for k, v in result.items() if k not in RESULT_PARTS}
    parts = {attr: result[k] for k, attr in RESULT_PARTS.items() if k in result}
    return {k: storable(v) for k, v in {"result": core, **parts}.items()}


def trial_result(user_attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The worker result of a trial, whole, from its attributes ({} when it has none), written either way."""
    result = readable(user_attrs.get("result"))
    if not isinstance(result, dict):
        return {}
    parts = {k: readable(user_attrs[attr]) for k, attr in RESULT_PARTS.items() if attr in user_attrs}
    return {**result, **parts}


def trial_attr(user_attrs: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """One attribute (`plan`, `rungs`, ...) as written, long ones stored as text included."""
    return readable(user_attrs[key]) if key in user_attrs else default
