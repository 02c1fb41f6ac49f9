# Shared training recipe of every shipped and evidence run (sourced by the other scripts):
# same budget, optimiser and augmentation for calibrated, baseline and unimodal models.
# Swap augmentation is a no-op for unimodal models (nothing to swap against).
COMMON=(--batch-size 32 --lr 3e-3 --modality-dropout 0.4 --noise-augment 0.2 --swap-augment 0.2
        --threads 2 --quiet)
# Evidence centring of the shipped calibrated models and their evidence runs: capped (a learned share
# of at most one half), the default of precal train for monotone gates; pinned here so that the
# scripts reproduce what ships if the default changes. Not for the self-gate or free gates (absolute
# only).
SHIPPED_EVIDENCE=(--evidence capped)
# Input representation. UTD-MHAD: skeletons relative to the first frame's hip, depth through the
# motion-energy trunk (both transfer across subjects; README "Input representation"). AVLetters:
# lips through the per-frame trunk, which keeps the frame-by-frame timing that lines up with audio.
UTD_DATA=(--data sample_data/utd_mhad --length inertial=96 --length skeleton=48 --length depth=16)
# Budget (epochs) per data set, the same for every model of it. UTD-MHAD: 60, chosen on the inner
# cross-subject folds (README "Inner cross-subject folds"); AVLetters: 40.
# The encoders also see joint velocities and the IMU's |acc| and |gyro| (derived inside the model:
# README "Derived inputs"), chosen on the inner folds.
# Both data sets train on train+val and keep the final epoch (below). UTD-MHAD's validation split
# (trial 4 of the training subjects) reads 100% for every fused model, so it cannot choose an
# epoch; on the inner folds training on it too is worth +0.3 to +2.4 points (README "Inner
# cross-subject folds").
UTD=("${UTD_DATA[@]}" --centre skeleton=hip_center --frame-encoder motion --epochs 60
     --velocity skeleton --norms inertial=0-2,3-5 --train-split train+val --selection last)
AVL_DATA=(--data sample_data/avletters --length audio=48 --length lips=20 --frame-encoder frames --epochs 40)
# AVLetters trains on train+val and keeps the final epoch of the 40: on the inner repetition folds
# the extra quarter of data is worth about 7 points to every model, and its validation split ranks
# models unlike the test split (README "Inner repetition folds").
AVL=("${AVL_DATA[@]}" --train-split train+val --selection last)
# Which data sets the training scripts cover (override: DATASETS="utd_mhad" bash scripts/...).
DATASETS=${DATASETS:-"utd_mhad avletters"}
recipe() {  # recipe DATASET -> the data set's arguments, one per line
  case "$1" in
    utd_mhad) printf '%s\n' "${UTD[@]}" ;;
    avletters) printf '%s\n' "${AVL[@]}" ;;
    *) echo "unknown data set $1" >&2; return 1 ;;
  esac
}
