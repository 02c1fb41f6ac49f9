"""Shared pieces of the own-model tests (tests/precal/test_own_model.py, tests/dashboard/): the
example model's factory, small factories written into a test's folder, and an own-model checkpoint
whose gates respond to their inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional


from precal.data.dataset import MultimodalDataset, Preprocessor
from precal.data.storage import load_dataset
from precal.own_checkpoint import save_own_checkpoint
from precal.own_model import build_own_model
from tests.dashboard.fixtures import spread_gates

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_model" / "my_model.py"
FACTORY = f"{EXAMPLE}:build"

LOGITS_ONLY = '''
import torch
from torch import nn
from precal import ModalityFeatureSpec, PreFusionCalibrator


class Mean(nn.Module):
    """Each modality's steps averaged, a calibrator, a linear head: returns logits only."""

    def __init__(self, schema):
        super().__init__()
        self.names = schema.modality_names
        self.inp = nn.ModuleDict({m.name: nn.Linear(m.num_features, 8) for m in schema.modalities})
        self.cal = PreFusionCalibrator([ModalityFeatureSpec(n, 8) for n in self.names])
        self.head = nn.Linear(8 * len(self.names), schema.num_classes)

    def forward(self, inputs, padding_mask=None, present=None):
        feats = {}
        for n in self.names:
            x = inputs[n]
            x = x.flatten(2).mean(1) if x.dim() > 2 else x
            feats[n] = self.inp[n](x)
        out, _ = self.cal(feats, present=present)
        return self.head(torch.cat([out[n] for n in self.names], dim=1))


def build(schema):
    return Mean(schema)
'''


def write_factory(folder: Path, name: str = "logits_only.py", source: str = LOGITS_ONLY) -> str:
    """A factory file in ``folder``; returns its ``FILE.py:build`` spec."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(source)
    return f"{path}:build"


def responsive_own_checkpoint(out: Path, data_dir: Path, lengths: Dict[str, int],
                              factory: str = FACTORY, training: Optional[dict] = None) -> Path:
    """An own model's checkpoint (the example model, untrained) whose calibrator's zero-initialised
    gate heads hold seeded random values and whose evidence reference has seen the training split,
    as after training: its gates respond to what the lab does to a sample."""
    data = load_dataset(data_dir)
    pre = Preprocessor(lengths=dict(lengths)).fit(data, data.split("train"))
    model = build_own_model(factory, data.schema)
    spread_gates(model, MultimodalDataset(data, data.split("train"), pre, model.modalities).full_batch())
    record = {"data": str(data_dir), "model": factory, "epochs": 1, "lengths": dict(lengths), **(training or {})}
    return save_own_checkpoint(out, model, pre, training=record, metrics={}, history=[])
