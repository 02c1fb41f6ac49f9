#!/usr/bin/env bash
# Trains the 8 shipped checkpoints: {UTD-MHAD, AVLetters} x {sequence, conv} x {calibration on, off}.
#   bash scripts/train_all.sh [SEED] [OUT_DIR] [EXTRA PRECAL TRAIN ARGS...]
# VARIANTS="on off self" adds the self-gate control (gates from each modality's own summary,
# *_calself); VARIANTS="on" trains the calibrated models only.
# Extra arguments are appended to every run (e.g. "--swap-augment 0" for the ablation, or
# "--threads 1" when two runs share the machine); DATASETS="utd_mhad" restricts the data sets.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEED=${1:-0}
OUT=${2:-checkpoints}
EXTRA=("${@:3}")
VARIANTS=${VARIANTS:-"on off"}
for dataset in $DATASETS; do
  args=$(recipe "$dataset")  # fails (and stops the script) on an unknown data set
  mapfile -t DATA <<<"$args"
  for backbone in sequence conv; do
    for cal in $VARIANTS; do
      case "$cal" in
        on|off) flags=(--calibration "$cal" "${SHIPPED_EVIDENCE[@]}") ;;
        self) flags=(--calibration on --gate self) ;;  # the control: gates from the own summary only
        *) echo "unknown variant $cal (on, off or self)" >&2; exit 2 ;;
      esac
      precal train "${DATA[@]}" "${COMMON[@]}" --seed "$SEED" --backbone "$backbone" "${flags[@]}" \
        --out "$OUT/${dataset}_${backbone}_cal${cal}" --overwrite "${EXTRA[@]}"
    done
  done
done
