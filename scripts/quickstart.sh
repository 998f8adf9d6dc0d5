#!/usr/bin/env bash
# Set up, build the tiny-model zoo, run the quickstart study, analyse it and write its report.
# Re-running resumes: finished cells are not run again.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false
OX=.venv/bin/oxstudy
after_install=$(date +%s)
$OX zoo build
$OX run specs/quickstart.yaml || echo "some cells failed; the report shows which"
$OX analyze studies/quickstart
$OX report studies/quickstart -o reports/quickstart.html
end=$(date +%s)
echo "quickstart: $((end - after_install)) s after install ($((end - start)) s in all); report: reports/quickstart.html"
