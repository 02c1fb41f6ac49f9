"""Cost of the calibrator against its backbone: parameters and forward time.

For each backbone (sequence, conv, late) on the UTD-MHAD input shapes (inertial 96x6, skeleton
48x20x3, depth 16x30x40 — the lengths the shipped checkpoints use) this prints the parameter count
and the median forward time at batch 1 and batch 64 of (a) the backbone (encoders + fusion + head)
and (b) the calibrator alone, and their ratios. Targets: calibrator <= 5% of backbone parameters
and <= 10% of backbone forward time.

    python benchmarks/calibrator.py [--runs 50] [--threads 2] [--shared-dim 16] [--typicality]

``--typicality``: with the atypicality cue (``precal.typicality``), its references fitted first, so
that the forward pass pays for the whitening of every summary.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.models.model import BACKBONES, ModelConfig, MultimodalModel

SCHEMA = DatasetSchema(
    "utd-mhad-shapes",
    (ModalitySchema("inertial", "time_series", (6,)), ModalitySchema("skeleton", "time_series", (20, 3)),
     ModalitySchema("depth", "frame_sequence", (30, 40))),
    class_names=tuple(f"a{i}" for i in range(1, 28)),
)
LENGTHS = {"inertial": 96, "skeleton": 48, "depth": 16}


def make_batch(b: int) -> Batch:
    inputs = {m.name: torch.randn(b, LENGTHS[m.name], *m.step_shape) for m in SCHEMA.modalities}
    masks = {n: torch.ones(b, LENGTHS[n], dtype=torch.bool) for n in LENGTHS}
    return Batch(inputs, masks)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


@torch.no_grad()
def measure(backbone: str, batch_size: int, runs: int, shared_dim: int = ModelConfig.shared_dim,
            typicality: bool = False) -> dict:
    model = MultimodalModel(SCHEMA, ModelConfig(backbone=backbone, shared_dim=shared_dim, typicality=typicality))
    if typicality:  # fit the references (a training-mode pass), else the cue is skipped as unknown
        model.train()(make_batch(64))
    model.eval()
    # Non-trivial gates so the calibrator does its full work (zero weights would not change timing,
    # but make sure nothing short-circuits).
    torch.nn.init.normal_(model.calibrator.alpha_weight, std=0.5)
    batch = make_batch(batch_size)
    feats, masks, present = model.encode(batch)
    cal_masks = {k: v for k, v in masks.items() if v is not None}

    def backbone_only() -> object:
        f, m, p = model.encode(batch)
        return model.head(model.fusion(f, m, p))

    calibrator_ms = median_ms(lambda: model.calibrator(feats, cal_masks, present), runs)
    backbone_ms = median_ms(backbone_only, runs)
    counts = model.parameter_counts()
    return {
        "backbone": backbone, "batch": batch_size,
        "backbone_params": counts["encoders"] + counts["fusion"] + counts["head"],
        "calibrator_params": counts["calibrator"],
        "backbone_ms": backbone_ms, "calibrator_ms": calibrator_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shared-dim", type=int, default=ModelConfig.shared_dim,
                        help="size of the calibrator's shared comparison space")
    parser.add_argument("--typicality", action="store_true", help="with the atypicality cue")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'backbone':<9} {'batch':>5} {'backbone params':>15} {'calib params':>12} {'param %':>8} "
          f"{'backbone ms':>11} {'calib ms':>9} {'time %':>7}")
    worst_params, worst_time = 0.0, 0.0
    for backbone in BACKBONES:
        for b in (1, 64):
            r = measure(backbone, b, args.runs, args.shared_dim, args.typicality)
            p_ratio = 100 * r["calibrator_params"] / r["backbone_params"]
            t_ratio = 100 * r["calibrator_ms"] / r["backbone_ms"]
            worst_params, worst_time = max(worst_params, p_ratio), max(worst_time, t_ratio)
            print(f"{backbone:<9} {b:>5} {r['backbone_params']:>15,} {r['calibrator_params']:>12,} {p_ratio:>7.2f}% "
                  f"{r['backbone_ms']:>11.2f} {r['calibrator_ms']:>9.2f} {t_ratio:>6.2f}%")
    print(f"worst parameter ratio {worst_params:.2f}% (target <= 5%): {'met' if worst_params <= 5 else 'NOT met'}")
    print(f"worst forward-time ratio {worst_time:.2f}% (target <= 10%): {'met' if worst_time <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
