"""Running reference of the calibrator's cues: what a *typical* training sample looks like.

Why it exists: a cue such as support has a non-zero mean (a well-trained modality agrees with the
others most of the time). Fed raw into the gate, that mean acts as a second bias, and the task loss
is then free to use the cue to set a modality's overall level, in whichever direction it wants the
level to move. Measured before this module existed: with raw cues the gate of a modality swapped in
from another sample *rose* on late and convolutional backbones while the cues themselves flagged the
swap. Standardising each cue against a running training-split reference splits the two jobs: the
gate's bias carries the level (what a typical sample gets), the standardised cue carries the
*evidence* (how far this sample is from typical, in standard deviations), and per-cue contributions
read "relative to a typical sample", which is what an explanation needs.

The reference is a pair of exponential moving averages (mean and variance) per cue column, updated
in training-mode forward passes from the rows where the cue is defined, *after* the gates of that
pass were computed. Before the first update a column has no reference and its evidence is 0, so a
freshly built calibrator is exactly the identity (its gates see no evidence and its biases are 0).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

MOMENTUM = 0.05
"""Weight of the newest batch in the running reference: a time constant of about 20 steps, short
against any training run and long enough to smooth batches of a few dozen samples."""

MIN_STD = 1e-2
"""Floor of the reference's standard deviation. Cues live on scales of order one (cosines, squared
distances of layer-normalised vectors): a cue that barely varies carries no evidence, and dividing by
its tiny spread would turn rounding into large gate changes."""


def soft_threshold(z: Tensor, margin: float) -> Tensor:
    """What lies beyond ``margin`` standard deviations of typical, ``z - clamp(z, -margin, margin)``
    (``z`` itself for a margin of 0): still non-decreasing in ``z``, and 0 stays 0."""
    return z - z.clamp(-margin, margin) if margin > 0 else z


class EvidenceReference(nn.Module):
    """Running mean and variance of a (B, *columns) cue tensor, and the standardised evidence.

    ``columns`` is the shape of one sample's cues (e.g. (M, K) for K cues of M modalities). Each
    column keeps its own count, so a column that is never defined (a modality without context, an
    absent peer) keeps evidence 0 instead of borrowing another column's statistics.
    """

    def __init__(self, columns: Tuple[int, ...], momentum: Optional[float] = MOMENTUM,
                 min_std: float = MIN_STD) -> None:
        super().__init__()
        self.momentum = momentum
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(columns))
        self.register_buffer("var", torch.ones(columns))
        self.register_buffer("count", torch.zeros(columns))

    def standardise(self, cues: Tensor, valid: Tensor, margin: float = 0.0) -> Tensor:
        """(cue - mean) / std where ``valid`` (same shape as ``cues``, bool) and the column has a
        reference; 0 elsewhere (replaced, never multiplied, so a NaN cue stays out).

        ``margin`` > 0 keeps only what lies beyond ``margin`` standard deviations of typical
        (soft-thresholding, ``z - clamp(z, -margin, margin)``: still non-decreasing in the cue)."""
        std = self.var.clamp_min(0).sqrt().clamp_min(self.min_std).to(cues.dtype)
        known = self.known
        z = soft_threshold((cues - self.mean.to(cues.dtype)) / std, margin)
        return torch.where(valid & known, z, torch.zeros((), dtype=cues.dtype, device=cues.device))

    @torch.no_grad()
    def update(self, cues: Tensor, valid: Tensor) -> None:
        """Fold a batch into the reference: per column, over the rows where it is valid.

        A column's first batch sets its reference directly; a column without valid rows in this
        batch keeps its reference unchanged."""
        w = valid.to(cues.dtype)
        n = w.sum(dim=0)
        has = n > 0
        if not bool(has.any()):
            return
        safe = torch.where(valid, cues.detach(), torch.zeros((), dtype=cues.dtype, device=cues.device))
        mean = (safe * w).sum(dim=0) / n.clamp_min(1)
        var = ((safe - mean) ** 2 * w).sum(dim=0) / n.clamp_min(1)
        mean, var = mean.to(self.mean.dtype), var.to(self.var.dtype)
        first = has & (self.count == 0)
        later = has & (self.count > 0)
        # momentum None: the plain average of every batch folded in (as BatchNorm's cumulative mode)
        m = self.momentum if self.momentum is not None else 1.0 / (self.count + 1)
        self.mean.copy_(torch.where(first, mean, torch.where(later, (1 - m) * self.mean + m * mean, self.mean)))
        self.var.copy_(torch.where(first, var, torch.where(later, (1 - m) * self.var + m * var, self.var)))
        self.count.add_(has.to(self.count.dtype))

    def reset(self) -> None:
        """Forget the reference (evidence is 0 again until the next training-mode batch)."""
        self.mean.zero_()
        self.var.fill_(1.0)
        self.count.zero_()

    @property
    def known(self) -> Tensor:
        """(1, *columns) bool: the columns that have a reference (the others' evidence is 0, and a
        mean over modalities must not count them)."""
        return (self.count > 0).unsqueeze(0)

    @property
    def ready(self) -> bool:
        """True once a training batch has been folded in (some columns, such as a modality's pairwise
        cue with itself, are never defined and never get a reference)."""
        return bool((self.count > 0).any())
