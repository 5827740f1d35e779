"""CLI start-up and read speed, side by side with an earlier commit, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/cli_speed.py [--baseline REF] [--trials 10000] [--repeat 5]

Times `autopeft --help`, `autopeft studies` and `autopeft pareto large` (wall seconds, median of
--repeat runs, the two versions interleaved) on one N-trial study built as in
benchmarks/dashboard_large_study.py. The baseline is the checkout at REF (default HEAD) installed
without dependencies into a temporary folder and run from there with PYTHONPATH (the rest of the
environment is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks.dashboard_synthetic import BERT_BASE, build_study, fast_sqlite_storage, write_model_dir

REPO = Path(__file__).resolve().parent.parent


def install_baseline(ref: str, tmp: Path) -> Path:
    """`ref`'s autopeft as a plain (non-editable) install in `tmp/site`; returns that folder."""
    src, site = tmp / "src", tmp / "site"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(src), ref], check=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(site), str(src)], check=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(src)], check=True)
    return site


def wall(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds `python -m autopeft ARGS` takes, run in `cwd` (not the checkout: `-m` puts the cwd first on sys.path)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "autopeft", *args], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"autopeft {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD", help="git ref to compare with (default HEAD)")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", help="reuse or create this SQLite file (default: a temporary one)")
    parser.add_argument("--json", help="also write the timings to this file")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = Path(args.db) if args.db else tmp / "large.db"
        url = f"sqlite:///{db.resolve()}"
        if not db.exists():
            storage = fast_sqlite_storage(url)
            build_study(storage, "large", write_model_dir(tmp / "bert-base", BERT_BASE), n_trials=args.trials,
                        running=4, bulk=True)
            storage.engine.dispose()
        base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        envs = {"current": base_env,
                f"baseline {args.baseline}": {**base_env, "PYTHONPATH": str(install_baseline(args.baseline, tmp))}}
        commands = {"--help": ["--help"], "studies": ["studies", "--storage", url],
                    "pareto": ["pareto", "large", "--storage", url]}
        times: dict[str, dict[str, list[float]]] = {c: {e: [] for e in envs} for c in commands}
        for _ in range(args.repeat):
            for command, argv in commands.items():
                for env_name, env in envs.items():
                    times[command][env_name].append(wall(argv, env, tmp))
    results = {c: {e: statistics.median(t) for e, t in by_env.items()} for c, by_env in times.items()}
    print(f"median wall seconds of {args.repeat} runs, {args.trials}-trial study")
    print(f"{'command':<10}" + "".join(f"{e:>24}" for e in envs))
    for command, by_env in results.items():
        print(f"{command:<10}" + "".join(f"{by_env[e]:>24.3f}" for e in envs))
    if args.json:
        Path(args.json).write_text(json.dumps({"trials": args.trials, "median_s": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
