"""A fusion model written the way a researcher writes one, with a PreFusionCalibrator inside.

Own encoders (a GRU per stream, a small CNN per video frame, an MLP per vector), own fusion
(attention pooling over the modality tokens) and own head; precal's only part is the calibrator
between encoders and fusion. ``build(schema)`` is the factory precal calls:

    precal train --model examples/own_model/my_model.py:build --data sample_data/utd_mhad --out my_ck
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn

from precal import ModalityFeatureSpec, PreFusionCalibrator

WIDTH = 48


class StreamEncoder(nn.Module):
    """(B, T, *step) -> (B, T, WIDTH): each step flattened, then a GRU over time."""

    def __init__(self, step_features: int) -> None:
        super().__init__()
        self.inp = nn.Linear(step_features, WIDTH)
        self.gru = nn.GRU(WIDTH, WIDTH, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.gru(torch.relu(self.inp(x.flatten(2))))
        return h


class FrameEncoder(nn.Module):
    """(B, T, H, W) -> (B, T, WIDTH): the same small CNN on every frame."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.ReLU(),
                                 nn.Conv2d(16, WIDTH, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1))

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        return self.cnn(x.reshape(b * t, 1, *x.shape[2:])).reshape(b, t, WIDTH)


class MyFusionModel(nn.Module):
    def __init__(self, schema) -> None:
        super().__init__()
        self.names = schema.modality_names
        encoders = {}
        for m in schema.modalities:
            if m.kind == "frame_sequence":
                encoders[m.name] = FrameEncoder()
            elif m.kind == "vector":
                encoders[m.name] = nn.Sequential(nn.Linear(m.num_features, WIDTH), nn.ReLU())
            else:
                encoders[m.name] = StreamEncoder(m.num_features)
        self.encoders = nn.ModuleDict(encoders)
        # precal's part: compare the modalities, gate their token features before fusion.
        self.calibrator = PreFusionCalibrator([ModalityFeatureSpec(n, WIDTH, "token") for n in self.names])
        self.query = nn.Parameter(torch.randn(WIDTH) / WIDTH ** 0.5)
        self.head = nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, schema.num_classes))

    def forward(self, inputs: Dict[str, Tensor], padding_mask: Optional[Dict[str, Tensor]] = None,
                present: Optional[Dict[str, Tensor]] = None) -> Dict[str, Tensor]:
        padding_mask = padding_mask or {}
        feats = {n: self.encoders[n](inputs[n]) for n in self.names}
        feats = {n: f if f.dim() == 3 else f.unsqueeze(1) for n, f in feats.items()}  # vectors: one token
        calibrated, _report = self.calibrator(feats, padding_mask=padding_mask, present=present)
        # Attention pooling over every valid token of every present modality.
        tokens = torch.cat([calibrated[n] for n in self.names], dim=1)
        valid = []
        for n in self.names:
            steps = calibrated[n].shape[1]
            mask = padding_mask.get(n, torch.ones(tokens.shape[0], steps, dtype=torch.bool))
            if present is not None and n in present:
                mask = mask & present[n].unsqueeze(1)
            valid.append(mask)
        valid = torch.cat(valid, dim=1)
        scores = (tokens @ self.query).masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores.masked_fill(~valid.any(1, keepdim=True), 0.0), dim=1) * valid
        fused = (weights.unsqueeze(-1) * tokens).sum(dim=1)
        return {"logits": self.head(fused), "features": fused}


def build(schema) -> nn.Module:
    """The factory precal calls with the data set's schema."""
    return MyFusionModel(schema)
