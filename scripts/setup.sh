#!/usr/bin/env bash
# Create or update .venv with oxstudy and its locked stack (constraints.txt: every direct and
# transitive dependency, one resolved set). Idempotent: when .venv was set up from the current
# pyproject.toml + constraints.txt it checks that and returns in about a second.
#
# torch is installed first and pinned (torch==2.13.0): a bare `torch` requirement, or
# installing trl/peft/lm-eval before torch, resolves a multi-GB CUDA build. On a machine
# without an NVIDIA GPU we make sure the wheel pip picks is a CPU build; if the default
# index would give a CUDA build we take it from PyTorch's CPU index instead.
#
# Environment: PYTHON (interpreter for a new venv; default python3), OXSTUDY_VENV (default
# .venv), OXSTUDY_LOCK (default constraints.txt; "none" resolves within pyproject.toml's
# ranges instead, which is how scripts/lock.sh refreshes the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${OXSTUDY_VENV:-.venv}
LOCK=${OXSTUDY_LOCK:-constraints.txt}
export PIP_DISABLE_PIP_VERSION_CHECK=1
STAMP="$VENV/.oxstudy-setup-stamp"

# What the venv was built from: these files, this checkout (the editable install points here), the lock.
inputs=(pyproject.toml scripts/setup.sh)
[ "$LOCK" = none ] || inputs+=("$LOCK")
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1) $PWD $LOCK"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] \
   && "$VENV/bin/python" -I -c "import sys, oxstudy; sys.exit(not oxstudy.__file__.startswith(sys.argv[1]))" "$PWD/" 2>/dev/null; then
  echo "setup: $VENV is current (pyproject.toml and $LOCK unchanged)"
  exit 0
fi

rm -f "$STAMP"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    "${PIP[@]}" install -q "torch==2.13.0"
  else
    # Which wheel would pip take? A local +cpu wheel (these machines) or a CUDA one (PyPI on Linux).
    url=$("${PIP[@]}" install --dry-run --no-deps --quiet --report - "torch==2.13.0" 2>/dev/null \
          | "$VENV/bin/python" -c "import json,sys; r=json.load(sys.stdin); print(r['install'][0]['download_info']['url'])" || true)
    if [[ "$url" == *cpu* ]]; then
      "${PIP[@]}" install -q "torch==2.13.0"
    else
      "${PIP[@]}" install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    fi
  fi
fi
if [ "$LOCK" = none ]; then
  "${PIP[@]}" install -q -e ".[dev]"
else
  "${PIP[@]}" install -q -c "$LOCK" -e ".[dev]"
fi
echo "$want" > "$STAMP"
"$VENV/bin/python" -c "import torch; print(f'oxstudy environment ready: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
