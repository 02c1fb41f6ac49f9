#!/usr/bin/env bash
# Inner folds (see experiments/inner_fold.py): design variants, several seeds, metrics and config of
# each run <variant>_held<S>_seed<N> folded into the store results/inner_fold (UTD-MHAD, held-out
# subject S) or results/inner_fold_avletters (DATASET=avletters, held-out repetition S; see
# experiments/results_store.py), then the README section.
#   bash scripts/inner_fold.sh ["0 1"] [EXTRA PRECAL TRAIN ARGS...]
# HELD_OUT="7 1 3 5" picks the held-out training subjects (default 7; AVLetters: "1 2", the
# default), VARIANTS="fused_on fused_off" the variants (default all). SWEEP=1 also sweeps every run's
# model over the corruptions at severities 3-5 on the held-out unit (precal robustness; the run's
# sweep.csv), for the report's "accuracy kept under corruption".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/recipes.sh
SEEDS=${1:-"0 1"}
EXTRA=("${@:2}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
DATASET=${DATASET:-utd_mhad}
if [[ $DATASET == avletters ]]; then
OUT=results/inner_fold_avletters
DATA_ARGS=("${AVL_DATA[@]}")  # AVLetters inputs and budget; the variants say how to fit and select
BUDGET=()
DEFAULT_HELD_OUT="1 2"
declare -A ARGS=(
  [fused_off]="--calibration off"
  [fused_on]="--calibration on"
  [fused_off_noswap]="--calibration off --swap-augment 0"
  [fused_on_noswap]="--calibration on --swap-augment 0"
  [conv_off]="--backbone conv --calibration off"
  [conv_on]="--backbone conv --calibration on"
  [fused_off_md0]="--calibration off --modality-dropout 0"
  [fused_on_md0]="--calibration on --modality-dropout 0"
  [fused_off_md07]="--calibration off --modality-dropout 0.7"
  [fused_on_md07]="--calibration on --modality-dropout 0.7"
  [audio]="--modalities audio"
  [lips]="--modalities lips"
  [lips_diffs]="--modalities lips --frame-encoder frame-diffs"
  [fused_off_diffs]="--calibration off --frame-encoder frame-diffs"
  [fused_off_trainval]="--calibration off --train-split train+val --selection last"
  [fused_on_trainval]="--calibration on --train-split train+val --selection last"
  [fused_off_last]="--calibration off --selection last"
  [fused_on_last]="--calibration on --selection last"
  [conv_off_trainval]="--backbone conv --calibration off --train-split train+val --selection last"
  [conv_on_trainval]="--backbone conv --calibration on --train-split train+val --selection last"
  [audio_trainval]="--modalities audio --train-split train+val --selection last"
  [lips_trainval]="--modalities lips --train-split train+val --selection last"
  [fused_on_diffs]="--calibration on --frame-encoder frame-diffs"
  [fused_off_trainval_noswap]="--calibration off --train-split train+val --selection last --swap-augment 0"
  [fused_on_trainval_noswap]="--calibration on --train-split train+val --selection last --swap-augment 0"
  [fused_on_monotone]="--calibration on --gate monotone --evidence absolute --train-split train+val --selection last"
  [fused_on_monotone_cgoff]="--calibration on --gate monotone --evidence absolute --cue-gradient off --train-split train+val --selection last"
  [conv_on_monotone]="--backbone conv --calibration on --gate monotone --evidence absolute --train-split train+val --selection last"
  [conv_on_monotone_cgoff]="--backbone conv --calibration on --gate monotone --evidence absolute --cue-gradient off --train-split train+val --selection last"
  [conv_on_monotone_margin1]="--backbone conv --calibration on --gate monotone --evidence absolute --evidence-margin 1 --train-split train+val --selection last"
  [conv_on_monotone_learned]="--backbone conv --calibration on --gate monotone --evidence learned --train-split train+val --selection last"
  [fused_on_monotone_learned]="--calibration on --gate monotone --evidence learned --train-split train+val --selection last"
  [conv_on_monotone_capped]="--backbone conv --calibration on --gate monotone --evidence capped --train-split train+val --selection last"
  [fused_on_monotone_capped]="--calibration on --gate monotone --evidence capped --train-split train+val --selection last"
  [conv_on_monotone_capped_typ]="--backbone conv --calibration on --gate monotone --evidence capped --typicality on --train-split train+val --selection last"
  [fused_on_monotone_capped_typ]="--calibration on --gate monotone --evidence capped --typicality on --train-split train+val --selection last"
  [conv_off_rerun]="--backbone conv --calibration off --train-split train+val --selection last"
)
else
OUT=results/inner_fold
DATA_ARGS=("${UTD_DATA[@]}")
DEFAULT_HELD_OUT=7
INPUTS=(--centre skeleton=hip_center --frame-encoder motion)
BUDGET=(--epochs 40)  # what the variants are compared at; the *_ep60 variants give the 60-epoch budget
ROTATE15=(--rotate-augment inertial=15 --rotate-augment skeleton=15)
ROTATE30=(--rotate-augment inertial=30 --rotate-augment skeleton=30)
SCALE=(--scale skeleton=hip_center:shoulder_center)
DERIVED=(--velocity skeleton --norms inertial=0-2,3-5)
SHEAR02=(--shear-augment inertial=0.2 --shear-augment skeleton=0.2)
SKELETON_SHEAR02=(--shear-augment skeleton=0.2)
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
  [fused_off_ep60]="--calibration off --epochs 60 ${INPUTS[*]}"
  [fused_on_ep60]="--calibration on --epochs 60 ${INPUTS[*]}"
  [fused_off_ep60_noswap]="--calibration off --epochs 60 --swap-augment 0 ${INPUTS[*]}"
  [fused_on_ep60_noswap]="--calibration on --epochs 60 --swap-augment 0 ${INPUTS[*]}"
  [fused_off_ep80]="--calibration off --epochs 80 ${INPUTS[*]}"
  [fused_on_ep80]="--calibration on --epochs 80 ${INPUTS[*]}"
  [fused_off_ep60_unimodal]="--calibration off --epochs 60 --unimodal-loss 0.5 ${INPUTS[*]}"
  [fused_on_ep60_unimodal]="--calibration on --epochs 60 --unimodal-loss 0.5 ${INPUTS[*]}"
  [fused_off_ep60_rot15]="--calibration off --epochs 60 ${ROTATE15[*]} ${INPUTS[*]}"
  [fused_on_ep60_rot15]="--calibration on --epochs 60 ${ROTATE15[*]} ${INPUTS[*]}"
  [fused_off_ep60_rot30]="--calibration off --epochs 60 ${ROTATE30[*]} ${INPUTS[*]}"
  [fused_on_ep60_rot30]="--calibration on --epochs 60 ${ROTATE30[*]} ${INPUTS[*]}"
  [fused_off_ep60_avg20]="--calibration off --epochs 60 --average-epochs 20 ${INPUTS[*]}"
  [fused_on_ep60_avg20]="--calibration on --epochs 60 --average-epochs 20 ${INPUTS[*]}"
  [fused_off_ep60_drop03]="--calibration off --epochs 60 --dropout 0.3 ${INPUTS[*]}"
  [fused_on_ep60_drop03]="--calibration on --epochs 60 --dropout 0.3 ${INPUTS[*]}"
  [fused_off_ep60_late]="--calibration off --epochs 60 --backbone late ${INPUTS[*]}"
  [fused_on_ep60_late]="--calibration on --epochs 60 --backbone late ${INPUTS[*]}"
  [fused_off_ep60_swap04]="--calibration off --epochs 60 --swap-augment 0.4 ${INPUTS[*]}"
  [fused_on_ep60_swap04]="--calibration on --epochs 60 --swap-augment 0.4 ${INPUTS[*]}"
  [fused_off_ep60_scale]="--calibration off --epochs 60 ${SCALE[*]} ${INPUTS[*]}"
  [fused_on_ep60_scale]="--calibration on --epochs 60 ${SCALE[*]} ${INPUTS[*]}"
  [fused_off_ep60_dim128]="--calibration off --epochs 60 --dim 128 ${INPUTS[*]}"
  [fused_on_ep60_dim128]="--calibration on --epochs 60 --dim 128 ${INPUTS[*]}"
  [fused_off_ep60_rec03]="--calibration off --epochs 60 --recombine-augment 0.3 ${INPUTS[*]}"
  [fused_on_ep60_rec03]="--calibration on --epochs 60 --recombine-augment 0.3 ${INPUTS[*]}"
  [fused_off_ep60_bs16]="--calibration off --epochs 60 --batch-size 16 ${INPUTS[*]}"
  [fused_on_ep60_bs16]="--calibration on --epochs 60 --batch-size 16 ${INPUTS[*]}"
  [fused_off_ep60_time]="--calibration off --epochs 60 --time-augment 0.5 ${INPUTS[*]}"
  [fused_on_ep60_time]="--calibration on --epochs 60 --time-augment 0.5 ${INPUTS[*]}"
  [fused_off_ep60_trainval]="--calibration off --epochs 60 --train-split train+val --selection last ${INPUTS[*]}"
  [fused_on_ep60_trainval]="--calibration on --epochs 60 --train-split train+val --selection last ${INPUTS[*]}"
  [depth_motion_ep60]="--modalities depth --frame-encoder motion --epochs 60"
  [depth_motion_ep60_len32]="--modalities depth --frame-encoder motion --epochs 60 --length depth=32"
  [fused_off_ep60_score]="--calibration off --epochs 60 --backbone score --unimodal-loss 1 ${INPUTS[*]}"
  [fused_on_ep60_score]="--calibration on --epochs 60 --backbone score --unimodal-loss 1 ${INPUTS[*]}"
  [skeleton_hip_ep60]="--modalities skeleton --centre skeleton=hip_center --epochs 60"
  [skeleton_joints_ep60]="--modalities skeleton --centre skeleton=hip_center --epochs 60 --point-encoder joints"
  [fused_off_ep60_joints]="--calibration off --epochs 60 --point-encoder joints ${INPUTS[*]}"
  [fused_on_ep60_joints]="--calibration on --epochs 60 --point-encoder joints ${INPUTS[*]}"
  [fused_off_ep60_mix03]="--calibration off --epochs 60 --mixup 0.3 ${INPUTS[*]}"
  [fused_on_ep60_mix03]="--calibration on --epochs 60 --mixup 0.3 ${INPUTS[*]}"
  [fused_off_ep60_md07]="--calibration off --epochs 60 --modality-dropout 0.7 ${INPUTS[*]}"
  [fused_on_ep60_md07]="--calibration on --epochs 60 --modality-dropout 0.7 ${INPUTS[*]}"
  [inertial_ep60]="--modalities inertial --epochs 60"
  [inertial_ep60_norms]="--modalities inertial --epochs 60 --norms inertial=0-2,3-5"
  [skeleton_hip_ep60_velocity]="--modalities skeleton --centre skeleton=hip_center --epochs 60 --velocity skeleton"
  [fused_off_ep60_rerun]="--calibration off --epochs 60 ${INPUTS[*]}"
  [fused_on_ep60_rerun]="--calibration on --epochs 60 ${INPUTS[*]}"
  [fused_off_ep60_derived]="--calibration off --epochs 60 ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived]="--calibration on --epochs 60 ${DERIVED[*]} ${INPUTS[*]}"
  [fused_off_ep60_derived_rot30]="--calibration off --epochs 60 ${DERIVED[*]} ${ROTATE30[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived_rot30]="--calibration on --epochs 60 ${DERIVED[*]} ${ROTATE30[*]} ${INPUTS[*]}"
  [conv_off_ep60_derived]="--backbone conv --calibration off --epochs 60 ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_ep60_derived]="--backbone conv --calibration on --epochs 60 ${DERIVED[*]} ${INPUTS[*]}"
  [conv_off_ep60_derived_noswap]="--backbone conv --calibration off --epochs 60 --swap-augment 0 ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_ep60_derived_noswap]="--backbone conv --calibration on --epochs 60 --swap-augment 0 ${DERIVED[*]} ${INPUTS[*]}"
  [inertial_ep60_norms_len160]="--modalities inertial --epochs 60 --norms inertial=0-2,3-5 --length inertial=160"
  [skeleton_hip_ep60_velocity_len64]="--modalities skeleton --centre skeleton=hip_center --epochs 60 --velocity skeleton --length skeleton=64"
  [skeleton_hip_ep60_velocity_shear02]="--modalities skeleton --centre skeleton=hip_center --epochs 60 --velocity skeleton --shear-augment skeleton=0.2"
  [skeleton_hip_ep60_velocity_shear04]="--modalities skeleton --centre skeleton=hip_center --epochs 60 --velocity skeleton --shear-augment skeleton=0.4"
  [inertial_ep60_norms_shear02]="--modalities inertial --epochs 60 --norms inertial=0-2,3-5 --shear-augment inertial=0.2"
  [fused_off_ep60_derived_shear02]="--calibration off --epochs 60 ${DERIVED[*]} ${SHEAR02[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived_shear02]="--calibration on --epochs 60 ${DERIVED[*]} ${SHEAR02[*]} ${INPUTS[*]}"
  [fused_off_ep60_derived_skshear02]="--calibration off --epochs 60 ${DERIVED[*]} ${SKELETON_SHEAR02[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived_skshear02]="--calibration on --epochs 60 ${DERIVED[*]} ${SKELETON_SHEAR02[*]} ${INPUTS[*]}"
  [fused_off_ep60_derived_uni03]="--calibration off --epochs 60 --unimodal-loss 0.3 ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived_uni03]="--calibration on --epochs 60 --unimodal-loss 0.3 ${DERIVED[*]} ${INPUTS[*]}"
  [fused_off_ep60_derived_trainval]="--calibration off --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_ep60_derived_trainval]="--calibration on --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_off_ep60_derived_trainval]="--backbone conv --calibration off --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_ep60_derived_trainval]="--backbone conv --calibration on --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone]="--calibration on --gate monotone --evidence absolute --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone_margin1]="--calibration on --gate monotone --evidence absolute --evidence-margin 1 --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone_learned]="--calibration on --gate monotone --evidence learned --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone_capped]="--calibration on --gate monotone --evidence capped --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone]="--backbone conv --calibration on --gate monotone --evidence absolute --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone_learned]="--backbone conv --calibration on --gate monotone --evidence learned --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone_capped]="--backbone conv --calibration on --gate monotone --evidence capped --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone_capped_typ]="--backbone conv --calibration on --gate monotone --evidence capped --typicality on --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone_capped_typ]="--calibration on --gate monotone --evidence capped --typicality on --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone_margin1]="--backbone conv --calibration on --gate monotone --evidence absolute --evidence-margin 1 --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [fused_on_monotone_cgoff]="--calibration on --gate monotone --evidence absolute --cue-gradient off --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
  [conv_on_monotone_cgoff]="--backbone conv --calibration on --gate monotone --evidence absolute --cue-gradient off --epochs 60 --train-split train+val --selection last ${DERIVED[*]} ${INPUTS[*]}"
)
fi
for held in ${HELD_OUT:-$DEFAULT_HELD_OUT}; do
  python -m experiments.inner_fold split "$WORK/data$held" "$held" "$DATASET"
  for seed in $SEEDS; do
    for name in ${VARIANTS:-"${!ARGS[@]}"}; do
      [[ -v "ARGS[$name]" ]] || { echo "unknown variant $name (known: ${!ARGS[*]})" >&2; exit 1; }
      # shellcheck disable=SC2206  # the variant's arguments are split on purpose
      variant=(${ARGS[$name]})
      precal train "${DATA_ARGS[@]}" --data "$WORK/data$held" "${COMMON[@]}" "${BUDGET[@]}" --backbone sequence \
        --seed "$seed" "${variant[@]}" --out "$WORK/$name" --overwrite "${EXTRA[@]}"  # its own temp folder
      run="$WORK/kept/${name}_held${held}_seed$seed"
      mkdir -p "$run"
      cp "$WORK/$name"/{metrics.json,config.json} "$run/"
      if [[ ${SWEEP:-0} == 1 ]]; then
        precal robustness "$WORK/$name" --severities 3 4 5 --out "$run/sweep.csv" --overwrite >/dev/null
        rm -f "$run/sweep.summary.csv"
      fi
      python -m experiments.results_store compact "$OUT" --add "$run" >/dev/null
    done
  done
done
python -m experiments.inner_fold report "$DATASET"
