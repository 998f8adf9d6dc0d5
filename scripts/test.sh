#!/usr/bin/env bash
# Run the test suite (README's test command), on a fresh clone too: it first creates or
# updates .venv from the lock (scripts/setup.sh; about a second when current) and installs
# headless Chromium for the browser test when missing (scripts/install_browser.sh; set
# OXSTUDY_SKIP_BROWSER=1 where that cannot be done: that one test then skips).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${OXSTUDY_SKIP_BROWSER:-0}" != 1 ] && ! bash scripts/install_browser.sh; then
  echo "test.sh: could not install Chromium for tests/test_report_browser.py;" \
       "install it yourself or set OXSTUDY_SKIP_BROWSER=1 to skip that test" >&2
  exit 1
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
export OXSTUDY_CACHE=${OXSTUDY_CACHE:-$PWD/.cache/oxstudy}
exec "${OXSTUDY_VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
