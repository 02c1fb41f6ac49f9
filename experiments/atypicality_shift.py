"""Do clean held-out samples look more atypical than training ones? (the atypicality cue's price)

With ``--typicality on`` the gate damps a modality whose summary lies beyond one standard deviation
of typical training summaries (``precal.typicality``). Held-out data that differs a little from
training (another repetition, another subject) then has more clean samples past that threshold,
and their gates fall although nothing is wrong with them. Per split, this prints the share of
present modalities with atypicality evidence above zero (past the threshold), the mean evidence and
the mean alpha.

    precal train --data sample_data/avletters ... --typicality on --out /tmp/avl_typ   # see docs/results/gates.md
    python -m experiments.atypicality_shift /tmp/avl_typ sample_data/avletters
"""

from __future__ import annotations

import argparse
from typing import List

import torch

from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for
from precal.inference import batches


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("data")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    args = parser.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    if not getattr(ckpt.model.calibrator, "typicality", False):
        raise SystemExit(f"{args.checkpoint} was not trained with --typicality on")
    data = load_dataset(args.data)
    model = ckpt.model.eval()
    names = model.calibrator.names
    print(f"# python -m experiments.atypicality_shift {args.checkpoint} {args.data}")
    print(f"# modalities: {', '.join(names)}")
    for split in args.splits:
        batch = dataset_for(ckpt, data, split).full_batch()
        evidence, alpha, present = [], [], []
        with torch.no_grad():
            for chunk in batches(batch, 256):
                report = model(chunk).report
                evidence.append(report.evidence[..., -1])
                alpha.append(report.alpha)
                present.append(report.has_context)
        ev, al, ok = (torch.cat(x).numpy() for x in (evidence, alpha, present))
        cols = range(len(names))
        past = " ".join(f"{(ev[ok[:, i], i] > 0).mean():.3f}" for i in cols)
        mean_ev = " ".join(f"{ev[ok[:, i], i].mean():.2f}" for i in cols)
        mean_alpha = " ".join(f"{al[ok[:, i], i].mean():.3f}" for i in cols)
        print(f"{split:5s} {len(ev):5d} samples; past the threshold: {past}; mean evidence {mean_ev}; "
              f"mean alpha {mean_alpha}")


if __name__ == "__main__":
    main()
