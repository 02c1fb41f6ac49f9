#!/usr/bin/env bash
# Unimodal references (sequence backbone; with one modality the calibrator is the identity).
#   bash scripts/train_unimodal.sh [SEED] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-results/unimodal}
EXTRA=("${@:3}")
declare -A MODALITIES=([utd_mhad]="inertial skeleton depth" [avletters]="audio lips")
for dataset in $DATASETS; do
  args=$(recipe "$dataset")  # fails (and stops the script) on an unknown data set
  mapfile -t DATA <<<"$args"
  for m in ${MODALITIES[$dataset]}; do
    precal train "${DATA[@]}" "${COMMON[@]}" --seed "$SEED" --modalities "$m" \
      --out "$OUT/uni_${dataset}_${m}_seed${SEED}" --overwrite "${EXTRA[@]}"
  done
done
