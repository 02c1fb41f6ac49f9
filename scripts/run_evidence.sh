#!/usr/bin/env bash
# Evidence runs: every data set x backbone x calibration, plus unimodal models, for several seeds,
# with the same command, data, budget and augmentation as the shipped checkpoints. Each run's
# metrics.json + config.json + history.json are kept in results/runs/ (weights are not kept).
#   bash scripts/run_evidence.sh "0 1 2"
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
WORK=${WORK:-$(mktemp -d)}
mkdir -p results/runs
keep() {  # keep the small result files of a trained checkpoint
  mkdir -p "results/runs/$1"
  cp "$WORK/$1"/{metrics.json,config.json,history.json} "results/runs/$1/"
}
for seed in $SEEDS; do
  bash scripts/train_all.sh "$seed" "$WORK"
  for f in "$WORK"/*_cal*; do
    name=$(basename "$f"); [ -d "$f" ] || continue
    [[ "$name" == *_seed* ]] && continue
    mv "$f" "$WORK/${name}_seed${seed}"; keep "${name}_seed${seed}"
  done
  bash scripts/train_unimodal.sh "$seed" "$WORK"
  for f in "$WORK"/uni_*_seed"$seed"; do keep "$(basename "$f")"; done
done
python scripts/evidence.py
