#!/usr/bin/env bash
# Trains the 8 shipped checkpoints: {UTD-MHAD, AVLetters} x {sequence, conv} x {calibration on, off}.
#   bash scripts/train_all.sh [SEED] [OUT_DIR] [EXTRA PRECAL TRAIN ARGS...]
# Extra arguments are appended to every run (e.g. "--swap-augment 0" for the ablation, or
# "--threads 1" when two runs share the machine); DATASETS="utd_mhad" restricts the data sets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-checkpoints}
EXTRA=("${@:3}")
for dataset in $DATASETS; do
  args=$(recipe "$dataset")  # fails (and stops the script) on an unknown data set
  mapfile -t DATA <<<"$args"
  for backbone in sequence conv; do
    for cal in on off; do
      precal train "${DATA[@]}" "${COMMON[@]}" --seed "$SEED" --backbone "$backbone" --calibration "$cal" \
        --out "$OUT/${dataset}_${backbone}_cal${cal}" --overwrite "${EXTRA[@]}"
    done
  done
done
