#!/usr/bin/env bash
# Trains the 8 shipped checkpoints: {UTD-MHAD, AVLetters} x {sequence, conv} x {calibration on, off}.
#   bash scripts/train_all.sh [SEED] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-checkpoints}
for backbone in sequence conv; do
  for cal in on off; do
    precal train "${UTD[@]}" "${COMMON[@]}" --seed "$SEED" --backbone "$backbone" --calibration "$cal" \
      --out "$OUT/utd_mhad_${backbone}_cal${cal}"
    precal train "${AVL[@]}" "${COMMON[@]}" --seed "$SEED" --backbone "$backbone" --calibration "$cal" \
      --out "$OUT/avletters_${backbone}_cal${cal}"
  done
done
