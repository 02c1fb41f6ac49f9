"""The example explanation quoted in docs/calibrator.md, from a shipped checkpoint.

Swaps one modality of every test sample with the same modality of a sample of another class (the
robustness sweep's swap, seed 0) and prints, for the sample whose gate fell the most, the
explanation of its gate before and after the swap, and the model's probability of the true class.

    python -m experiments.explain_example [CHECKPOINT] [MODALITY] > results/gates/explain_example.txt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from precal.checkpoint import load_checkpoint
from precal.robustness.corruptions import apply_corruption
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.explain import explain_alpha
from precal.metrics import softmax

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else ROOT / "checkpoints" / "avletters_conv_calon"
    ckpt = load_checkpoint(path)
    modality = argv[1] if len(argv) > 1 else ckpt.model.modalities[-1]
    data = load_dataset(resolve_data_dir(ckpt))
    batch = dataset_for(ckpt, data, "test").full_batch()
    kind = ckpt.schema.modality(modality).kind
    swapped = apply_corruption(batch, modality, kind, "swap", 5, 0).batch
    with torch.no_grad():
        clean_out, swapped_out = ckpt.model(batch), ckpt.model(swapped)
    clean, corrupted = clean_out.report, swapped_out.report
    i = clean.modalities.index(modality)
    row = int(torch.argmax(clean.alpha[:, i] - corrupted.alpha[:, i]))
    sample = data.sample_ids[int(batch.indices[row])]
    print(f"{path.name}, test sample {sample}, modality {modality}")
    print("clean:   " + explain_alpha(clean, row, modality).with_caveat)
    print("swapped: " + explain_alpha(corrupted, row, modality).with_caveat)
    label = int(batch.labels[row])
    p_clean, p_swapped = (float(softmax(out.logits[row:row + 1].numpy())[0, label]) for out in (clean_out, swapped_out))
    print(f"probability of the true class: clean {p_clean:.3f}, swapped {p_swapped:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
