#!/usr/bin/env bash
# Run the test suite (README's test command). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
export OXSTUDY_CACHE=${OXSTUDY_CACHE:-$PWD/.cache/oxstudy}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
