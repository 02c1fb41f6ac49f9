# Shared training recipe of every shipped and evidence run (sourced by the other scripts):
# same budget, optimiser and augmentation for calibrated, baseline and unimodal models.
# Swap augmentation is a no-op for unimodal models (nothing to swap against).
COMMON=(--epochs 40 --batch-size 32 --lr 3e-3 --modality-dropout 0.4 --noise-augment 0.2 --swap-augment 0.2
        --threads 2 --quiet)
UTD=(--data sample_data/utd_mhad --length inertial=96 --length skeleton=48 --length depth=16)
AVL=(--data sample_data/avletters --length audio=48 --length lips=20)
