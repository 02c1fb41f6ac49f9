#!/usr/bin/env bash
# Train the example model of examples/own_model/my_model.py on UTD-MHAD with precal's loop.
#   bash examples/own_model/train.sh [OUT]       (default checkpoints_own/utd_mhad_own)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-checkpoints_own/utd_mhad_own}
precal train --model examples/own_model/my_model.py:build --data sample_data/utd_mhad \
  --length inertial=96 --length skeleton=48 --length depth=16 --epochs 30 --out "$OUT" --overwrite
