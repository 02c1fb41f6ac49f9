"""Derived input channels, computed inside the model from a modality's own (normalised) input.

Two derived channels, both measured on UTD-MHAD's inner cross-subject folds (see the README):

- **velocity**: each feature's change since the previous step. A normalised skeleton is dominated
  by posture (where the arms are), and a person's posture differs from the next person's; how the
  joints move differs much less. The first convolution could learn differences, but the change per
  step is small next to the positions' spread, so explicit, standardised velocities make the
  movement as visible as the pose.
- **norms**: the length of a group of columns in physical units, e.g. ``|acc|`` and ``|gyro|`` of a
  wearable IMU. A strap sits a little differently on every wrist, which turns the axes of the
  sensor; the length of the acceleration vector does not turn with them.

Why inside the model and not in preprocessing: corruptions, augmentations (noise, rotations,
swaps) and the dashboard all work on the modality's own input, and what is derived from it must
follow. Noise on the joint positions is then also noise on their velocities, and a rotated IMU
keeps its norms, exactly as for a real sensor.

The statistics that make the derived channels unit-scale are fitted once on the training split
(:meth:`DerivedInputs.fit`) and stored as buffers, so they travel in the checkpoint's weights.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

ColumnGroup = Tuple[int, int]  # [start, stop) of one group of columns of a (F,) step

_GROUP = re.compile(r"^(\d+)-(\d+)$")


def parse_column_groups(text: str) -> List[ColumnGroup]:
    """``"0-2,3-5"`` -> ``[(0, 3), (3, 6)]`` (inclusive ranges in the text, half-open in the result),
    with an error that shows the expected form."""
    groups: List[ColumnGroup] = []
    for part in text.split(","):
        match = _GROUP.match(part.strip())
        if not match or int(match.group(1)) >= int(match.group(2)):
            raise ValueError(f"column groups are comma-separated inclusive ranges of at least two columns, "
                             f"e.g. 0-2,3-5; got {text!r}")
        groups.append((int(match.group(1)), int(match.group(2)) + 1))
    return groups


def derived_step_shape(step_shape: Sequence[int], velocity: bool, norms: Sequence[ColumnGroup]) -> Tuple[int, ...]:
    """The step shape the encoder sees: velocities double the last axis (a point keeps its
    coordinates together: (J, C) -> (J, 2C)); norms add one column each to a (F,) step."""
    shape = list(step_shape)
    if velocity:
        shape[-1] *= 2
    if norms:
        shape[-1] += len(norms)
    return tuple(shape)


def describe_derived(velocity: bool, norms: str = "") -> str:
    """What an encoder sees beyond its modality's input, in words (overview tables, ``precal info``)."""
    parts = (["change per step"] if velocity else []) + ([f"lengths of columns {norms}"] if norms else [])
    return "; ".join(parts) or "—"


def check_derived(name: str, kind: str, step_shape: Sequence[int], velocity: bool,
                  norms: Sequence[ColumnGroup]) -> None:
    """Refuse derived channels a modality cannot have, naming the modality and the reason."""
    if (velocity or norms) and kind not in ("time_series", "token_sequence"):
        raise ValueError(f"derived inputs need a feature stream; {name!r} is a {kind}")
    if norms:
        if len(step_shape) != 1:
            raise ValueError(f"norms need steps of shape (F,); {name!r} has steps of shape {tuple(step_shape)}")
        for start, stop in norms:
            if stop > step_shape[0]:
                raise ValueError(f"norm columns {start}-{stop - 1} are out of range for {name!r}, "
                                 f"which has {step_shape[0]} columns")


SOFT_LIMIT = 4.0
"""Standardised derived channels are squashed into (-4, 4) (nearly linear within +-2).

Why: a difference amplifies noise. At the noise augmentation's lowest SNR (-5 dB) a joint's
step-to-step change is dozens of standard deviations of a real movement, and such values dominate
the batch statistics of the encoder's normalisation layers, for the clean samples too: on UTD-MHAD's
inner folds, skeleton-with-velocity trained with noise augmentation did worse than without it until
the channels were bounded."""


def soft_clip(x: Tensor, limit: float = SOFT_LIMIT) -> Tensor:
    """``limit * tanh(x / limit)``: the identity near 0, bounded by ``limit``."""
    return limit * torch.tanh(x / limit)


class DerivedInputs(nn.Module):
    """(B, T, *step) normalised input -> (B, T, *derived step): the input with derived channels
    appended along the last axis, each standardised with statistics of the training split.

    ``input_mean``/``input_std`` are the preprocessing statistics of the input: norms need physical
    units, so they undo the normalisation first. Padded steps of the derived channels are zero (the
    training average), and so is a step's velocity when it or the step before it is padding (the
    first step has none).
    """

    def __init__(self, step_shape: Sequence[int], velocity: bool = False,
                 norms: Sequence[ColumnGroup] = ()) -> None:
        super().__init__()
        self.step_shape = tuple(int(s) for s in step_shape)
        self.velocity = velocity
        self.norms = [tuple(g) for g in norms]
        features = 1
        for s in self.step_shape:
            features *= s
        derived = (features if velocity else 0) + len(self.norms)
        self.register_buffer("input_mean", torch.zeros(features))
        self.register_buffer("input_std", torch.ones(features))
        self.register_buffer("derived_mean", torch.zeros(derived))
        self.register_buffer("derived_std", torch.ones(derived))

    @property
    def out_step_shape(self) -> Tuple[int, ...]:
        return derived_step_shape(self.step_shape, self.velocity, self.norms)

    def _has_previous(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        """(B, T): the step and the one before it are both real (where a velocity exists)."""
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask
        both = torch.zeros_like(valid)
        both[:, 1:] = valid[:, 1:] & valid[:, :-1]
        return both

    def _raw_channels(self, x: Tensor) -> Tensor:
        """(B, T, *step) -> (B, T, derived) before standardisation (velocities of every step pair)."""
        b, t = x.shape[:2]
        flat = x.reshape(b, t, -1)
        parts: List[Tensor] = []
        if self.velocity:
            step = torch.zeros_like(flat)
            step[:, 1:] = flat[:, 1:] - flat[:, :-1]
            parts.append(step)
        if self.norms:
            physical = flat * self.input_std + self.input_mean
            parts.extend(physical[..., a:z].norm(dim=-1, keepdim=True) for a, z in self.norms)
        return torch.cat(parts, dim=-1)

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tensor:
        b, t = x.shape[:2]
        derived = soft_clip((self._raw_channels(x) - self.derived_mean) / self.derived_std)
        # Where a channel has no value it is 0, the training average: every derived channel on a
        # padded step, and the velocity of a step without a real predecessor.
        keep = torch.ones_like(derived)
        if self.velocity:
            features = self.input_mean.numel()
            keep[..., :features] = self._has_previous(x, mask)[..., None].to(x.dtype)
        if mask is not None:
            keep = keep * mask[..., None].to(x.dtype)
        derived = derived * keep
        if len(self.step_shape) == 1:
            return torch.cat([x, derived], dim=-1)
        # Points: each point's velocity sits beside its own coordinates, so (J, C) becomes (J, 2C).
        return torch.cat([x, derived.reshape(b, t, *self.step_shape)], dim=-1)

    @torch.no_grad()
    def fit(self, x: Tensor, mask: Optional[Tensor], present: Tensor,
            input_mean: Tensor, input_std: Tensor) -> None:
        """Store the input's preprocessing statistics and standardise the derived channels over the
        real steps of the present samples of ``x`` (the training split)."""
        features = self.input_mean.numel()
        self.input_mean.copy_(torch.as_tensor(input_mean, dtype=torch.float32).reshape(-1).expand(features))
        self.input_std.copy_(torch.as_tensor(input_std, dtype=torch.float32).reshape(-1).expand(features))
        if self.derived_mean.numel() == 0:
            return
        valid = present[:, None].expand(x.shape[:2]).clone()
        if mask is not None:
            valid &= mask
        has_previous = self._has_previous(x, valid)  # first steps have no velocity to count
        values = self._raw_channels(x)
        mean = torch.zeros_like(self.derived_mean)
        std = torch.ones_like(self.derived_std)
        offset = 0
        if self.velocity:
            velocity = values[..., :features][has_previous]
            if len(velocity) > 1:
                mean[:features] = velocity.mean(dim=0)
                std[:features] = velocity.std(dim=0)
            offset = features
        if self.norms:
            norms = values[..., offset:][valid]
            if len(norms) > 1:
                mean[offset:] = norms.mean(dim=0)
                std[offset:] = norms.std(dim=0)
        self.derived_mean.copy_(mean)
        self.derived_std.copy_(std.clamp_min(1e-6))


class WithDerivedInputs(nn.Module):
    """An encoder trunk fed with derived channels: ``encoder(derived(x), mask)``."""

    def __init__(self, derived: DerivedInputs, encoder: nn.Module) -> None:
        super().__init__()
        self.derived = derived
        self.encoder = encoder

    def forward(self, x: Tensor, mask: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        return self.encoder(self.derived(x, mask), mask)
