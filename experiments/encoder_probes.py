"""Does training with the calibrator make the encoders worse? Per-modality probes, calibrated vs baseline.

The calibrated models lose some clean test accuracy against their baselines, and switching the
calibrator off on the same weights does not give it back (experiments.cue_shift): the difference is
in what the network learned. This script asks where: for every (calibrated, baseline) pair trained
with the same recipe and seed, a linear probe per modality on the encoder's summary (the features
*before* the calibrator), fitted on the training split and read on the test split. If training with
the calibrator weakened an encoder (a damped modality gets less gradient), its probe falls; if the
probes hold while the fused accuracy falls, the difference is in how fusion and head use them.

    python -m experiments.encoder_probes ROOT [ROOT ...] > results/gates/encoder_probes.txt

Each ROOT holds checkpoint folders named ``<data set>_<backbone>_calon`` and ``..._caloff`` (the
shipped ``checkpoints/`` is seed 0; ``bash scripts/train_all.sh SEED OUT`` writes the others).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Dict, List

import torch
from sklearn.linear_model import LogisticRegression

from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.inference import predict

ROOT = Path(__file__).resolve().parents[1]
FUSED = "fused"


def probe_accuracies(folder: Path) -> Dict[str, float]:
    """Test accuracy of a linear probe on each modality's encoder summary, and of the model."""
    ckpt = load_checkpoint(folder)
    data = load_dataset(resolve_data_dir(ckpt, search=[ROOT / "sample_data"]))
    model = ckpt.model.eval()
    train = predict(model, dataset_for(ckpt, data, "train").full_batch())
    test = predict(model, dataset_for(ckpt, data, "test").full_batch())
    out = {}
    for m in test.modalities:
        probe = LogisticRegression(max_iter=3000).fit(train.summaries_before[m], train.labels)
        out[m] = float((probe.predict(test.summaries_before[m]) == test.labels).mean())
    out[FUSED] = float((test.predicted == test.labels).mean())
    return out


def _cell(values: List[float]) -> str:
    spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{100 * statistics.mean(values):.1f}{spread}"


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", type=Path, help="folders of calon/caloff checkpoint pairs (one per seed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    for root in args.roots:
        for calibrated in sorted(root.glob("*_calon")):
            baseline = calibrated.with_name(calibrated.name[: -len("_calon")] + "_caloff")
            if not baseline.is_dir():
                continue
            pair = calibrated.name[: -len("_calon")]
            on, off = probe_accuracies(calibrated), probe_accuracies(baseline)
            print(f"# {root}/{pair}: " + ", ".join(f"{m} {100 * on[m]:.1f} vs {100 * off[m]:.1f}" for m in on),
                  flush=True)
            for m in on:
                cell = rows.setdefault(pair, {}).setdefault(m, {"on": [], "off": [], "diff": []})
                cell["on"].append(on[m])
                cell["off"].append(off[m])
                cell["diff"].append(on[m] - off[m])
    print("\n| pair | modality | calibrated (%) | baseline (%) | paired change (points) | seeds |")
    print("|---|---|---|---|---|---|")
    for pair, modalities in rows.items():
        for m, cell in modalities.items():
            what = "the fused model" if m == FUSED else m
            diff = cell["diff"]
            spread = f" ± {100 * statistics.stdev(diff):.1f}" if len(diff) > 1 else ""
            print(f"| {pair} | {what} | {_cell(cell['on'])} | {_cell(cell['off'])} | "
                  f"{100 * statistics.mean(diff):+.1f}{spread} | {len(diff)} |")


if __name__ == "__main__":
    sys.exit(main())
