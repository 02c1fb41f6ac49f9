#!/usr/bin/env bash
# Unimodal references (sequence backbone; with one modality the calibrator is the identity).
#   bash scripts/train_unimodal.sh [SEED] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-results/unimodal}
EXTRA=("${@:3}")
for m in inertial skeleton depth; do
  precal train "${UTD[@]}" "${COMMON[@]}" --seed "$SEED" --modalities "$m" --out "$OUT/uni_utd_mhad_${m}_seed${SEED}" "${EXTRA[@]}"
done
for m in audio lips; do
  precal train "${AVL[@]}" "${COMMON[@]}" --seed "$SEED" --modalities "$m" --out "$OUT/uni_avletters_${m}_seed${SEED}" "${EXTRA[@]}"
done
