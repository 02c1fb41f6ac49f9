"""Batched robustness sweep against a straightforward loop, on the same checkpoint.

The straightforward version is what one writes first: for every modality x corruption x severity,
loop over mini-batches of the split, corrupt the mini-batch and run the whole model. The batched
sweep (``precal.robustness.sweep_checkpoint``) corrupts the whole split at once and re-encodes only
the corrupted modality. Target: >= 10x faster, same numbers.

    python benchmarks/robustness.py [CHECKPOINT] [--batch 32] [--corruptions gaussian_noise swap ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.robustness.corruptions import apply_corruption, corruptions_for
from precal.robustness.engine import encode_modality, encode_split, fuse_split
from precal.robustness.sweep import sweep_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def loop_sweep(ckpt, data, split: str, seed: int, batch_size: int, corruptions: list[str] | None) -> dict:
    """Per level, per mini-batch: corrupt, run the full model, collect accuracy."""
    ds = dataset_for(ckpt, data, split)
    full = ds.full_batch()
    results = {}
    model = ckpt.model.eval()
    with torch.no_grad():
        for modality in model.modalities:
            kind = ckpt.schema.modality(modality).kind
            for corr in corruptions_for(kind):
                if corruptions and corr.name not in corruptions:
                    continue
                for severity in range(1, 6):
                    correct = 0
                    for start in range(0, full.size, batch_size):
                        mini = full.select(slice(start, start + batch_size))
                        # swap needs donors from the whole split, as in the batched sweep
                        result = apply_corruption(mini, modality, kind, corr.name, severity, seed, pool=full)
                        logits = model(result.batch).logits
                        correct += int((logits.argmax(1) == mini.labels).sum())
                    results[(modality, corr.name, severity)] = correct / full.size
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=str(ROOT / "checkpoints" / "utd_mhad_conv_calon"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--split", default="test")
    parser.add_argument("--corruptions", nargs="*", help="restrict to some corruptions (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(resolve_data_dir(ckpt))

    t0 = time.perf_counter()
    table = sweep_checkpoint(ckpt, data, args.split, seed=0, corruptions=args.corruptions)
    batched_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = loop_sweep(ckpt, data, args.split, 0, args.batch, args.corruptions)
    loop_s = time.perf_counter() - t0

    levels = table[table["severity"] > 0]
    diffs = [abs(float(r.value) - loop[(r.modality, r.corruption, int(r.severity))]) for r in levels.itertuples()]
    print(f"checkpoint {ckpt.name}, split {args.split} ({int(table['n'].iloc[0])} samples), {len(levels)} levels")
    print(f"batched sweep:          {batched_s:8.2f} s")
    print(f"loop (batch {args.batch:>3}):       {loop_s:8.2f} s")
    print(f"speed-up:               {loop_s / batched_s:8.1f}x (target >= 10x)")
    print(f"max |accuracy difference|: {max(diffs):.2e} over {len(diffs)} levels "
          f"({sum(d > 1e-9 for d in diffs)} levels differ)")
    encoder_shares(ckpt, data, args.split)


@torch.no_grad()
def encoder_shares(ckpt, data, split: str, runs: int = 3) -> None:
    """Why the speed-up depends on which modality is corrupted: a level must re-encode the corrupted
    modality, so its cost is bounded below by that encoder's share of a full forward pass. Prints
    each share and the speed-up bound it implies (a swap needs no encoder pass: fusion only)."""
    model = ckpt.model.eval()
    batch = dataset_for(ckpt, data, split).full_batch()
    enc = encode_split(model, batch)

    def best(fn) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    fuse_s = best(lambda: fuse_split(model, enc))
    per = {m: best(lambda m=m: encode_modality(model, batch, m)) for m in model.modalities}
    full = fuse_s + sum(per.values())
    print("full forward = every encoder + fusion: "
          + ", ".join(f"{m} encoder {100 * t / full:.0f}%" for m, t in per.items())
          + f", fusion {100 * fuse_s / full:.0f}%")
    print("speed-up bound per corrupted level (full forward / (its encoder + fusion)): "
          + ", ".join(f"{m} {full / (t + fuse_s):.1f}x" for m, t in per.items())
          + f", swap (fusion only) {full / fuse_s:.1f}x")


if __name__ == "__main__":
    main()
