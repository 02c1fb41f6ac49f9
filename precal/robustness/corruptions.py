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

import numbers
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from precal.data.batch import Batch
from precal.data.schema import MODALITY_KINDS, unknown_modality_message
from precal.robustness import damage
from precal.robustness.damage import CorruptionFn, CorruptionInput, CorruptionOutput
from precal.robustness.keyed_random import KeyedRandom

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
VECTORS: Tuple[str, ...] = ("vector",)
"""Pre-extracted feature vectors (the most common own data): noise, feature dropout and gain errors
apply to them as to a stream's values; time-based corruptions do not."""

# --------------------------------------------------------------------------------------------------
# Public types
# --------------------------------------------------------------------------------------------------


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
            SEQUENCE_KINDS + VECTORS, (20.0, 10.0, 5.0, 0.0, -5.0), "dB SNR", damage.gaussian_noise),
        Corruption(
            "element_dropout", "Value dropout",
            "Individual values are randomly replaced by the average, like a flaky sensor channel or a "
            "feature the extractor failed on.",
            FEATURE_STREAMS + VECTORS, _FRACTION_LEVELS, "% of values", damage.element_dropout),
        Corruption(
            "feature_scaling", "Gain errors",
            "Every feature is multiplied by its own random factor within plus or minus so many percent of "
            "1, like a miscalibrated sensor or a feature extractor run with other settings.",
            VECTORS, (10.0, 25.0, 50.0, 75.0, 100.0), "% gain error", damage.feature_scaling),
        Corruption(
            "temporal_mask", "Gap in time",
            "One continuous stretch of the recording is replaced by the average, like a dropout of the "
            "connection.",
            FEATURE_STREAMS, _FRACTION_LEVELS, "% of steps", damage.temporal_mask),
        Corruption(
            "temporal_shuffle", "Shuffled time steps",
            "Some time steps are moved to other positions, so the order of events is wrong but the "
            "values are all still there.",
            FEATURE_STREAMS, (10.0, 25.0, 50.0, 75.0, 100.0), "% of steps", damage.temporal_shuffle),
        Corruption(
            "occlusion", "Occlusion",
            "A square block covers the same part of every frame, like an object in front of the camera.",
            FRAMES, (10.0, 20.0, 30.0, 45.0, 60.0), "% of frame side", damage.occlusion),
        Corruption(
            "blur", "Blur",
            "Every frame is blurred, like an out-of-focus camera.",
            FRAMES, (0.5, 1.0, 1.5, 2.5, 4.0), "px blur sigma", damage.blur, random=False),
        Corruption(
            "frame_drop", "Frozen frames",
            "Some frames are lost and the previous frame is shown again instead, like a stuttering "
            "video.",
            FRAMES, _FRACTION_LEVELS, "% of frames", damage.frame_drop),
        Corruption(
            "dead_pixels", "Dead pixels",
            "Some pixels are stuck at the darkest or brightest value in every frame, like a damaged "
            "sensor.",
            FRAMES, (1.0, 5.0, 10.0, 20.0, 35.0), "% of pixels", damage.dead_pixels),
        Corruption(
            "remove_zero", "Blanked (still marked present)",
            "The whole modality is replaced by the average while the model is told it is there; every "
            "severity from 1 up removes it completely.",
            MODALITY_KINDS, _ON, "on/off", damage.remove_zero, random=False),
        Corruption(
            "remove_absent", "Missing",
            "The modality is removed and the model is told it is missing; every severity from 1 up "
            "removes it completely.",
            MODALITY_KINDS, _ON, "on/off", damage.remove_absent, random=False),
        Corruption(
            "swap", "Swapped with another sample",
            "The modality is replaced by the same modality of a random sample of a different class, so "
            "the modalities disagree.",
            MODALITY_KINDS, (20.0, 40.0, 60.0, 80.0, 100.0), "% of samples", damage.swap),
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
        m = damage.steps_view(padding_mask.to(torch.float64), clean)
        diff, sig = diff * m, sig * m
    signal = sig.pow(2).reshape(b, -1).sum(dim=1)
    noise = diff.pow(2).reshape(b, -1).sum(dim=1)
    return 10.0 * torch.log10(signal / noise)
