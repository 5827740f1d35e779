"""Dashboard speed on a large study: builds an N-trial study (default 10,000) and times the study API.

    python benchmarks/dashboard_large_study.py [--trials 10000] [--db PATH] [--json PATH]

The study has real LoRA plans on a BERT-base shaped config (12 layers), ~4% failed trials and a few
running ones. It is written in one transaction through Optuna's ORM models (`bulk_add_trials`):
`Study.add_trials` costs ~50 ms a trial on SQLite (its time for the first 200 is printed too).
Then the dashboard app is created on the DB (read-only) and each study-page endpoint is timed cold
(first request after start, reading every trial) and warm (the server's steady state: only new or
running trials are read again), plus the same numbers through Optuna's own `get_all_trials`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
from fastapi.testclient import TestClient

from autopeft.dashboard import create_app
from benchmarks.dashboard_synthetic import BERT_BASE, build_study, fast_sqlite_storage, write_model_dir

ENDPOINTS = ("/api/studies/1", "/api/studies/1/figures", "/api/studies/1/trials?sort=metric&order=desc",
             "/api/studies/1/trials?family=lora&min_metric=0.7", "/api/studies")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--db", help="reuse or create this SQLite file (default: a temporary one)")
    parser.add_argument("--json", help="also write the timings to this file")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model_dir(Path(tmp) / "bert-base", BERT_BASE)
        db = Path(args.db) if args.db else Path(tmp) / "large.db"
        url = f"sqlite:///{db.resolve()}"
        if not db.exists():
            storage = fast_sqlite_storage(url)
            results["build_add_trials_200_s"], _ = timed(lambda: build_study(
                fast_sqlite_storage(f"sqlite:///{Path(tmp) / 'slow.db'}"), "slow", model, n_trials=200))
            results[f"build_bulk_{args.trials}_s"], _ = timed(lambda: build_study(
                storage, "large", model, n_trials=args.trials, running=4, bulk=True))
            storage.engine.dispose()
        print(f"study DB: {db} ({db.stat().st_size / 1e6:.1f} MB, {args.trials} trials)")

        results["app_create_s"], app = timed(lambda: create_app(url))
        client = TestClient(app)  # no lifespan: the first request is really cold
        for endpoint in ENDPOINTS:
            cold, response = timed(lambda e=endpoint: client.get(e))
            assert response.status_code == 200, (endpoint, response.text[:200])
            warm = [timed(lambda e=endpoint: client.get(e))[0] for _ in range(5)]
            results[f"{endpoint} cold_s"] = cold
            results[f"{endpoint} warm_median_s"] = statistics.median(warm)
            results[f"{endpoint} bytes"] = len(response.content)
        fresh = create_app(url)
        results["study API cold, fresh app (read + compute + JSON)_s"], _ = timed(
            lambda: TestClient(fresh).get("/api/studies/1"))
        storage = optuna.storages.RDBStorage(url)
        results["optuna get_all_trials (for comparison)_s"], _ = timed(
            lambda: storage.get_all_trials(storage.get_study_id_from_name("large"), deepcopy=False))
    width = max(map(len, results))
    for key, value in results.items():
        shown = f"{value:,.0f}" if key.endswith("bytes") else f"{value:.3f}"
        print(f"{key:<{width}}  {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    slowest_warm = max(v for k, v in results.items() if k.endswith("warm_median_s"))
    sys.exit(0 if slowest_warm < 1.0 else 1)


if __name__ == "__main__":
    main()
