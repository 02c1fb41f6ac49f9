#!/usr/bin/env bash
# Train the model of examples/own_model/my_model.py on UTD-MHAD with precal's loop (task loss, the
# calibrator's contrastive cue objective, swap augmentation), then evaluate the checkpoint.
#   bash examples/own_model/train.sh [OUT]        (default: checkpoints_own/utd_mhad_own; a few minutes)
# PYTHON names the interpreter that has precal (default: python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-checkpoints_own/utd_mhad_own}
PY=${PYTHON:-python3}
MODEL=examples/own_model/my_model.py:build
"$PY" -m precal train --model "$MODEL" --data sample_data/utd_mhad --out "$OUT" --overwrite --quiet \
  --length inertial=96 --length skeleton=48 --length depth=16 --centre skeleton=hip_center \
  --epochs 30 --modality-dropout 0.2 --swap-augment 0.2
"$PY" -m precal evaluate --model "$MODEL" "$OUT"
