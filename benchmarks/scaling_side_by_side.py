"""`autopeft bench scaling`, this checkout and an earlier commit side by side, on SQLite and PostgreSQL, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/scaling_side_by_side.py [--baseline REF] [--workers 1,16,64]
        [--trial-seconds 2] [--rounds 4] [--storages sqlite,postgresql] [--json FILE]

For each storage, the two versions run one after the other (baseline first), each in its own process
with its own local Ray (2 CPUs, one fake GPU per worker) and a new DB (a SQLite file in a temporary
folder; a new database on a throwaway PostgreSQL server, tests/postgres.py), through that version's
`autopeft.cli.bench_scaling.run_scaling`. The baseline is installed as in benchmarks/cli_speed.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.cli_speed import install_baseline

REPO = Path(__file__).resolve().parent.parent

ONE_VERSION = """
import json, sys, tempfile
import ray
from transformers import BertConfig
from autopeft.cli.bench_scaling import run_scaling
counts, seconds, rounds, url = [int(w) for w in sys.argv[1].split(",")], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with tempfile.TemporaryDirectory() as tmp:
    BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128).save_pretrained(tmp)
    url = url.replace("TMP", tmp)
    ray.init(num_cpus=2, num_gpus=max(counts), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    for count in counts:
        print(json.dumps(run_scaling(count, seconds, rounds, tmp, url)), flush=True)
    ray.shutdown()
"""


def run_version(site: Path | None, args: argparse.Namespace, url: str, cwd: Path) -> list[dict]:
    """One version's rows (`run_scaling` output per worker count); `site` None: this checkout."""
    env = {**os.environ, "PYTHONPATH": str(site or REPO)}
    done = subprocess.run([sys.executable, "-c", ONE_VERSION, args.workers, str(args.trial_seconds), str(args.rounds),
                           url], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="HEAD")
    parser.add_argument("--workers", default="1,16,64")
    parser.add_argument("--trial-seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--storages", default="sqlite,postgresql")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    storages = args.storages.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        site = install_baseline(args.baseline, tmp)
        server = None
        if "postgresql" in storages:
            sys.path.insert(0, str(REPO))
            from tests.postgres import PostgresServer

            server = PostgresServer()
        try:
            print(f"{'storage':>10} {'version':>10} {'workers':>7} {'trials':>6} {'thru/s':>7} {'eff':>7} {'overhead ms':>11}")
            for storage in storages:
                for version, where in ((args.baseline, site), ("this", None)):
                    url = server.new_database() if storage == "postgresql" else "sqlite:///TMP/scaling.db"
                    for row in run_version(where, args, url, tmp):
                        rows.append({"storage": storage, "version": version, **row})
                        print(f"{storage:>10} {version:>10} {row['workers']:>7} {row['trials']:>6} {row['throughput']:>7.2f} "
                              f"{100 * row['efficiency']:>6.1f}% {row['median_overhead_ms']:>11.1f}", flush=True)
        finally:
            if server is not None:
                server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps({"trial_seconds": args.trial_seconds, "rounds": args.rounds,
                                               "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
