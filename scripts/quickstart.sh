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
$OX zoo build -j 2
t_zoo=$(date +%s)
$OX run specs/quickstart.yaml || echo "some cells failed; the report shows which"
t_cells=$(date +%s)
$OX analyze studies/quickstart
t_analyze=$(date +%s)
$OX report studies/quickstart -o reports/quickstart.html
end=$(date +%s)
echo "quickstart: $((end - after_install)) s after install ($((end - start)) s in all): zoo build $((t_zoo - after_install)) s," \
  "cells $((t_cells - t_zoo)) s, analysis $((t_analyze - t_cells)) s, report $((end - t_analyze)) s; report: reports/quickstart.html"
