#!/usr/bin/env bash
# Trains the 8 shipped checkpoints: {UTD-MHAD, AVLetters} x {sequence, conv} x {calibration on, off}.
# Calibrated and baseline runs use the same data, seed, budget and augmentation.
#   bash scripts/train_all.sh [SEED] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SEED=${1:-0}
OUT=${2:-checkpoints}
COMMON=(--seed "$SEED" --epochs 40 --batch-size 32 --lr 3e-3 --modality-dropout 0.2 --noise-augment 0.2 --threads 2)
UTD=(--data sample_data/utd_mhad --length inertial=96 --length skeleton=48 --length depth=16)
AVL=(--data sample_data/avletters --length audio=48 --length lips=24)
for backbone in sequence conv; do
  for cal in on off; do
    precal train "${UTD[@]}" --backbone "$backbone" --calibration "$cal" "${COMMON[@]}" --out "$OUT/utd_mhad_${backbone}_cal${cal}"
    precal train "${AVL[@]}" --backbone "$backbone" --calibration "$cal" "${COMMON[@]}" --out "$OUT/avletters_${backbone}_cal${cal}"
  done
done
