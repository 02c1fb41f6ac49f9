#!/usr/bin/env bash
# Inner cross-subject fold of UTD-MHAD (see scripts/inner_fold.py): every design variant, several
# seeds, metrics kept in results/inner_fold/<variant>_seed<N>/, then the README section.
#   bash scripts/inner_fold.sh ["0 1"] [EXTRA PRECAL TRAIN ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEEDS=${1:-"0 1"}
EXTRA=("${@:2}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python scripts/inner_fold.py split "$WORK/data"
OUT=results/inner_fold
INPUTS=(--centre skeleton=hip_center --frame-encoder motion)
declare -A ARGS=(
  [inertial]="--modalities inertial"
  [skeleton_camera]="--modalities skeleton"
  [skeleton_hip]="--modalities skeleton --centre skeleton=hip_center"
  [depth_frames]="--modalities depth --frame-encoder frames"
  [depth_motion]="--modalities depth --frame-encoder motion"
  [fused_previous_off]="--calibration off --frame-encoder frames"
  [fused_off]="--calibration off ${INPUTS[*]}"
  [fused_on]="--calibration on ${INPUTS[*]}"
  [fused_on_aux0]="--calibration on --aux-weight 0 ${INPUTS[*]}"
  [fused_on_nocuegrad]="--calibration on --cue-gradient off ${INPUTS[*]}"
  [fused_off_noswap]="--calibration off --swap-augment 0 ${INPUTS[*]}"
  [fused_on_noswap]="--calibration on --swap-augment 0 ${INPUTS[*]}"
)
for seed in $SEEDS; do
  for name in "${!ARGS[@]}"; do
    # shellcheck disable=SC2206  # the variant's arguments are split on purpose
    variant=(${ARGS[$name]})
    precal train "${UTD_DATA[@]}" --data "$WORK/data" "${COMMON[@]}" --backbone sequence --seed "$seed" \
      "${variant[@]}" --out "$WORK/$name" "${EXTRA[@]}"
    mkdir -p "$OUT/${name}_seed$seed"
    cp "$WORK/$name"/{metrics.json,config.json} "$OUT/${name}_seed$seed/"
  done
done
python scripts/inner_fold.py report
