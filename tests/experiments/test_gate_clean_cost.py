"""The comparison "gated against typical gates" (experiments/gate_clean_cost.py) is only a comparison
if "typical" really removes every sample's own response and nothing else, and leaves the model as
it was afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from experiments.gate_clean_cost import typical_gates
from precal.checkpoint import load_checkpoint
from precal.data.storage import load_dataset
from precal.evaluation import dataset_for, resolve_data_dir
from precal.robustness.engine import encode_split, fuse_split

ROOT = Path(__file__).resolve().parents[2]


def test_typical_gates_give_every_sample_its_modalitys_bias_level_and_are_undone_afterwards():
    ckpt = load_checkpoint(ROOT / "checkpoints" / "utd_mhad_sequence_calon")
    ckpt.model.eval()
    batch = dataset_for(ckpt, load_dataset(resolve_data_dir(ckpt, None)), "test").full_batch()
    with torch.no_grad():
        enc = encode_split(ckpt.model, batch)
        before = fuse_split(ckpt.model, enc)
        with typical_gates(ckpt.model):
            typical = fuse_split(ckpt.model, enc)
        after = fuse_split(ckpt.model, enc)
    present = typical.present & typical.has_context
    for i, m in enumerate(typical.modalities):
        alphas = typical.alpha[present[:, i], i]
        assert alphas.std() < 1e-5, m  # one value for every sample: the bias alone
        assert before.alpha[present[:, i], i].std() > 0.01, m  # the trained model does respond per sample
    assert np.array_equal(after.alpha, before.alpha) and np.array_equal(after.logits, before.logits)
