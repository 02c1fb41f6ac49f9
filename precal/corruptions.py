"""Corruptions: controlled, reproducible damage to one modality of a batch.

The same suite serves two callers with different needs:

- the robustness sweep corrupts a whole test split (B up to a few hundred) for every
  modality x corruption x severity, so every corruption is a handful of vectorised tensor operations
  with no Python loop over samples;
- the dashboard's corruption lab corrupts *one* sample interactively and must show exactly what the
  sweep measured.

The second need drives the randomness design. Random draws are keyed by the *sample* (its
``batch.indices`` entry), not by its row in the batch: each (seed, corruption, modality, purpose)
stream owns a fixed random "tape" made by a seeded ``torch.Generator``, and sample ``i`` reads a
window of that tape starting at an offset hashed from its index. A sample therefore gets the same
corruption alone or inside any batch, and even with more padding appended (the tape does not depend
on how much is read). Different samples read different windows (2**18 possible offsets), so their
noise is uncorrelated. Only ``swap`` depends on other samples by nature (the donor pool).

Rules every corruption follows (enforced centrally in :func:`apply_corruption`):

- pure: inputs are never modified, a new :class:`~precal.data.batch.Batch` is returned;
- only real steps (``padding_mask`` True) of present samples change; padded steps and absent samples
  are left bit-identical; shapes, dtypes and masks are kept (``remove_absent`` clears ``present``;
  ``swap`` takes the donor's padding mask along with its values);
- severity 0 is the identity, severities 1..5 use :attr:`Corruption.levels`, and with a fixed seed
  a random corruption draws the same random numbers at every severity, so higher severities damage
  a superset (dropout, dead pixels, dropped frames) or a scaled copy (noise) of lower ones.

Inputs are normalised per feature, so "0" is the data set's mean level: zeroing is "replace by the
average", not "replace by black".
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from precal.data.batch import Batch
from precal.data.schema import MODALITY_KINDS, unknown_modality_message

__all__ = [
    "CORRUPTIONS",
    "MAX_SEVERITY",
    "Corruption",
    "CorruptionInput",
    "CorruptionOutput",
    "CorruptionResult",
    "KeyedRandom",
    "apply_corruption",
    "check_severity",
    "corruptions_for",
    "get_corruption",
    "measured_snr_db",
]

MAX_SEVERITY = 5
"""Severities are 0 (clean) .. 5; a coarse ordinal scale, as in ImageNet-C, so plots line up."""

FEATURE_STREAMS: Tuple[str, ...] = ("time_series", "token_sequence")
FRAMES: Tuple[str, ...] = ("frame_sequence",)
SEQUENCE_KINDS: Tuple[str, ...] = FEATURE_STREAMS + FRAMES


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
        return _steps_view(self.real, self.values)


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


@dataclass(frozen=True)
class CorruptionResult:
    """A corrupted batch and which samples were changed.

    ``affected`` (B,) bool marks the samples whose modality was corrupted (the swapped ones for
    ``swap``, every present sample with real steps for the others): the positives for corruption
    detection AUROC. ``donor_rows`` (B,) int64 is set by ``swap`` only: the donor's row in the pool,
    -1 where the sample was not swapped (so the dashboard can say whose data it is now showing).
    """

    batch: Batch
    affected: Tensor
    donor_rows: Optional[Tensor] = None


@dataclass(frozen=True)
class Corruption:
    """One kind of damage, described for people (dashboard, reports) and for code.

    ``levels`` holds the parameter at severities 1..5 in ``unit`` as shown to people (e.g. ``40``
    with unit ``"% of elements"``), so a label never needs a separate conversion table.
    ``random`` is False for deterministic corruptions (the seed has no effect; a UI can hide it).
    """

    name: str
    title: str
    description: str
    kinds: Tuple[str, ...]
    levels: Tuple[float, ...]
    unit: str
    function: CorruptionFn = field(repr=False, compare=False)
    random: bool = True

    def __post_init__(self) -> None:
        if len(self.levels) != MAX_SEVERITY:
            raise ValueError(f"corruption {self.name!r} needs {MAX_SEVERITY} levels, got {self.levels}")
        unknown = [k for k in self.kinds if k not in MODALITY_KINDS]
        if unknown:
            raise ValueError(f"corruption {self.name!r}: unknown kinds {unknown}; expected {MODALITY_KINDS}")

    def level(self, severity: int) -> float:
        """The parameter at a severity 1..5 (severity 0 has none: it is the clean input)."""
        s = check_severity(severity)
        if s == 0:
            raise ValueError(f"{self.name}: severity 0 is the clean input and has no level")
        return self.levels[s - 1]

    def level_label(self, severity: int) -> str:
        """Human label, e.g. ``"severity 3: 5 dB SNR"``; ``"clean"`` for severity 0."""
        s = check_severity(severity)
        if s == 0:
            return "clean"
        if self.unit == "on/off":
            return f"severity {s}: on"
        value = f"{self.levels[s - 1]:g}"
        sep = "" if self.unit.startswith("%") else " "
        return f"severity {s}: {value}{sep}{self.unit}"


# --------------------------------------------------------------------------------------------------
# Sample-keyed randomness
# --------------------------------------------------------------------------------------------------

_OFFSETS = 1 << 18
"""Distinct window offsets per random stream: two samples share a window with chance 1/2**18."""
_CHUNK = 1 << 16
"""Tapes are built from fixed-size chunks so that a tape's content never depends on its length."""
_MASK32 = 0xFFFFFFFF


def _stable_key(*parts: object) -> int:
    """A 63-bit seed from any parts, identical across processes (unlike the salted ``hash``)."""
    digest = hashlib.blake2b(repr(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _mul32(x: Tensor, c: int) -> Tensor:
    """``x * c mod 2**32`` for int64 tensors holding 32-bit values, without int64 overflow."""
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: Tensor) -> Tensor:
    """Chris Wellons' ``lowbias32`` integer hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _sample_offsets(sample_ids: Tensor, key: int) -> Tensor:
    """(B,) window offsets in [0, _OFFSETS): a stable hash of (stream key, sample id)."""
    ids = sample_ids.to(torch.int64).cpu()
    x = _hash32((ids & _MASK32) ^ (key & _MASK32))
    x = _hash32(x ^ ((ids >> 32) & _MASK32) ^ ((key >> 32) & _MASK32))
    return x & (_OFFSETS - 1)


def _tape_chunk(key: int, chunk: int, normal: bool) -> Tensor:
    """One fixed-size chunk of a random tape, seeded from (stream key, chunk number) alone."""
    gen = torch.Generator()
    gen.manual_seed(_stable_key(key, chunk))
    make = torch.randn if normal else torch.rand
    return make(_CHUNK, generator=gen)


@lru_cache(maxsize=32)
def _tape(key: int, chunks: int, normal: bool) -> Tensor:
    """A random tape of ``chunks`` chunks (cached, about 1 MB each: the dashboard re-corrupts with
    the same seed often, and a sweep reuses each stream for all five severities). Never mutated."""
    return torch.cat([_tape_chunk(key, c, normal) for c in range(chunks)])


class KeyedRandom:
    """Random fields keyed by (seed, corruption, modality, purpose, sample id).

    ``uniform``/``normal`` return (B, *shape) float32 tensors on ``device`` in which row ``i`` is a
    function of ``sample_ids[i]`` only, and element order is row-major over ``shape`` (so a field
    with more leading time steps extends, rather than changes, a shorter one).
    """

    def __init__(self, seed: int, corruption: str, modality: str, sample_ids: Tensor,
                 device: torch.device) -> None:
        self.seed = int(seed)
        self.corruption = corruption
        self.modality = modality
        self.sample_ids = sample_ids
        self.device = device

    def uniform(self, purpose: str, shape: Tuple[int, ...] = ()) -> Tensor:
        """Uniform [0, 1) per sample and element."""
        return self._field(purpose, tuple(shape), normal=False)

    def normal(self, purpose: str, shape: Tuple[int, ...] = ()) -> Tensor:
        """Standard normal per sample and element."""
        return self._field(purpose, tuple(shape), normal=True)

    def _field(self, purpose: str, shape: Tuple[int, ...], normal: bool) -> Tensor:
        b = int(self.sample_ids.shape[0])
        n = math.prod(shape)
        if n == 0 or b == 0:
            return torch.zeros((b, *shape), device=self.device)
        key = _stable_key(self.seed, self.corruption, self.modality, purpose, normal)
        tape = _tape(key, -(-(_OFFSETS + n - 1) // _CHUNK), normal)
        windows = tape.unfold(0, n, 1)  # view: window j is tape[j : j + n]
        return windows[_sample_offsets(self.sample_ids, key)].reshape(b, *shape).to(self.device)


# --------------------------------------------------------------------------------------------------
# Small tensor helpers
# --------------------------------------------------------------------------------------------------


def _steps_view(mask: Tensor, values: Tensor) -> Tensor:
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


def _gaussian_noise(inp: CorruptionInput, snr_db: float) -> CorruptionOutput:
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


def _element_dropout(inp: CorruptionInput, percent: float) -> CorruptionOutput:
    """Each value independently set to 0 (the mean) with probability ``percent``%."""
    x = inp.values
    u = inp.rng.uniform("dropout", tuple(x.shape[1:]))
    return CorruptionOutput(x.masked_fill(u < percent / 100.0, 0.0))


def _temporal_mask(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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
    return CorruptionOutput(x.masked_fill(_steps_view(block, x), 0.0))


def _temporal_shuffle(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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


def _frame_drop(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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


def _occlusion(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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


def _blur(inp: CorruptionInput, sigma: float) -> CorruptionOutput:
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


def _dead_pixels(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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


def _remove_zero(inp: CorruptionInput, _level: float) -> CorruptionOutput:
    """All real values set to 0 (the mean) while the modality still claims to be present."""
    return CorruptionOutput(torch.zeros_like(inp.values))


def _remove_absent(inp: CorruptionInput, _level: float) -> CorruptionOutput:
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


def _swap(inp: CorruptionInput, percent: float) -> CorruptionOutput:
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


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

_FRACTION_LEVELS = (10.0, 25.0, 40.0, 60.0, 80.0)
_ON = (1.0,) * MAX_SEVERITY

CORRUPTIONS: Dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption(
            "gaussian_noise", "Gaussian noise",
            "Random noise is added to every value until the signal is only so many decibels louder "
            "than the noise (0 dB: as loud as the signal).",
            SEQUENCE_KINDS, (20.0, 10.0, 5.0, 0.0, -5.0), "dB SNR", _gaussian_noise),
        Corruption(
            "element_dropout", "Value dropout",
            "Individual values are randomly replaced by the average, like a flaky sensor channel.",
            FEATURE_STREAMS, _FRACTION_LEVELS, "% of values", _element_dropout),
        Corruption(
            "temporal_mask", "Gap in time",
            "One continuous stretch of the recording is replaced by the average, like a dropout of the "
            "connection.",
            FEATURE_STREAMS, _FRACTION_LEVELS, "% of steps", _temporal_mask),
        Corruption(
            "temporal_shuffle", "Shuffled time steps",
            "Some time steps are moved to other positions, so the order of events is wrong but the "
            "values are all still there.",
            FEATURE_STREAMS, (10.0, 25.0, 50.0, 75.0, 100.0), "% of steps", _temporal_shuffle),
        Corruption(
            "occlusion", "Occlusion",
            "A square block covers the same part of every frame, like an object in front of the camera.",
            FRAMES, (10.0, 20.0, 30.0, 45.0, 60.0), "% of frame side", _occlusion),
        Corruption(
            "blur", "Blur",
            "Every frame is blurred, like an out-of-focus camera.",
            FRAMES, (0.5, 1.0, 1.5, 2.5, 4.0), "px blur sigma", _blur, random=False),
        Corruption(
            "frame_drop", "Frozen frames",
            "Some frames are lost and the previous frame is shown again instead, like a stuttering "
            "video.",
            FRAMES, _FRACTION_LEVELS, "% of frames", _frame_drop),
        Corruption(
            "dead_pixels", "Dead pixels",
            "Some pixels are stuck at the darkest or brightest value in every frame, like a damaged "
            "sensor.",
            FRAMES, (1.0, 5.0, 10.0, 20.0, 35.0), "% of pixels", _dead_pixels),
        Corruption(
            "remove_zero", "Blanked (still marked present)",
            "The whole modality is replaced by the average while the model is told it is there; every "
            "severity from 1 up removes it completely.",
            MODALITY_KINDS, _ON, "on/off", _remove_zero, random=False),
        Corruption(
            "remove_absent", "Missing",
            "The modality is removed and the model is told it is missing; every severity from 1 up "
            "removes it completely.",
            MODALITY_KINDS, _ON, "on/off", _remove_absent, random=False),
        Corruption(
            "swap", "Swapped with another sample",
            "The modality is replaced by the same modality of a random sample of a different class, so "
            "the modalities disagree.",
            MODALITY_KINDS, (20.0, 40.0, 60.0, 80.0, 100.0), "% of samples", _swap),
    )
}


def check_severity(severity: object) -> int:
    """Validate a severity (an integer 0..5) and return it as int."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) \
            or not 0 <= int(severity) <= MAX_SEVERITY:
        raise ValueError(f"severity must be an integer from 0 (clean) to {MAX_SEVERITY}, got {severity!r}")
    return int(severity)


def _check_kind(kind: str) -> None:
    if kind not in MODALITY_KINDS:
        raise ValueError(f"unknown modality kind {kind!r}; expected one of {', '.join(MODALITY_KINDS)}")


def corruptions_for(kind: str) -> List[Corruption]:
    """The corruptions that apply to a modality kind, in registry (display) order."""
    _check_kind(kind)
    return [c for c in CORRUPTIONS.values() if kind in c.kinds]


def get_corruption(name: str) -> Corruption:
    """Look up a corruption by name (ValueError listing every name if unknown)."""
    try:
        return CORRUPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown corruption {name!r}; available: {', '.join(CORRUPTIONS)}") from None


def _resolve(name: str, kind: str) -> Corruption:
    """The corruption if it exists and applies to ``kind``; else a ValueError naming valid ones."""
    _check_kind(kind)
    valid = ", ".join(c.name for c in corruptions_for(kind))
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid for {kind} modalities: {valid}")
    spec = CORRUPTIONS[name]
    if kind not in spec.kinds:
        raise ValueError(f"corruption {name!r} does not apply to {kind} modalities; valid: {valid}")
    return spec


def _check_shape(values: Tensor, kind: str, modality: str) -> None:
    expected = {"vector": "(B, F)", "frame_sequence": "(B, T, H, W)"}.get(kind, "(B, T, ...)")
    ok = {"vector": values.dim() == 2, "frame_sequence": values.dim() == 4}.get(kind, values.dim() >= 3)
    if not ok:
        raise ValueError(f"modality {modality!r} of kind {kind} must have shape {expected}, "
                         f"got {tuple(values.shape)}")


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def apply_corruption(batch: Batch, modality: str, kind: str, corruption: str, severity: int, seed: int,
                     pool: Optional[Batch] = None) -> CorruptionResult:
    """Corrupt one modality of a batch; returns the new batch and which samples changed.

    Randomness is keyed by (``seed``, ``corruption``, ``modality``) and each sample's
    ``batch.indices`` entry (its row number if the batch has no indices), so corrupting one sample
    gives exactly what the same sample got in a sweep over the whole split. The same random numbers
    serve every severity. ``pool`` is the donor set for ``swap`` (default: the batch itself; pass the
    whole split to make a single-sample swap match the sweep).

    Raises KeyError for an unknown modality and ValueError for an unknown kind or corruption, a
    corruption that does not apply to ``kind``, or a severity outside 0..5 (messages list the valid
    choices). Severity 0 returns the input batch itself.
    """
    if modality not in batch.inputs:
        raise KeyError(unknown_modality_message(modality, batch.modalities))
    spec = _resolve(corruption, kind)
    s = check_severity(severity)
    values = batch.inputs[modality]
    _check_shape(values, kind, modality)
    if s == 0:
        return CorruptionResult(batch, torch.zeros(batch.size, dtype=torch.bool, device=values.device))
    inp = _make_input(batch, modality, kind, spec.name, seed, pool)
    out = spec.function(inp, spec.levels[s - 1])
    return _assemble(batch, inp, out)


def _make_input(batch: Batch, modality: str, kind: str, name: str, seed: int,
                pool: Optional[Batch]) -> CorruptionInput:
    values = batch.inputs[modality]
    b = values.shape[0]
    mask = None
    if kind != "vector":
        mask = batch.padding_mask.get(modality)
        if mask is None:
            mask = torch.ones(values.shape[:2], dtype=torch.bool, device=values.device)
    ids = batch.indices if batch.indices is not None else torch.arange(b)
    rng = KeyedRandom(seed, name, modality, ids, values.device)
    return CorruptionInput(modality, kind, values, mask, batch.presence(modality), batch.labels, rng,
                           batch if pool is None else pool)


def _assemble(batch: Batch, inp: CorruptionInput, out: CorruptionOutput) -> CorruptionResult:
    """Apply the central guarantees and build the result batch."""
    old = inp.values
    new = out.values.to(old.dtype)
    if not out.whole_rows:
        new = _restore_untouchable(new, old, inp.real)
    affected = inp.rows if out.affected is None else out.affected
    corrupted = batch.with_modality(inp.modality, values=new, present=out.present,
                                    padding_mask=out.padding_mask)
    return CorruptionResult(corrupted, affected.to(torch.bool), out.donor_rows)


def _restore_untouchable(new: Tensor, old: Tensor, real: Tensor) -> Tensor:
    """``new`` with padded steps and absent samples copied back bit-exactly from ``old``.

    Works in place on ``new`` (cost proportional to the padding, not the batch) after making sure
    ``new`` is not a view of the caller's tensor.
    """
    keep = ~real
    if new.dim() == 2:  # vectors: ``real`` is (B, 1), one flag per sample
        keep = keep[:, 0]
    if not bool(keep.any()):
        return new
    if new.untyped_storage().data_ptr() == old.untyped_storage().data_ptr():
        new = new.clone()
    new[keep] = old[keep]
    return new


def measured_snr_db(clean: Tensor, corrupted: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
    """(B,) realised SNR in dB over real steps: signal power of ``clean`` / power of the change.

    +inf where nothing changed, nan where the sample has no real data. ``padding_mask`` (B, T) is
    None for vectors (every value counts).
    """
    diff = (corrupted - clean).to(torch.float64)
    sig = clean.to(torch.float64)
    b = clean.shape[0]
    if padding_mask is not None:
        m = _steps_view(padding_mask.to(torch.float64), clean)
        diff, sig = diff * m, sig * m
    signal = sig.pow(2).reshape(b, -1).sum(dim=1)
    noise = diff.pow(2).reshape(b, -1).sum(dim=1)
    return 10.0 * torch.log10(signal / noise)
