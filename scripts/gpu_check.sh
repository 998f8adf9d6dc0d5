#!/usr/bin/env bash
# The prepared GPU check: bf16 full + LoRA training per trainer family, a 2-process accelerate
# (DeepSpeed ZeRO-3) launch, lm-eval hf vs vllm, vLLM rollouts and a 6-cell study, as a
# pass/fail table (under 8 minutes on one H200). On a machine without a GPU it says so and
# exits 2; `--dry-run` prints the plan (commands, environment) anywhere.
#
#   bash scripts/gpu_check.sh                # run everything this machine can
#   bash scripts/gpu_check.sh --dry-run      # the plan only
#   bash scripts/gpu_check.sh --only train/  # a subset
#   bash scripts/gpu_check.sh --out DIR      # work directory (default gpu_check_out/); results in DIR/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m oxstudy.gpucheck "$@"
