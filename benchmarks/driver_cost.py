"""What a trial costs the search driver itself, without Ray: CPU ms per trial and efficiency.

    PYTHONPATH=. .venv/bin/python benchmarks/driver_cost.py [--workers 64] [--trial-seconds 2] [--rounds 4]
        [--storage sqlite|postgresql] [--profile N]

The real runner, study and random sampler (as `autopeft bench scaling`), but an in-process executor
(`Timed`) whose trials end `--trial-seconds` after they are submitted, scored by the synthetic metric:
no worker processes share the cores, so the driver's own cost per trial shows. Prints wall seconds,
efficiency (trials / wall / (workers / trial seconds)) and the driver's CPU time per trial
(`time.process_time`); `--profile N` also prints the N costliest calls (cProfile, cumulative; the
profiler itself slows the driver). `postgresql` starts a throwaway server (tests/postgres.py).
"""

from __future__ import annotations

import cProfile
import heapq
import pstats
import tempfile
import time
import uuid

import optuna

from autopeft.cli.bench_scaling import write_model
from autopeft.objective import Objective
from autopeft.runner import Runner
from autopeft.search_spaces import load_config, load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, open_db
from autopeft.workers.synthetic import SyntheticEvaluator
from benchmarks.study_dbs import new_study_db, run_options


class Timed:
    """An executor of `capacity` pretend workers: a trial ends `seconds` after its submission."""

    def __init__(self, capacity: int, seconds: float):
        self.capacity, self.seconds = capacity, seconds
        self._due: list[tuple[float, int, dict]] = []  # (end time, trial number, plan), a heap
        self._score = SyntheticEvaluator()

    def submit(self, number, plan, fidelity=None):
        heapq.heappush(self._due, (time.perf_counter() + self.seconds, number, plan))

    def poll(self, timeout):
        if not self._due:
            return []
        time.sleep(max(0.0, min(self._due[0][0] - time.perf_counter(), timeout)))
        now, done = time.perf_counter(), []
        while self._due and self._due[0][0] <= now:
            _, number, plan = heapq.heappop(self._due)
            done.append((number, self._score(plan)))
        return done

    def cancel_all(self):
        numbers = [n for _, n, _ in self._due]
        self._due.clear()
        return numbers

    def close(self):
        pass


def main() -> None:
    parser = run_options(__doc__.splitlines()[0])
    parser.add_argument("--profile", type=int, default=0, help="print this many of the costliest calls")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, new_study_db(args.storage, tmp) as url:
        write_model(tmp)
        trials = args.rounds * args.workers
        spec = build_spec({}, {"model": tmp, "space": "lora", "execution.trials": trials, "budget.max_params_pct": 100,
                               "execution.workers": args.workers})
        storage = open_db(url)
        study = create_study(storage, f"driver-{uuid.uuid4().hex[:8]}", spec, Objective("metric", "maximize", 0.0))
        study.sampler = optuna.samplers.RandomSampler(seed=0)
        space = load_space("lora", structure_of(load_config(tmp)))
        space.param_range()  # counts plans: the first-use imports (peft) happen here, off the clock
        runner = Runner(spec, study, space, Timed(args.workers, args.trial_seconds))
        profile = cProfile.Profile() if args.profile else None
        cpu, start = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        runner.run()
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{args.storage}: {args.workers} workers, {trials} trials, wall {wall:.2f} s, efficiency "
              f"{trials / wall / (args.workers / args.trial_seconds):.1%}, driver CPU {1000 * cpu / trials:.1f} ms per trial")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        storage.engine.dispose()  # before the throwaway PostgreSQL server stops


if __name__ == "__main__":
    main()
