"""How the calibrator's evidence and gates differ between the samples it trained on and new ones.

For each calibrated checkpoint: per modality, the support evidence (standard deviations from the
training reference) and the instance gate on the clean training split and on the clean test split;
and the test accuracy as trained, with the calibrator switched off (same weights), and with the
evidence taken out of alpha or of beta (each gate then fixed at its typical level). This is the
measurement behind docs/results/gates.md's note on clean accuracy.

    python -m experiments.cue_shift [CHECKPOINT ...] > results/gates/cue_shift.txt
    python -m experiments.cue_shift summary results/gates/cue_shift.txt results/gates/cue_shift_seeds.txt

The second form reads stored reports (one or several seeds per checkpoint) and prints, per
checkpoint, the change of test accuracy against "as trained", mean ± std over the reports.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
from pathlib import Path
from typing import Iterator, List

import torch

from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir

ROOT = Path(__file__).resolve().parents[1]
OFF = -30.0  # softplus(-30) ~ 1e-13: an evidence weight of zero


@contextlib.contextmanager
def without_evidence(calibrator: torch.nn.Module, names: List[str]) -> Iterator[None]:
    """Temporarily set the named evidence weights to (numerically) zero."""
    saved = {n: getattr(calibrator, n).detach().clone() for n in names}
    with torch.no_grad():
        for n in names:
            getattr(calibrator, n).fill_(OFF)
    try:
        yield
    finally:
        with torch.no_grad():
            for n, v in saved.items():
                getattr(calibrator, n).copy_(v)


def report(path: Path) -> str:
    ckpt = load_checkpoint(path)
    model = ckpt.model.eval()
    data = load_dataset(resolve_data_dir(ckpt))
    lines = [f"{path.name}"]
    batches = {s: dataset_for(ckpt, data, s).full_batch() for s in ("train", "test")}
    with torch.no_grad():
        for split, batch in batches.items():
            r = model(batch).report
            for i, m in enumerate(r.modalities):
                ev, alpha = r.evidence[:, i, 0].numpy(), r.alpha[:, i].numpy()
                lines.append(f"  {split:5s} {m:10s} support evidence {ev.mean():+.2f} ± {ev.std():.2f} sd   "
                             f"alpha {alpha.mean():.3f} ± {alpha.std():.3f}")
        test = batches["test"]

        def accuracy() -> float:
            return float((model(test).logits.argmax(1) == test.labels).float().mean())

        cal = model.calibrator
        figures = {"as trained": accuracy()}
        with model.calibration(False):
            figures["calibrator off"] = accuracy()
        with without_evidence(cal, ["alpha_weight"]):
            figures["alpha without evidence"] = accuracy()
        with without_evidence(cal, ["beta_agreement", "beta_discrepancy"]):
            figures["beta without evidence"] = accuracy()
    lines.append("  test accuracy: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in figures.items()))
    return "\n".join(lines)


FIGURES = re.compile(r"as trained ([\d.]+)%, calibrator off ([\d.]+)%, alpha without evidence ([\d.]+)%, "
                     r"beta without evidence ([\d.]+)%")


def summary(texts: List[str]) -> str:
    """Per checkpoint name, over every stored report of it: the test accuracy as trained, and the
    change with the calibrator off, alpha without evidence and beta without evidence (points,
    mean ± std over the reports)."""
    runs: dict = {}
    name = None
    for line in "\n".join(texts).splitlines():
        if line and not line.startswith((" ", "#")):
            name = line.strip()
        elif (m := FIGURES.search(line)) and name:
            runs.setdefault(name, []).append([float(x) for x in m.groups()])
    out = []
    for name, rows in runs.items():
        cells = [f"{name} ({len(rows)} runs): as trained {statistics.mean(r[0] for r in rows):.1f}%"]
        for i, what in ((1, "calibrator off"), (2, "alpha without evidence"), (3, "beta without evidence")):
            d = [r[i] - r[0] for r in rows]
            sd = statistics.stdev(d) if len(d) > 1 else 0.0
            cells.append(f"{what} {statistics.mean(d):+.1f} ± {sd:.1f}")
        out.append(", ".join(cells))
    return "\n".join(out)


def main(argv: List[str]) -> None:
    if argv[:1] == ["summary"]:
        print(summary([Path(p).read_text() for p in argv[1:]]))
        return
    paths = [Path(p) for p in argv] or sorted((ROOT / "checkpoints").glob("*_calon"))
    torch.set_num_threads(1)
    print("\n".join(report(p) for p in paths))


if __name__ == "__main__":
    main(sys.argv[1:])
