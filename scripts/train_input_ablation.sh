#!/usr/bin/env bash
# Input-representation ablation on UTD-MHAD: the shipped recipe with the earlier inputs (per-frame
# depth trunk, skeletons in camera coordinates), every backbone x calibration and the unimodal
# skeleton and depth models, at the 40-epoch budget. Metrics, config and history of every run are
# folded into the store results/input_ablation/runs (experiments/results_store.py);
# experiments/evidence.py compares them with results/input_ablation/current/ (the current inputs, also 40
# epochs: the evidence runs from before UTD-MHAD's budget became 60 epochs).
#   bash scripts/train_input_ablation.sh [SEED] [EXTRA PRECAL TRAIN ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
EXTRA=("${@:2}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=results/input_ablation/runs
PREVIOUS=("${UTD_DATA[@]}" --frame-encoder frames --epochs 40)
run() {  # run NAME ARGS...
  local name=$1; shift
  precal train "${PREVIOUS[@]}" "${COMMON[@]}" --seed "$SEED" --out "$WORK/$name" "$@" "${EXTRA[@]}"
  mkdir -p "$WORK/kept/$name"
  cp "$WORK/$name"/{metrics.json,config.json,history.json} "$WORK/kept/$name/"
  python -m experiments.results_store compact "$OUT" --add "$WORK/kept/$name" >/dev/null
}
for backbone in sequence conv; do
  for cal in on off; do run "utd_mhad_${backbone}_cal${cal}_seed${SEED}" --backbone "$backbone" --calibration "$cal" "${SHIPPED_EVIDENCE[@]}"; done
done
for m in inertial skeleton depth; do run "uni_utd_mhad_${m}_seed${SEED}" --modalities "$m"; done
