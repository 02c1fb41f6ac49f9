"""Evidence modes compared on the real data sets: what centring the evidence over a sample's
modalities changes (``precal train --evidence relative|learned``, docs/calibrator.md, "Two
modalities").

For each data set x backbone and seed: the calibrated model trained with each evidence mode (the
evidence runs' recipe, ``bash scripts/train_all.sh SEED ROOT --evidence MODE``, calibrated models
only) and the baseline of the same seed, measured by :func:`experiments.gate_clean_cost.measure`:
clean test accuracy, and with one modality of every test sample swapped in from a sample of another
class, the accuracy and the AUROC of 1 - alpha for the swapped modality (swapped against clean).
Seed 0 of the baseline is the shipped checkpoint unless ``ROOT_A/seed0`` holds one.

    python -m experiments.evidence_modes --absolute ROOT_A --mode relative=ROOT_R --mode learned=ROOT_L \
        --seeds 0 1 2 > results/gates/evidence_modes.txt

``ROOT_A/seedS/<pair>_calon`` (absolute evidence, every seed: ``VARIANTS=on bash scripts/train_all.sh S
ROOT_A/seedS --evidence absolute``; for seeds other than 0 with ``<pair>_caloff`` beside it) and
``ROOT_X/seedS/<pair>_calon`` for each other mode (every seed). The stored table was made when the
shipped calibrated checkpoints were absolute and stood for seed 0 of ``ROOT_A``; since learned
evidence became the default they are learned, and a calibrated checkpoint of another mode is refused
as the absolute one.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Optional


from experiments.figures import mean_std
from experiments.gate_clean_cost import measure
from experiments.robustness_report import pairs
from precal.checkpoint import CheckpointError, load_checkpoint


def folder(root: Optional[Path], seed: int, shipped: Path) -> Path:
    """Seed 0 of a baseline without a run of its own under ``root`` is the shipped checkpoint."""
    return shipped if root is None or (seed == 0 and not (root / "seed0" / shipped.name).is_dir()) \
        else root / f"seed{seed}" / shipped.name


def absolute_run(root: Path, seed: int, shipped: Path) -> Path:
    """The absolute-evidence calibrated run of ``seed``; a checkpoint of another mode is refused."""
    path = root / f"seed{seed}" / shipped.name
    try:
        evidence = load_checkpoint(path).model.calibrator.evidence
    except CheckpointError as e:
        raise SystemExit(str(e)) from None
    if evidence != "absolute":
        raise SystemExit(f"{path}: evidence {evidence!r}, not absolute (train it with --evidence absolute)")
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--absolute", type=Path, required=True,
                        help="root of the absolute-evidence runs (ROOT/seedS/<pair>_calon, every seed)")
    parser.add_argument("--mode", action="append", required=True, metavar="MODE=ROOT",
                        help="another evidence mode and the root of its runs (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    modes = dict(item.split("=", 1) for item in args.mode)
    print("Test accuracy (%) clean and with one modality of every test sample swapped in from a sample of "
          "another class; gate AUROC: 1 - alpha of the swapped modality, swapped against clean samples. "
          f"Mean ± std over seeds {', '.join(map(str, args.seeds))}.")
    for name, on, off in pairs():
        found: Dict[str, List[Dict]] = {"baseline": [], "absolute": [], **{mode: [] for mode in modes}}
        shares: Dict[str, List[float]] = {}
        for seed in args.seeds:
            found["baseline"].append(measure(folder(args.absolute, seed, off)))
            found["absolute"].append(measure(absolute_run(args.absolute, seed, on)))
            for mode, root in modes.items():
                path = Path(root) / f"seed{seed}" / on.name
                found[mode].append(measure(path))
                calibrator = load_checkpoint(path).model.calibrator
                if hasattr(calibrator, "centring"):  # the learned share of each modality's evidence mean taken off
                    shares.setdefault(mode, []).extend(calibrator.centring_share().tolist())
        print(f"\n{name}")
        for mode, runs in found.items():
            parts = [f"clean {mean_std([r['clean']['gated'] for r in runs], 100, 1)}"]
            for m in (k for k in runs[0] if k != "clean"):
                text = f"{m} swapped {mean_std([r[m]['gated'] for r in runs], 100, 1)}"
                if mode != "baseline":
                    text += f" (gate AUROC {mean_std([r[m]['auroc'] for r in runs], 1, 2)})"
                parts.append(text)
            if mode in shares:
                parts.append(f"learned share {min(shares[mode]):.2f}-{max(shares[mode]):.2f}")
            print(f"  {mode:9s} " + "; ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
