"""A real search process on the synthetic evaluator, for tests of drivers that die or share a study.

    python -m tests.search_driver URL MODEL_DIR TRIALS HEARTBEAT SEED [--hold FILE --hold-from N] [--go FILE]

runs `Runner.recover()` then `Runner.run()` on study ``s`` (the `lora` space of the tiny BERT config
saved in MODEL_DIR, the inline executor, a random sampler seeded SEED, trials of 0.2 s). From its
N-th evaluation on (0-based), an evaluation waits until the `--hold` file exists. With `--go`, it
prints ``ready`` once it has loaded the study and recovers and runs only when that file exists (a
rerun "at once" on a machine where imports take seconds). Prints ``driver ID``, ``recovered N`` and
each progress event.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import optuna

from autopeft.executors import InlineExecutor
from autopeft.objective import ACCURACY
from autopeft.runner import Runner
from autopeft.search_spaces import load_config, load_space, structure_of
from autopeft.spec import build_spec
from autopeft.store import create_study, load_study, open_db, study_names
from workers.synthetic import SyntheticEvaluator


class HeldEvaluator(SyntheticEvaluator):
    """`SyntheticEvaluator` whose evaluations from the `hold_from`-th on wait for `hold` to exist."""

    def __init__(self, hold: Path | None, hold_from: int):
        super().__init__(seconds=0.2)
        self.hold, self.hold_from, self.calls = hold, hold_from, 0

    def __call__(self, plan, fidelity=None):
        self.calls += 1
        while self.hold is not None and self.calls > self.hold_from and not self.hold.exists():
            time.sleep(0.05)
        return super().__call__(plan, fidelity)


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("url", "model_dir", "trials", "heartbeat", "seed"):
        parser.add_argument(name)
    parser.add_argument("--hold", type=Path)
    parser.add_argument("--hold-from", type=int, default=0)
    parser.add_argument("--go", type=Path)
    args = parser.parse_args()
    spec = build_spec({}, {"model": args.model_dir, "space": "lora", "execution.trials": int(args.trials),
                           "budget.max_params_pct": 100, "storage.url": args.url,
                           "execution.heartbeat_seconds": float(args.heartbeat)})
    storage = open_db(args.url)
    try:
        if "s" not in study_names(storage):
            create_study(storage, "s", spec, ACCURACY)
    except optuna.exceptions.DuplicatedStudyError:
        pass  # the other driver created it a moment ago
    study = load_study(storage, "s", optuna.samplers.RandomSampler(seed=int(args.seed)))
    space = load_space("lora", structure_of(load_config(args.model_dir)))
    runner = Runner(spec, study, space, InlineExecutor(HeldEvaluator(args.hold, args.hold_from)),
                    on_progress=lambda p: p.last_event and print(p.last_event, flush=True))
    print(f"driver {runner.driver}", flush=True)
    if args.go is not None:
        print("ready", flush=True)
        while not args.go.exists():
            time.sleep(0.02)
    print(f"recovered {runner.recover()}", flush=True)
    runner.run()


if __name__ == "__main__":
    main()
