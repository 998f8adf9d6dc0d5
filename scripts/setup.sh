#!/usr/bin/env bash
# Create .venv with oxstudy and its pinned stack.
#
# torch is installed first and pinned (torch==2.13.0): a bare `torch` requirement, or
# installing trl/peft/lm-eval before torch, resolves a multi-GB CUDA build. On a machine
# without an NVIDIA GPU we make sure the wheel pip picks is a CPU build; if the default
# index would give a CUDA build we take it from PyTorch's CPU index instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip)
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" install -q "torch==2.13.0"
  else
    # Which wheel would pip take? A local +cpu wheel (these machines) or a CUDA one (PyPI on Linux).
    url=$("${PIP[@]}" install --dry-run --no-deps --quiet --report - "torch==2.13.0" 2>/dev/null \
          | .venv/bin/python -c "import json,sys; r=json.load(sys.stdin); print(r['install'][0]['download_info']['url'])" || true)
    if [[ "$url" == *cpu* ]]; then
      "${PIP[@]}" install -q "torch==2.13.0"
    else
      "${PIP[@]}" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
fi
"${PIP[@]}" install -q -c constraints.txt -e ".[dev]"
.venv/bin/python -c "import torch; print(f'oxstudy environment ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
