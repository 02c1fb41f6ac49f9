"""Training-time augmentation that is identical for calibrated and baseline runs.

Modality dropout and per-modality noise show the model, during training, the situations the
calibrator exists for (a missing or unreliable modality); random rotations show it how the same
action varies between people (sensor placement, facing direction). Both are applied to the batch *before*
the model, from a seeded generator, so a calibrated and a baseline run with the same seed see the
same augmented inputs.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch

from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, unknown_modality_message


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


def _donors(batch: Batch, prob: float, gen: torch.Generator, same_label: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: a donor row of the batch (-1: none) and the modality to take from it.

    A donor has the modality present (as does the receiving row) and the same or a different label
    as asked; the search order is seeded and row-dependent."""
    b, names = batch.size, batch.modalities
    hit, which = _pick_modality(batch, prob, gen)
    order = torch.randperm(b, generator=gen)
    donors = torch.full((b,), -1, dtype=torch.long)
    labels = batch.labels
    for row in torch.nonzero(hit).squeeze(1).tolist():
        m = names[int(which[row])]
        for cand in order.roll(-row).tolist():
            if cand != row and bool(labels[cand] == labels[row]) == same_label \
                    and bool(batch.presence(m)[cand]) and bool(batch.presence(m)[row]):
                donors[row] = cand
                break
    return donors, which


def _take_from_donors(batch: Batch, donors: torch.Tensor, which: torch.Tensor) -> tuple[Batch, torch.Tensor]:
    """Replace modality ``which[row]`` of every row with a donor by the donor's; returns the batch
    and the (B, M) mask of replaced (sample, modality) pairs."""
    b, names = batch.size, batch.modalities
    replaced = torch.zeros(b, len(names), dtype=torch.bool)
    out = batch
    for i, n in enumerate(names):
        rows = (donors >= 0) & (which == i)
        if not rows.any():
            continue
        src = torch.where(rows, donors, torch.arange(b))
        pad = out.padding_mask.get(n)
        out = out.with_modality(n, values=out.inputs[n][src],
                                padding_mask=None if pad is None else pad[src])
        replaced[:, i] = rows
    return out, replaced


def swap_augment(batch: Batch, prob: float, gen: torch.Generator) -> tuple[Batch, torch.Tensor]:
    """With probability ``prob`` per sample, replace one random modality by the same modality of
    another sample of the batch with a *different label*: a known cross-modal conflict.

    Returns the batch and a (B, M) bool mask of the swapped (sample, modality) pairs. The label
    stays the sample's own, so the task loss rewards a model that learns to distrust a modality
    that disagrees with the rest; the baseline sees the same swaps.
    """
    if prob <= 0 or len(batch.modalities) < 2 or batch.labels is None:
        return batch, torch.zeros(batch.size, len(batch.modalities), dtype=torch.bool)
    return _take_from_donors(batch, *_donors(batch, prob, gen, same_label=False))


def recombine_augment(batch: Batch, prob: float, gen: torch.Generator) -> Batch:
    """With probability ``prob`` per sample, replace one random modality by the same modality of
    another sample of the batch with the *same label*.

    Why: with few subjects, a fused model can learn which inertial style goes with which skeleton
    style, that is, the subject; recombining modalities across samples of one class (mostly across
    subjects) makes new, consistent combinations, so only what the class has in common pays.
    Unlike a swap there is no conflict: every modality still shows the label.
    """
    if prob <= 0 or len(batch.modalities) < 2 or batch.labels is None:
        return batch
    return _take_from_donors(batch, *_donors(batch, prob, gen, same_label=True))[0]


def random_rotations(count: int, max_degrees: float, gen: torch.Generator) -> torch.Tensor:
    """(count, 3, 3) rotations about axes uniform on the sphere, angles uniform in ±max_degrees
    (Rodrigues' formula)."""
    axis = torch.randn(count, 3, generator=gen)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = (torch.rand(count, generator=gen) * 2 - 1) * math.radians(max_degrees)
    k = torch.zeros(count, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    sin, cos = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return torch.eye(3).expand(count, 3, 3) + sin * k + (1 - cos) * (k @ k)


def random_shears(count: int, max_shear: float, gen: torch.Generator) -> torch.Tensor:
    """(count, 3, 3) shears: ones on the diagonal, off-diagonal entries uniform in ±max_shear."""
    off = (torch.rand(count, 3, 3, generator=gen) * 2 - 1) * max_shear
    eye = torch.eye(3).expand(count, 3, 3)
    return eye + off * (1 - eye)


class GeometryAugment:
    """Transform every 3-vector of a modality's steps by one random linear map per sample, in raw
    units: a rotation (``rotate``: max degrees per modality), then a shear (``shear``: largest
    off-diagonal entry per modality).

    Why: on a cross-subject split what changes between people is, to a large part, geometry — how a
    wrist sensor sits (the same motion reads differently along the sensor's axes), which way a
    person faces the camera, and body proportions and movement style (an arm swung wider or
    flatter, which a shear imitates; skeleton-based action recognition trains with it widely).
    Showing that variation during training asks the model for what the class has in common.
    Inputs reach the augmentation normalised per feature, and a linear map is only meaningful in
    the original units, so each transformed modality is de-normalised, mapped and normalised again
    with the training statistics. Steps of an IMU (acc xyz, gyro xyz) share one map, as both sensors
    sit in the same housing; so do the joints of a skeleton. Padded steps and absent modalities
    stay exactly zero.
    """

    def __init__(self, rotate: Dict[str, float], schema: DatasetSchema, mean: Dict[str, Any],
                 std: Dict[str, Any], shear: Optional[Dict[str, float]] = None) -> None:
        shear = dict(shear or {})
        for name in [*rotate, *shear]:
            if name not in schema.modality_names:
                raise ValueError(unknown_modality_message(name, schema.modality_names))
            spec = schema.modality(name)
            features = int(math.prod(spec.step_shape))
            if spec.kind not in ("time_series", "vector") or features % 3:
                raise ValueError(f"cannot rotate or shear {name!r}: that needs steps made of 3-vectors (x, y, z), "
                                 f"its steps are {spec.kind} of shape {tuple(spec.step_shape)}")
        for name, degrees in rotate.items():
            if not 0 < degrees <= 180:
                raise ValueError(f"rotation of {name!r} must be in (0, 180] degrees, got {degrees}")
        for name, amount in shear.items():
            if not 0 < amount <= 1:
                raise ValueError(f"shear of {name!r} must be in (0, 1], got {amount}")
        self.max_degrees = dict(rotate)
        self.max_shear = shear
        names = {*rotate, *shear}
        self.mean = {n: torch.as_tensor(mean[n], dtype=torch.float32).reshape(-1, 3) for n in names}
        self.std = {n: torch.as_tensor(std[n], dtype=torch.float32).reshape(-1, 3) for n in names}

    def _maps(self, name: str, count: int, gen: torch.Generator) -> torch.Tensor:
        """(count, 3, 3) per-sample maps of one modality; rotation draws come first, as they did
        before shears existed, so rotation-only runs keep their random stream."""
        maps = torch.eye(3).expand(count, 3, 3)
        if name in self.max_degrees:
            maps = random_rotations(count, self.max_degrees[name], gen)
        if name in self.max_shear:
            maps = random_shears(count, self.max_shear[name], gen) @ maps
        return maps

    def __call__(self, batch: Batch, gen: torch.Generator) -> Batch:
        out = batch
        for name in batch.modalities:  # data-set order: the draws do not depend on the dict's order
            if name not in self.mean:
                continue
            x = out.inputs[name]
            maps = self._maps(name, batch.size, gen).to(x.dtype)
            vectors = x.reshape(x.shape[0], -1, *self.mean[name].shape) if x.dim() > 2 else \
                x.reshape(x.shape[0], 1, *self.mean[name].shape)  # (B, T, K, 3)
            raw = vectors * self.std[name] + self.mean[name]
            mapped = (torch.einsum("bij,btkj->btki", maps, raw) - self.mean[name]) / self.std[name]
            keep = batch.presence(name).to(x.dtype)[:, None]
            if name in batch.padding_mask:
                keep = keep * batch.padding_mask[name].to(x.dtype)
            mapped = mapped * keep[..., None, None]
            out = out.with_modality(name, values=mapped.reshape(x.shape))
        return out


def _window_positions(valid: torch.Tensor, steps: int, start: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
    """(B, steps) fractional source positions that stretch each row's window
    [start, start + span] (fractions of its ``valid`` real steps) over those real steps.

    Padded positions (at or after a row's valid length) map onto themselves."""
    t = torch.arange(steps, dtype=torch.float32)[None, :]
    last = (valid.to(torch.float32) - 1).clamp_min(0)[:, None]
    unit = t / last.clamp_min(1)  # 0 .. 1 over the real steps
    pos = (start[:, None] + span[:, None] * unit) * last
    return torch.where(t < valid[:, None], pos, t)


def _resample_rows(x: torch.Tensor, pos: torch.Tensor, blend: bool) -> torch.Tensor:
    """Read (B, T, ...) ``x`` at fractional step positions (B, T): linear interpolation if ``blend``,
    else the nearest step (frames are never blended, as in the preprocessing)."""
    t = x.shape[1]
    if not blend:
        idx = pos.round().long().clamp(0, t - 1)
        return torch.gather(x, 1, idx.reshape(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))
    lo = pos.floor().long().clamp(0, t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo.to(pos.dtype)).clamp(0, 1).reshape(*pos.shape, *([1] * (x.dim() - 2))).to(x.dtype)

    def at(i: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, 1, i.reshape(*i.shape, *([1] * (x.dim() - 2))).expand_as(x))
    return at(lo) * (1 - w) + at(hi) * w


def time_augment(batch: Batch, prob: float, gen: torch.Generator, kinds: Dict[str, str],
                 max_crop: float = 0.2) -> Batch:
    """With probability ``prob`` per sample, cut up to ``max_crop`` of the recording (split at random
    between its start and its end) and stretch what is left back over the sample's steps.

    Why: people perform one action at different speeds and start and stop it at different moments
    of the recording; with few subjects in training a model can learn one person's tempo. The window
    is drawn once per sample and applied to *every* modality of it, in fractions of each
    modality's own length, so synchronised streams stay synchronised (a crop must not create a
    cross-modal conflict the label does not explain). ``kinds`` maps modality names to schema kinds:
    frame sequences take the nearest step, feature streams are interpolated, vectors are left alone.
    Padding stays where it was and stays zero.
    """
    if prob <= 0 or max_crop <= 0:
        return batch
    b = batch.size
    hit = (torch.rand(b, generator=gen) < prob).to(torch.float32)
    crop = torch.rand(b, generator=gen) * max_crop * hit
    start = torch.rand(b, generator=gen) * crop
    span = 1 - crop
    out = batch
    for name in batch.modalities:
        if kinds.get(name, "vector") == "vector":
            continue
        x = out.inputs[name]
        pad = batch.padding_mask.get(name)
        valid = pad.sum(dim=1) if pad is not None else torch.full((b,), x.shape[1])
        pos = _window_positions(valid, x.shape[1], start, span)
        out = out.with_modality(name, values=_resample_rows(x, pos, blend=kinds[name] != "frame_sequence"))
    return out


def mixup(batch: Batch, max_weight: float, gen: torch.Generator) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """Blend every sample with another sample of the batch: ``(1 - w) * own + w * other`` for every
    modality both have present, with ``w`` drawn uniformly from ``[0, max_weight]`` per sample.

    Returns the batch, the partner row of each sample and ``w`` (zero where the two share no present
    modality, so nothing was blended). The training loss gives the partner's label weight ``w``.

    Why: with four training subjects a model can memorise each subject's way of moving; blends are
    new, in-between recordings whose label is known in proportion, which keeps the decision
    boundaries away from the training samples (mixup, Zhang et al. 2018). One ``w`` and one partner
    for all modalities of a sample keep the modalities consistent with each other, so the
    calibrator's cross-modal cues see no conflict. ``max_weight`` <= 0.5 keeps every sample's own
    label the larger part, which the other augmentations and the accuracy count rely on.
    """
    b = batch.size
    if max_weight <= 0 or batch.labels is None or b < 2:
        return batch, torch.arange(b), torch.zeros(b)
    if max_weight > 0.5:
        raise ValueError(f"mixup weight must be at most 0.5 (the own sample stays the larger part), got {max_weight}")
    partner = (torch.arange(b) + torch.randint(1, b, (b,), generator=gen)) % b  # never the sample itself
    weight = torch.rand(b, generator=gen) * max_weight
    shared = torch.zeros(b, dtype=torch.bool)
    for n in batch.modalities:
        shared |= batch.presence(n) & batch.presence(n)[partner]
    weight = weight * shared.to(weight.dtype)
    out = batch
    for n in batch.modalities:
        both = batch.presence(n) & batch.presence(n)[partner]
        x = out.inputs[n]
        w = (weight * both.to(x.dtype)).reshape(-1, *([1] * (x.dim() - 1)))
        other = x[partner]
        if n in batch.padding_mask:  # the partner's padding (and steps beyond its length) add nothing
            pad = batch.padding_mask[n][partner] & batch.padding_mask[n]
            other = other * pad.to(x.dtype).reshape(*pad.shape, *([1] * (x.dim() - 2)))
        out = out.with_modality(n, values=(1 - w) * x + w * other)
    return out, partner, weight
