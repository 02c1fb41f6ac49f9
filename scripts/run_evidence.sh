#!/usr/bin/env bash
# Evidence runs: every data set x backbone x {calibrated, self-gate control, baseline}, plus unimodal
# models, for several seeds, with the recipe of the shipped checkpoints (scripts/recipes.sh: same
# data, budget, augmentation). Seed 0 of the calibrated and baseline models is the shipped
# checkpoints themselves. Each run's metrics.json, config.json, history.json, test predictions and,
# for gated models, its swap sweep (swap.csv) are gathered in a folder named after the run and folded
# into the store results/runs (experiments/results_store.py; weights are not kept); then
# experiments/evidence.py, experiments/gate_report.py and experiments/error_analysis.py rebuild the
# tables of the README and docs/results/.
#   bash scripts/run_evidence.sh "0 1 2 3 4" [EXTRA PRECAL TRAIN ARGS...]    (the README's table: five seeds)
# EXTRA goes to every run (e.g. "--threads 1" when two of these share the machine); DATASETS as in
# scripts/recipes.sh. VARIANTS="on" retrains and replaces only the calibrated runs (after a change
# to the calibrator: the baselines, self-gate controls and unimodal models do not depend on it); its
# seed 0 is the shipped checkpoints/*_calon as they are, so retrain those first
# (VARIANTS=on bash scripts/train_all.sh, then bash scripts/evaluate_shipped.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2 3 4"}
EXTRA=("${@:2}")
WORK=${WORK:-$(mktemp -d)}
keep() {  # keep SRC_DIR RUN_NAME: metrics, config, history, test predictions, swap sweep -> results/runs
  local run="$WORK/kept/$2"  # written outside results/, so a half-written run is never in the store
  rm -rf "$run"
  mkdir -p "$run"
  cp "$1"/{metrics.json,config.json,history.json} "$run/"
  python -m experiments.error_analysis store "$1" "$run" >/dev/null
  if [[ "$1" != *_caloff ]]; then
    precal robustness "$1" --corruptions swap --severities 1 --out "$run/swap.csv" --overwrite >/dev/null
  fi
  python -m experiments.results_store compact results/runs --add "$run" >/dev/null
}
VARIANTS=${VARIANTS:-"on off self"}
for cal in $VARIANTS; do  # refused before anything is trained
  [[ $cal == on || $cal == off || $cal == self ]] || { echo "unknown variant $cal (on, off or self)" >&2; exit 2; }
done
for seed in $SEEDS; do
  sources=()
  trained=()
  for cal in $VARIANTS; do
    if [ "$seed" = 0 ] && [ -d checkpoints/utd_mhad_sequence_calon ] && [[ $cal != self ]]; then
      sources+=(checkpoints/*_cal"$cal")  # seed 0 of the calibrated and baseline models is the shipped checkpoints
    else
      trained+=("$cal")
    fi
  done
  if ((${#trained[@]})); then
    VARIANTS="${trained[*]}" bash scripts/train_all.sh "$seed" "$WORK/seed$seed" "${EXTRA[@]}"
    for cal in "${trained[@]}"; do sources+=("$WORK/seed$seed"/*_cal"$cal"); done
  fi
  for ck in "${sources[@]}"; do keep "$ck" "$(basename "$ck")_seed$seed"; done
  if [[ " $VARIANTS " == *" off "* ]]; then  # the unimodal references go with the baselines
    bash scripts/train_unimodal.sh "$seed" "$WORK/uni" "${EXTRA[@]}"
    for ck in "$WORK"/uni/uni_*_seed"$seed"; do keep "$ck" "$(basename "$ck")"; done
  fi
done
python -m experiments.evidence
python -m experiments.gate_report
python -m experiments.error_analysis report
