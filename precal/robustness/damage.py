"""The damage each corruption does, as vectorised tensor operations over a whole batch.

Each function takes a :class:`CorruptionInput` (one modality of a batch plus sample-keyed randomness)
and a level in the corruption's own unit, and returns a :class:`CorruptionOutput`. The guarantees
every corruption keeps (padding and absent samples untouched, severity 0 the identity) are enforced
centrally by :func:`precal.robustness.corruptions.apply_corruption`; the catalogue that names these
functions for people is :data:`precal.robustness.corruptions.CORRUPTIONS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from precal.data.batch import Batch
from precal.data.schema import unknown_modality_message
from precal.robustness.keyed_random import KeyedRandom


# --------------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptionInput:
    """What a corruption function sees: one modality of a batch plus sample-keyed randomness.

    ``padding_mask`` is None for vector modalities. ``pool`` is the donor batch for ``swap``.
    """

    modality: str
    kind: str
    values: Tensor
    padding_mask: Optional[Tensor]
    present: Tensor
    labels: Optional[Tensor]
    rng: "KeyedRandom"
    pool: Batch

    @property
    def batch_size(self) -> int:
        return int(self.values.shape[0])

    @property
    def real(self) -> Tensor:
        """(B, T) bool: the steps a corruption may change (real steps of present samples)."""
        if self.padding_mask is None:
            return self.present[:, None]
        return self.padding_mask & self.present[:, None]

    @property
    def lengths(self) -> Tensor:
        """(B,) int64: number of changeable steps per sample (0 for absent samples)."""
        return self.real.sum(dim=1)

    @property
    def rows(self) -> Tensor:
        """(B,) bool: samples with something to corrupt."""
        return self.lengths > 0

    def real_like_values(self) -> Tensor:
        """``real`` reshaped to broadcast against ``values`` ((B, T, 1, ...) or (B, 1))."""
        return steps_view(self.real, self.values)


@dataclass(frozen=True)
class CorruptionOutput:
    """What a corruption function returns.

    ``values`` may differ from the input anywhere; :func:`apply_corruption` keeps only the changes on
    real steps of present samples unless ``whole_rows`` says the function replaced complete rows
    itself (``swap`` replaces a sample's padding together with its values). ``affected`` defaults to
    every sample that had something to corrupt.
    """

    values: Tensor
    affected: Optional[Tensor] = None
    present: Optional[Tensor] = None
    padding_mask: Optional[Tensor] = None
    donor_rows: Optional[Tensor] = None
    whole_rows: bool = False


CorruptionFn = Callable[[CorruptionInput, float], CorruptionOutput]


# --------------------------------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------------------------------


def steps_view(mask: Tensor, values: Tensor) -> Tensor:
    """A (B, T) or (B, 1) mask reshaped to broadcast over ``values``' trailing dimensions."""
    return mask.reshape(*mask.shape, *([1] * (values.dim() - mask.dim())))


def _rows_view(rows: Tensor, values: Tensor) -> Tensor:
    """A (B,) tensor reshaped to broadcast over ``values``."""
    return rows.reshape(-1, *([1] * (values.dim() - 1)))


def _per_step(t: Tensor, steps: int) -> Tensor:
    """``t`` viewed as (B, steps, values per step); vectors are one step of F values."""
    per = math.prod(t.shape[1:]) // max(steps, 1)
    return t.reshape(t.shape[0], steps, per)


def _real_power(t: Tensor, inp: CorruptionInput) -> Tensor:
    """(B,) mean square of ``t`` over each sample's real elements (0 where there are none).

    Reduces each step with ``vector_norm`` (no full-size temporary: on large frame batches fresh
    memory, not arithmetic, is the main cost) and then masks the (B, T) step sums.
    """
    real = inp.real
    steps = _per_step(t, real.shape[1])
    per_step = torch.linalg.vector_norm(steps, dim=2).square()
    per_step = torch.where(real, per_step, torch.zeros((), dtype=t.dtype, device=t.device))
    count = real.sum(dim=1) * steps.shape[2]
    return per_step.sum(dim=1) / count.clamp_min(1)


def _real_extreme(inp: CorruptionInput, largest: bool) -> Tensor:
    """(B,) min or max over each sample's real elements (0 where there are none)."""
    x, real = inp.values, inp.real
    steps = _per_step(x, real.shape[1])
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    if steps.shape[1] == 0 or steps.shape[2] == 0:
        return zero.expand(x.shape[0]).clone()
    per_step = steps.amax(dim=2) if largest else steps.amin(dim=2)
    fill = torch.full((), float("-inf") if largest else float("inf"), dtype=x.dtype, device=x.device)
    per_step = torch.where(real, per_step, fill)
    ext = per_step.amax(dim=1) if largest else per_step.amin(dim=1)
    return torch.where(inp.rows, ext, zero)


def _count(fraction: float, lengths: Tensor) -> Tensor:
    """(B,) round(fraction * length): how many steps a fractional level touches per sample."""
    return torch.round(lengths.to(torch.float64) * fraction).to(torch.int64)


def _ranks(keys: Tensor, eligible: Tensor) -> Tensor:
    """(B, T) rank of each eligible step by its random key (ineligible steps rank last).

    Keeping the k lowest ranks selects k random steps; with the same keys a larger k selects a
    superset, which is what makes severities nest.
    """
    keys = torch.where(eligible, keys, torch.full((), 2.0, device=keys.device))
    order = torch.argsort(keys, dim=1, stable=True)
    steps = torch.arange(keys.shape[1], device=keys.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, steps)


def _gather_steps(x: Tensor, src: Tensor) -> Tensor:
    """``out[b, t] = x[b, src[b, t]]`` for (B, T, ...) values and (B, T) step indices."""
    rows = torch.arange(x.shape[0], device=x.device)[:, None]
    return x[rows, src.to(x.device)]


# --------------------------------------------------------------------------------------------------
# Corruption functions (level is in the corruption's display unit)
# --------------------------------------------------------------------------------------------------


def gaussian_noise(inp: CorruptionInput, snr_db: float) -> CorruptionOutput:
    """Additive white noise scaled per sample so the realised SNR equals the target exactly.

    Exact scaling (rather than sigma from the expected power) keeps the severity label literally
    true even for short sequences, and makes a loud sample and a quiet one equally damaged.
    """
    x = inp.values
    z = inp.rng.normal("noise", tuple(x.shape[1:])).to(x.dtype)
    signal = _real_power(x, inp)
    drawn = _real_power(z, inp).clamp_min(torch.finfo(x.dtype).tiny)
    scale = torch.sqrt(signal / (10.0 ** (snr_db / 10.0)) / drawn)
    return CorruptionOutput(z.mul_(_rows_view(scale, x)).add_(x))  # in place: z is our own tensor


def element_dropout(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """Each value independently set to 0 (the mean) with probability ``percent``%."""
    x = inp.values
    u = inp.rng.uniform("dropout", tuple(x.shape[1:]))
    return CorruptionOutput(x.masked_fill(u < percent / 100.0, 0.0))


def feature_scaling(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """Each value multiplied by its own factor drawn uniformly from 1 ± ``percent``%.

    The same uniform draws serve every severity, so a higher severity scales the same features
    further in the same direction."""
    x = inp.values
    u = inp.rng.uniform("gain", tuple(x.shape[1:])).to(x.dtype)
    return CorruptionOutput(x * (1.0 + (2.0 * u - 1.0) * (percent / 100.0)))


def temporal_mask(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """One contiguous block of real steps (``percent``% of them, at least one) set to 0.

    Positions are counted among real steps, so the block is contiguous in the sample's own time
    even if padding is not a suffix.
    """
    x, real, lengths = inp.values, inp.real, inp.lengths
    k = torch.minimum(_count(percent / 100.0, lengths).clamp_min(1), lengths)
    u = inp.rng.uniform("position")
    start = torch.floor(u.double() * (lengths - k + 1).double()).to(torch.int64)
    start = torch.minimum(start, (lengths - k).clamp_min(0))
    rank = real.cumsum(dim=1) - 1
    block = real & (rank >= start[:, None]) & (rank < (start + k)[:, None])
    return CorruptionOutput(x.masked_fill(steps_view(block, x), 0.0))


def temporal_shuffle(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """``percent``% of the real steps (at least 2) rotated along a random cycle among themselves.

    A random cycle rather than a uniform permutation: every chosen step really moves, so the damage
    matches the label (a uniform permutation of 2 steps is the identity half of the time).
    """
    x, real, lengths = inp.values, inp.real, inp.lengths
    t = x.shape[1]
    k = torch.minimum(_count(percent / 100.0, lengths), lengths)
    k = torch.where((k < 2) & (lengths >= 2), torch.full_like(k, 2), k)
    keys = inp.rng.uniform("order", (t,))
    order = torch.argsort(torch.where(real, keys, torch.full((), 2.0, device=x.device)), dim=1, stable=True)
    j = torch.arange(t, device=x.device)[None, :]
    nxt = torch.where(j + 1 < k[:, None], order.roll(-1, dims=1), order[:, :1])
    src_in_order = torch.where(j < k[:, None], nxt, order)
    src = torch.empty_like(order).scatter_(1, order, src_in_order)
    return CorruptionOutput(_gather_steps(x, src))


def frame_drop(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """``percent``% of real frames replaced by the last kept frame (a frozen camera).

    The first real frame is always kept, so every dropped frame has something to repeat.
    """
    x, real, lengths = inp.values, inp.real, inp.lengths
    t = x.shape[1]
    if t == 0:
        return CorruptionOutput(x.clone())
    steps = torch.arange(t, device=x.device)[None, :].expand(x.shape[0], t)
    first = torch.where(real, steps, torch.full_like(steps, t)).amin(dim=1)
    eligible = real & (steps != first[:, None])
    k = torch.minimum(_count(percent / 100.0, lengths), (lengths - 1).clamp_min(0))
    dropped = eligible & (_ranks(inp.rng.uniform("drop", (t,)), eligible) < k[:, None])
    kept = real & ~dropped
    src = torch.where(kept, steps, torch.full_like(steps, -1)).cummax(dim=1).values.clamp_min(0)
    return CorruptionOutput(_gather_steps(x, src))


def occlusion(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """A square patch (side ``percent``% of min(H, W)) filled with the sample's minimum, same place
    in every frame (an object in front of a static camera)."""
    x = inp.values
    h, w = x.shape[2], x.shape[3]
    side = max(1, int(round(percent / 100.0 * min(h, w))))
    u = inp.rng.uniform("position", (2,)).double()
    top = torch.floor(u[:, 0] * (h - side + 1)).to(torch.int64)
    left = torch.floor(u[:, 1] * (w - side + 1)).to(torch.int64)
    rows = torch.arange(h, device=top.device)[None, :]
    cols = torch.arange(w, device=top.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + side)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + side)[:, None])
    patch = (in_rows[:, :, None] & in_cols[:, None, :]).to(x.device)
    fill = _real_extreme(inp, largest=False)
    return CorruptionOutput(torch.where(patch[:, None], fill.reshape(-1, 1, 1, 1), x))


def _blur_matrix(n: int, sigma: float, dtype: torch.dtype) -> Tensor:
    """(n, n) matrix applying a 1-D Gaussian blur (radius 3 sigma) with replicated borders."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    weights = weights / weights.sum()
    out_idx = torch.arange(n)[:, None].expand(n, offsets.numel())
    src_idx = (out_idx + offsets.to(torch.int64)[None, :]).clamp(0, n - 1)
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((out_idx.reshape(-1), src_idx.reshape(-1)), weights.repeat(n), accumulate=True)
    return m.to(dtype)


_BLUR_CHUNK_VALUES = 1 << 20
"""Frames are blurred in chunks of about this many values so the intermediate stays small."""


def blur(inp: CorruptionInput, sigma: float) -> CorruptionOutput:
    """Separable Gaussian blur of every frame (an out-of-focus lens).

    The two 1-D passes are matrix products with banded blur matrices: on CPU this is several times
    faster than ``conv2d`` with a long kernel, and borders are handled inside the matrices. Chunking
    keeps the intermediate of the first pass small, so only the output costs fresh memory.
    """
    x = inp.values
    h, w = x.shape[2], x.shape[3]
    rows = _blur_matrix(h, sigma, x.dtype).to(x.device)
    cols_t = _blur_matrix(w, sigma, x.dtype).to(x.device).T.contiguous()
    frames = x.reshape(-1, h, w)
    out = torch.empty_like(frames)
    step = max(1, _BLUR_CHUNK_VALUES // max(h * w, 1))
    for start in range(0, frames.shape[0], step):
        chunk = slice(start, start + step)
        torch.matmul(torch.matmul(rows, frames[chunk]), cols_t, out=out[chunk])
    return CorruptionOutput(out.reshape(x.shape))


def dead_pixels(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """``percent``% of pixel positions stuck at the sample's minimum or maximum (half each on
    average), same positions in every frame (a damaged sensor)."""
    x = inp.values
    hw = tuple(x.shape[2:])
    dead = (inp.rng.uniform("position", hw) < percent / 100.0).to(x.device)
    high = (inp.rng.uniform("polarity", hw) < 0.5).to(x.device)
    lo = _real_extreme(inp, largest=False).reshape(-1, 1, 1)
    hi = _real_extreme(inp, largest=True).reshape(-1, 1, 1)
    stuck = torch.where(high, hi, lo)
    return CorruptionOutput(torch.where(dead[:, None], stuck[:, None], x))


def remove_zero(inp: CorruptionInput, _level: float) -> CorruptionOutput:
    """All real values set to 0 (the mean) while the modality still claims to be present."""
    return CorruptionOutput(torch.zeros_like(inp.values))


def remove_absent(inp: CorruptionInput, _level: float) -> CorruptionOutput:
    """Values zeroed and the modality marked absent: what a model sees for truly missing data."""
    return CorruptionOutput(
        torch.zeros_like(inp.values),
        affected=inp.present.clone(),
        present=torch.zeros_like(inp.present),
    )


def _label_groups(labels: Tensor, reference: Tensor) -> Tensor:
    """Integer groups such that "different group" means "different class".

    Class indices are their own groups. Float (regression) targets are grouped by sign when the
    reference has both signs (the usual binary task for signed targets such as sentiment), else
    split at the reference median.
    """
    if not labels.is_floating_point():
        return labels.to(torch.int64)
    ref = reference.to(torch.float64)
    if bool((ref < 0).any()) and bool((ref >= 0).any()):
        return (labels >= 0).to(torch.int64)
    return (labels.to(torch.float64) > ref.median()).to(torch.int64)


def _pool_values(inp: CorruptionInput) -> Tuple[Tensor, Optional[Tensor]]:
    """The pool's values and padding mask for the modality, checked to fit the batch."""
    pool, m, x = inp.pool, inp.modality, inp.values
    if inp.labels is None or pool.labels is None:
        raise ValueError("swap needs labels on the batch and the pool to pick a different-class donor")
    if m not in pool.inputs:
        raise KeyError(unknown_modality_message(m, pool.modalities))
    donors_x = pool.inputs[m]
    if tuple(donors_x.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"swap: pool modality {m!r} has shape {tuple(donors_x.shape[1:])} per sample, the "
                         f"batch has {tuple(x.shape[1:])}; pad both to the same length")
    if inp.padding_mask is None:
        return donors_x, None
    pool_mask = pool.padding_mask.get(m)
    if pool_mask is None:
        pool_mask = torch.ones(donors_x.shape[:2], dtype=torch.bool, device=donors_x.device)
    return donors_x, pool_mask


def _pick_donors(inp: CorruptionInput, fraction: float) -> Tensor:
    """(B,) donor row in the pool for each swapped sample, -1 for the others (all on CPU).

    Each present sample is swapped independently with probability ``fraction`` (a per-sample
    decision keeps a sample's fate independent of its batch); its donor is drawn uniformly among
    the present pool samples of a different class: the r-th candidate, found with a cumulative sum
    over the (B, pool) candidate matrix.
    """
    ref = inp.pool.labels.cpu()
    candidates = (_label_groups(inp.labels.cpu(), ref)[:, None] != _label_groups(ref, ref)[None, :])
    candidates &= inp.pool.presence(inp.modality).cpu()[None, :]
    counts = candidates.sum(dim=1)
    chosen = inp.present.cpu() & (inp.rng.uniform("select").cpu() < fraction)
    stranded = chosen & (counts == 0)
    if bool(stranded.any()):
        first = int(torch.nonzero(stranded)[0])
        raise ValueError(f"swap: no present sample of a different class in the pool for row {first} "
                         f"(label {inp.labels[first].item()!r}); the pool needs at least two classes")
    r = torch.floor(inp.rng.uniform("donor").cpu().double() * counts.double()).to(torch.int64)
    r = torch.minimum(r, (counts - 1).clamp_min(0))
    donor = (candidates.cumsum(dim=1) <= r[:, None]).sum(dim=1).clamp_max(max(len(ref) - 1, 0))
    return torch.where(chosen, donor, torch.full_like(donor, -1))


def swap(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """Replace the modality of ``percent``% of samples by that of a different-class donor.

    A realistic conflict: data that looks valid but belongs to another sample. Whole rows are
    replaced, the donor's padding mask included, so a swapped sample is exactly the donor's data.
    """
    x = inp.values
    donors_x, pool_mask = _pool_values(inp)
    donor = _pick_donors(inp, percent / 100.0)
    rows = torch.nonzero(donor >= 0).squeeze(1)
    take = donor[rows]
    values = x.clone()
    values[rows.to(x.device)] = donors_x[take.to(donors_x.device)].to(device=x.device, dtype=x.dtype)
    mask = None
    if pool_mask is not None and inp.padding_mask is not None:
        mask = inp.padding_mask.clone()
        mask[rows.to(x.device)] = pool_mask[take.to(pool_mask.device)].to(x.device)
    return CorruptionOutput(values, affected=(donor >= 0).to(x.device), padding_mask=mask,
                            donor_rows=donor, whole_rows=True)
