#!/usr/bin/env bash
# Refresh constraints.txt, the locked environment: every direct and transitive dependency of
# the CPU install plus the dev extra, as one resolved set (CPython 3.11, Linux x86_64).
#
#   bash scripts/lock.sh              resolve afresh in a throwaway venv: the newest releases
#                                     inside pyproject.toml's ranges (torch first, CPU build)
#   bash scripts/lock.sh --from DIR   freeze the venv DIR instead (after a deliberate upgrade)
#
# Then `bash scripts/test.sh` (setup.sh sees the new lock and reinstalls from it), and commit
# constraints.txt with the test results. tests/test_environment_lock.py fails while the
# running venv and the lock disagree.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--from" ]; then
  venv=${2:?usage: scripts/lock.sh --from VENV_DIR}
else
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  venv=$scratch/venv
  OXSTUDY_VENV=$venv OXSTUDY_LOCK=none bash scripts/setup.sh
fi
"$venv/bin/python" -m pip check
pins=$("$venv/bin/python" -m pip freeze --all --exclude-editable \
       | grep -v -E '^(#|-e |pip==|oxstudy==)' \
       | sed -E 's/^(torch==[^+]+)\+.*$/\1/' | LC_ALL=C sort -f)
{
  echo "# The locked environment: every direct and transitive dependency of oxstudy's CPU install"
  echo "# plus the dev extra (ray, submitit, pytest, ruff), one resolved set for CPython 3.11 on"
  echo "# Linux x86_64. scripts/setup.sh installs with it (-c constraints.txt); refresh it with"
  echo "# scripts/lock.sh (README \"Installing\"). Pins outside oxstudy[dev] constrain optional extras."
  echo "#"
  echo "# torch first: a bare \`torch\` requirement, or installing trl/peft/lm-eval before torch,"
  echo "# resolves a multi-GB CUDA build; setup.sh installs torch==2.13.0 (CPU wheel without a GPU)"
  echo "# before everything else. The pin has no local label, so +cpu and CUDA builds both satisfy it."
  echo "$pins" | grep -E '^torch=='
  echo "$pins" | grep -v -E '^torch=='
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "lock: wrote constraints.txt ($(grep -c '^[^#]' constraints.txt) pins) from $venv"
