"""The study store: the only code that touches the study DB (Optuna's RDB storage; SQLite or PostgreSQL).

- `urls`: URL checks and `redact_url` (no password is ever shown);
- `connect`: open the DB read-write (`open_db`) or read-only (`open_db_for_reading`, `open_readonly`);
  `dbfile`: SQLite files checked before Optuna opens them;
- `studies`: create and load studies, the stored spec and objective, trials by number and counts by state;
  `linked`: the linked studies of `autopeft refine`;
- `trials`: the driver's writes of a trial, each one transaction (`ask`, `draw`, `finish`), counts by state;
- `attrs`: attribute keys and how values are stored (each within optuna-dashboard's 1,024 characters);
- `liveness`: heartbeats of search processes, stale trials and their retries;
- `reader`: column-level, incremental reads of the study list and trial rows;
- `summary`: the one study summary and Pareto front, from reader rows.

Optuna's private API (`study._storage`, `_study_id`, `optuna.storages._rdb.models`) is used in this
package alone, each time with a comment saying why no public API serves.
"""

from __future__ import annotations

from autopeft.store.attrs import (
    DRIVER_PREFIX,
    OBJECTIVE_ATTR,
    REFINEMENT_OF,
    REFINEMENTS,
    SPEC_ATTR,
    readable,
    result_attrs,
    storable,
    trial_attr,
    trial_result,
)
from autopeft.store.connect import open_db, open_db_for_reading, open_readonly
from autopeft.store.errors import StudyError
from autopeft.store.linked import latest_refinement, read_refinement, refined_name, refinement_names
from autopeft.store.reader import StudyInfo, StudyReader, TrialRow
from autopeft.store.studies import (
    completed,
    count_trials,
    create_study,
    load_study,
    objective_of,
    pareto_trials,
    points,
    save_spec,
    spec_record,
    stored_spec,
    study_names,
    trial_by_number,
)
from autopeft.store.summary import StudySummary, complete_rows, front, summarize
from autopeft.store.urls import URL_EXAMPLES, check_url, redact_url, sqlite_path

__all__ = [
    "DRIVER_PREFIX", "OBJECTIVE_ATTR", "REFINEMENTS", "REFINEMENT_OF", "SPEC_ATTR", "URL_EXAMPLES",
    "StudyError", "StudyInfo", "StudyReader", "StudySummary", "TrialRow",
    "check_url", "complete_rows", "completed", "count_trials", "create_study", "front", "latest_refinement",
    "load_study", "objective_of", "open_db_for_reading", "open_readonly", "open_db",
    "pareto_trials", "points", "read_refinement", "readable", "redact_url", "refined_name", "refinement_names",
    "result_attrs", "save_spec", "spec_record", "sqlite_path", "storable", "stored_spec", "study_names",
    "summarize", "trial_attr", "trial_by_number", "trial_result",
]
