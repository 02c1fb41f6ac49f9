"""Fusion backbones: Dict[str, Tensor] of (calibrated) modality features -> one fused vector.

Three families, all receiving the same dictionary and masks, so the calibrator plugs in before any
of them without the fusion or head knowing it is there:

- :class:`TransformerFusion` (sequence-based): tokens of all modalities, with modality-type and
  position embeddings, concatenated and mixed by a transformer encoder;
- :class:`ConvFusion` (convolutional): masked global pooling of channel-layout conv features,
  concatenated;
- :class:`LateFusion`: concatenation of per-modality vectors;
- :class:`ScoreFusion` (decision-level): one classifier per modality, whose log-probabilities are
  added (a product of experts).

Absent modalities are excluded (masked tokens / zeroed vectors), never fed as data.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional

import torch
from torch import Tensor, nn

from precal.calibration import masked_mean


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sinusoidal position codes (no length limit learned from the training data)."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


def small_normal(*shape: int) -> Tensor:
    """``torch.randn(*shape) * 0.02`` (draw for draw). On the meta device, where
    :func:`precal.models.model.check_model_size` builds a model only to count its parameters, the
    draw is skipped: randn and normal_ run reference implementations there whose first call imports
    sympy, about 1.5 s of every checkpoint load and dashboard start."""
    values = torch.empty(*shape)
    return values if values.is_meta else values.normal_() * 0.02


class TransformerFusion(nn.Module):
    """Sequence-based fusion over the concatenated tokens of all modalities.

    A learned summary token is always valid, so a sample with every modality absent still yields a
    defined (if uninformed) output instead of NaN from an all-masked attention.
    """

    def __init__(self, modalities: List[str], dim: int, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.type_embedding = nn.Parameter(small_normal(len(modalities), dim))
        self.summary_token = nn.Parameter(small_normal(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, tokens: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]],
                present: Mapping[str, Tensor]) -> Tensor:
        seqs = [self.summary_token.expand(next(iter(tokens.values())).shape[0], -1, -1)]
        valid = [torch.ones(seqs[0].shape[:2], dtype=torch.bool, device=seqs[0].device)]
        for i, name in enumerate(self.modalities):
            x = tokens[name]  # (B, T, D)
            pos = sinusoidal_positions(x.shape[1], x.shape[2], x.device)
            seqs.append(x + pos.unsqueeze(0) + self.type_embedding[i])
            mask = masks.get(name)
            step_valid = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            valid.append(step_valid & present[name].unsqueeze(1))
        h = self.encoder(torch.cat(seqs, dim=1), src_key_padding_mask=~torch.cat(valid, dim=1))
        keep = torch.cat(valid, dim=1)
        return self.norm(masked_mean(h, "token", keep))


def resample_valid(x: Tensor, lengths: Tensor, steps: int) -> Tensor:
    """Linearly resample the real steps of (B, C, T) to (B, C, steps), per sample.

    Streams of different rates and lengths are brought onto one time axis spanning each
    recording, using only its real steps (padding never enters); a sample with no real step gives
    zeros.
    """
    b, c, _ = x.shape
    last = (lengths.to(x.dtype) - 1).clamp_min(0)  # (B,)
    pos = torch.linspace(0, 1, steps, device=x.device, dtype=x.dtype)[None, :] * last[:, None]  # (B, S)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, last.long()[:, None])
    w = (pos - lo.to(x.dtype)).unsqueeze(1)
    gather = lambda idx: x.gather(2, idx.unsqueeze(1).expand(b, c, steps))  # noqa: E731
    out = gather(lo) * (1 - w) + gather(hi) * w
    return out * (lengths > 0).to(x.dtype)[:, None, None]


class ConvFusion(nn.Module):
    """Convolutional fusion: modalities stacked as channels on a common time axis, mixed by
    temporal convolutions, then globally pooled.

    Each modality's calibrated channel-layout features are averaged over space (frames), resampled
    over their real steps to ``steps`` time points, zeroed when absent and concatenated along
    channels; two 1-D conv blocks then mix modalities *and* neighbouring time points before
    global average pooling. Unlike pooling-then-concatenation this lets the backbone combine, for
    example, a gesture's motion in the inertial stream with the frames where it appears.
    """

    def __init__(self, modalities: List[str], dim: int, steps: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.steps = steps
        width = 2 * dim
        self.mix = nn.Sequential(
            nn.Conv1d(dim * len(modalities), width, kernel_size=3, padding=1), nn.BatchNorm1d(width), nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(width, width, kernel_size=3, padding=1), nn.BatchNorm1d(width), nn.GELU(),
        )
        self.out_dim = width

    def forward(self, features: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]],
                present: Mapping[str, Tensor]) -> Tensor:
        columns = []
        for n in self.modalities:
            y = features[n]
            if y.dim() == 5:  # (B, C, T, h, w): space is pooled, time is kept
                y = y.mean(dim=(3, 4))
            elif y.dim() == 2:  # a vector is constant over time
                y = y.unsqueeze(-1)
            mask = masks.get(n)
            lengths = mask.sum(dim=1) if mask is not None else torch.full((y.shape[0],), y.shape[-1], device=y.device)
            lengths = lengths * present[n].to(lengths.dtype)
            columns.append(resample_valid(y, lengths, self.steps))
        return self.mix(torch.cat(columns, dim=1)).mean(dim=2)


class LateFusion(nn.Module):
    """Late fusion of per-modality vectors (B, D) by concatenation."""

    def __init__(self, modalities: List[str], dim: int) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.out_dim = dim * len(modalities)

    def forward(self, features: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]],
                present: Mapping[str, Tensor]) -> Tensor:
        return torch.cat([features[n] * present[n].unsqueeze(1).to(features[n].dtype) for n in self.modalities], dim=1)


class ScoreFusion(nn.Module):
    """Decision-level fusion: each modality's pooled tokens go through its own classifier, and the
    prediction adds the present modalities' log-probabilities (a product of experts; for
    regression, the mean of their outputs).

    Why: when every modality is weak on different samples, a vote lets two streams that agree
    outvote the third, where feature-level fusion can follow the strongest stream into an error
    none of the streams makes on its own. Calibration keeps its meaning: the gates scale a
    modality's features *before* its expert, so a suppressed modality's vote is softer. The
    experts' own logits are returned by :meth:`expert_logits` (a per-expert loss can train each
    one to classify on its own, ``--unimodal-loss``).
    """

    def __init__(self, modalities: List[str], dim: int, classes: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.modalities = list(modalities)
        self.experts = nn.ModuleDict({n: ClassificationHead(dim, hidden, classes, dropout) for n in modalities})
        self.out_dim = classes

    def expert_logits(self, features: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]]) -> Dict[str, Tensor]:
        return {n: self.experts[n](masked_mean(features[n], "token", masks.get(n))) for n in self.modalities}

    def forward(self, features: Mapping[str, Tensor], masks: Mapping[str, Optional[Tensor]],
                present: Mapping[str, Tensor]) -> Tensor:
        return self.combine(self.expert_logits(features, masks), present)

    def combine(self, logits: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """The fused prediction from the experts' logits; absent modalities do not vote."""
        weight = {n: present[n].to(logits[n].dtype).unsqueeze(1) for n in self.modalities}
        if self.out_dim == 1:  # regression: the mean of the present experts' outputs
            count = torch.stack([w for w in weight.values()]).sum(dim=0).clamp_min(1)
            return sum(logits[n] * weight[n] for n in self.modalities) / count
        return sum(torch.log_softmax(logits[n], dim=1) * weight[n] for n in self.modalities)


class ClassificationHead(nn.Module):
    """The prediction head; identical with and without calibration."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, out_dim))

    def forward(self, fused: Tensor) -> Tensor:
        return self.net(fused)


