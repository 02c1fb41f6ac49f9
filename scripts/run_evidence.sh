#!/usr/bin/env bash
# Evidence runs: every data set x backbone x calibration, plus unimodal models, for several seeds,
# with the recipe of the shipped checkpoints (scripts/recipes.sh: same data, budget, augmentation).
# Seed 0 of the multimodal models is the shipped checkpoints themselves. Each run's metrics.json,
# config.json, history.json and test predictions are kept in results/runs/<run>/ (weights are not
# kept), then experiments/evidence.py rebuilds the table in the README and experiments/error_analysis.py the
# UTD-MHAD error analysis.
#   bash scripts/run_evidence.sh "0 1 2 3 4" [EXTRA PRECAL TRAIN ARGS...]    (the README's table: five seeds)
# EXTRA goes to every run (e.g. "--threads 1" when two of these share the machine); DATASETS as in
# scripts/recipes.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4"}
EXTRA=("${@:2}")
WORK=${WORK:-$(mktemp -d)}
keep() {  # keep_run SRC_DIR RUN_NAME: metrics, config, history and the test predictions
  mkdir -p "results/runs/$2"
  cp "$1"/{metrics.json,config.json,history.json} "results/runs/$2/"
  python -m experiments.error_analysis store "$1" "results/runs/$2" >/dev/null
}
for seed in $SEEDS; do
  if [ "$seed" = 0 ] && [ -d checkpoints/utd_mhad_sequence_calon ]; then
    src=checkpoints
  else
    src="$WORK/seed$seed"
    bash scripts/train_all.sh "$seed" "$src" "${EXTRA[@]}"
  fi
  for ck in "$src"/*_cal*; do
    [[ "$ck" == *_noswap_* ]] && continue  # the augmentation ablation has its own report
    keep "$ck" "$(basename "$ck")_seed$seed"
  done
  bash scripts/train_unimodal.sh "$seed" "$WORK/uni" "${EXTRA[@]}"
  for ck in "$WORK"/uni/uni_*_seed"$seed"; do keep "$ck" "$(basename "$ck")"; done
done
python -m experiments.evidence
python -m experiments.error_analysis report
