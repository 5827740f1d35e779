"""`autopeft bench scaling` through the real CLI, on a real local Ray and the suite's PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
import sys

from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from autopeft.store import load_study, open_db, study_names


def bench(*args, cwd):
    return subprocess.run([sys.executable, "-m", "autopeft.cli.main", "bench", "scaling", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_scaling_runs_on_postgres_and_every_trial_lands_once(tmp_path, postgres_url):
    out = tmp_path / "scaling.json"
    done = bench("--workers", "1,3", "--trial-seconds", "0.2", "--rounds", "2", "--storage", postgres_url,
                 "--json", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["storage"] == "postgresql"
    assert [(r["workers"], r["trials"]) for r in report["results"]] == [(1, 2), (3, 6)]
    assert all(0 < r["efficiency"] <= 1.05 and r["median_overhead_ms"] >= 0 for r in report["results"])
    storage = open_db(postgres_url)
    try:
        names = sorted(n for n in study_names(storage) if n.startswith("scaling-"))
        trials = {n: load_study(storage, n).get_trials() for n in names}
    finally:
        storage.engine.dispose()
    assert sorted(len(t) for t in trials.values()) == [2, 6]
    for study_trials in trials.values():
        assert {t.state for t in study_trials} == {TrialState.COMPLETE}
        assert sorted(t.number for t in study_trials) == list(range(len(study_trials)))
    password = make_url(postgres_url).password
    assert not password or password not in done.stdout + done.stderr  # the password never shows
    assert "A new study created" not in done.stdout + done.stderr  # no log line per study among the figures


def test_scaling_with_a_storage_it_cannot_open_says_so_in_one_line(tmp_path):
    done = bench("--workers", "1", "--storage", "postgresql+psycopg://u:secret@127.0.0.1:1/db", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "cannot open storage" in done.stderr + done.stdout and "secret" not in done.stderr + done.stdout
