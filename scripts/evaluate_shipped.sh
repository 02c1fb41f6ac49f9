#!/usr/bin/env bash
# After training the shipped checkpoints: test metrics (eval_test.json) for every one and the full
# robustness sweep (robustness.csv, what the dashboard plots) for every calibrated/baseline pair.
#   bash scripts/evaluate_shipped.sh [CHECKPOINT_GLOB]     (default: checkpoints/*_cal*)
set -euo pipefail
cd "$(dirname "$0")/.."
GLOB=${1:-"checkpoints/*_cal*"}
for ck in $GLOB; do
  precal evaluate "$ck"
  if [[ "$ck" == *_calon && -d "${ck%_calon}_caloff" ]]; then
    precal robustness "$ck" "${ck%_calon}_caloff" --baseline "${ck%_calon}_caloff" --out "$ck/robustness.csv" \
      --overwrite
    rm -f "$ck/robustness.summary.csv"  # the dashboard and experiments/robustness_report.py summarise the table
  fi
done
