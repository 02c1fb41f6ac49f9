"""Training-time augmentation that is identical for calibrated and baseline runs.

Modality dropout and per-modality noise show the model, during training, the situations the
calibrator exists for (a missing or unreliable modality). Both are applied to the batch *before*
the model, from a seeded generator, so a calibrated and a baseline run with the same seed see the
same augmented inputs.
"""

from __future__ import annotations

import torch

from precal.data.batch import Batch


def _pick_modality(batch: Batch, prob: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: whether to augment (prob) and which modality (uniform)."""
    b, m = batch.size, len(batch.modalities)
    hit = torch.rand(b, generator=gen) < prob
    which = torch.randint(0, m, (b,), generator=gen)
    return hit, which


def modality_dropout(batch: Batch, prob: float, gen: torch.Generator) -> Batch:
    """With probability ``prob`` per sample, mark one random *present* modality absent (zeroed).

    A sample never loses its last present modality.
    """
    if prob <= 0 or len(batch.modalities) < 2:
        return batch
    hit, which = _pick_modality(batch, prob, gen)
    present_count = torch.stack([batch.presence(n) for n in batch.modalities], dim=1).sum(dim=1)
    out = batch
    for i, n in enumerate(batch.modalities):
        drop = hit & (which == i) & batch.presence(n) & (present_count > 1)
        if drop.any():
            x = out.inputs[n]
            keep = (~drop).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
            out = out.with_modality(n, values=x * keep, present=batch.presence(n) & ~drop)
    return out


def noise_augment(batch: Batch, prob: float, gen: torch.Generator, snr_db: tuple[float, float] = (-5.0, 20.0)) -> Batch:
    """With probability ``prob`` per sample, add Gaussian noise to one random modality at an SNR
    drawn uniformly from ``snr_db`` (inputs are normalised, so signal power is about 1)."""
    if prob <= 0:
        return batch
    hit, which = _pick_modality(batch, prob, gen)
    snr = torch.empty(batch.size).uniform_(*snr_db, generator=gen)
    out = batch
    for i, n in enumerate(batch.modalities):
        rows = hit & (which == i)
        if not rows.any():
            continue
        x = out.inputs[n]
        shape = (-1, *([1] * (x.dim() - 1)))
        power = x.pow(2).reshape(x.shape[0], -1).mean(dim=1).clamp_min(1e-6)
        sigma = torch.sqrt(power / 10 ** (snr / 10)) * rows.to(x.dtype)
        noise = torch.randn(x.shape, generator=gen) * sigma.reshape(shape)
        if n in batch.padding_mask:
            pad = batch.padding_mask[n].to(x.dtype).reshape(*batch.padding_mask[n].shape, *([1] * (x.dim() - 2)))
            noise = noise * pad
        out = out.with_modality(n, values=x + noise)
    return out


def swap_augment(batch: Batch, prob: float, gen: torch.Generator) -> tuple[Batch, torch.Tensor]:
    """With probability ``prob`` per sample, replace one random modality by the same modality of
    another sample of the batch with a *different label*: a known cross-modal conflict.

    Returns the batch and a (B, M) bool mask of the swapped (sample, modality) pairs. The label
    stays the sample's own, so the task loss rewards a model that learns to distrust a modality
    that disagrees with the rest; the baseline sees the same swaps.
    """
    b, names = batch.size, batch.modalities
    swapped = torch.zeros(b, len(names), dtype=torch.bool)
    if prob <= 0 or len(names) < 2 or batch.labels is None:
        return batch, swapped
    hit, which = _pick_modality(batch, prob, gen)
    order = torch.randperm(b, generator=gen)
    donors = torch.full((b,), -1, dtype=torch.long)
    labels = batch.labels
    for row in torch.nonzero(hit).squeeze(1).tolist():
        m = names[int(which[row])]
        for cand in order.roll(-row).tolist():  # a seeded, row-dependent search order
            if labels[cand] != labels[row] and bool(batch.presence(m)[cand]) and bool(batch.presence(m)[row]):
                donors[row] = cand
                break
    out = batch
    for i, n in enumerate(names):
        rows = (donors >= 0) & (which == i)
        if not rows.any():
            continue
        src = torch.where(rows, donors, torch.arange(b))
        pad = out.padding_mask.get(n)
        out = out.with_modality(n, values=out.inputs[n][src],
                                padding_mask=None if pad is None else pad[src])
        swapped[:, i] = rows
    return out, swapped
