#!/usr/bin/env bash
# Augmentation ablation: the shipped recipe *without* swap augmentation, calibrated and baseline,
# for UTD-MHAD/sequence and AVLetters/conv and /sequence. Seed 0 is shipped in checkpoints/
# (*_noswap_cal*), so the dashboard can show both recipes; experiments/ablation_report.py compares
# them over seeds.
#   bash scripts/train_ablation.sh [SEED] [OUT_DIR] [EXTRA PRECAL TRAIN ARGS...]
# BACKBONES="sequence" restricts the backbones (a backbone a data set has no ablation for is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-checkpoints}
EXTRA=("${@:3}")
declare -A ABLATED=([utd_mhad]="sequence" [avletters]="conv sequence")
for dataset in $DATASETS; do
  args=$(recipe "$dataset")  # fails (and stops the script) on an unknown data set
  mapfile -t DATA <<<"$args"
  for backbone in ${ABLATED[$dataset]}; do
    [[ " ${BACKBONES:-sequence conv} " == *" $backbone "* ]] || continue
    for cal in on off; do
      precal train "${DATA[@]}" "${COMMON[@]}" --swap-augment 0 --seed "$SEED" --backbone "$backbone" \
        --calibration "$cal" "${SHIPPED_EVIDENCE[@]}" --out "$OUT/${dataset}_${backbone}_noswap_cal${cal}" --overwrite "${EXTRA[@]}"
    done
  done
done
