"""A sample's inputs in their native form: how to draw each modality, in which units and on which
time axis, and where its origin and unit of length come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

import numpy as np

from precal.data.batch import Batch
from precal.data.dataset import Preprocessor
from precal.data.schema import DatasetSchema, ModalitySchema


def input_view_kind(spec: ModalitySchema, extra: Mapping[str, Any]) -> str:
    """How to draw a modality: skeleton, frames, imu, heatmap (feature streams), vector."""
    if spec.kind == "frame_sequence":
        return "frames"
    if spec.kind == "vector":
        return "vector"
    if len(spec.step_shape) == 2 and spec.step_shape[1] in (2, 3) and "joint_names" in extra \
            and len(extra["joint_names"]) == spec.step_shape[0]:
        return "skeleton"
    if spec.step_shape == (6,) and "inertial_columns" in extra:
        return "imu"
    if spec.kind == "time_series" and spec.num_features <= 8:
        return "lines"
    return "heatmap"


def root_point_name(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """The name of the point a centred modality is expressed relative to (its index if unnamed)."""
    return schema.point_name(preprocessor.centre[modality])


def geometry_note(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """One sentence on how a point-sequence modality is placed and sized for the model (empty if
    it is drawn as recorded), so a user reading the lab's drawing knows its origin and unit."""
    parts = []
    if modality in preprocessor.centre:
        parts.append(f"Relative to the first frame's {root_point_name(schema, preprocessor, modality)} "
                     "(where the subject stands is removed, as the model is trained).")
    if modality in preprocessor.scale:
        a, b = (schema.point_name(i) for i in preprocessor.scale[modality])
        parts.append(f"Lengths in body units, the first frame's {a}–{b} distance, rather than metres "
                     "(body size is removed, as the model is trained).")
    return " ".join(parts) + (" " if parts else "")


def model_input_unit(schema: DatasetSchema, preprocessor: Preprocessor, modality: str) -> str:
    """The length unit of a modality as the model sees it: its recorded unit, or "body units" when
    the checkpoint measures it in a body segment (``--scale``; :func:`geometry_note` names the
    segment). Short on purpose: it titles the axes of small multiples."""
    if modality in preprocessor.scale:
        return "body units"
    return schema.modality(modality).unit or "value"


def model_input(batch: Batch, row: int, spec: ModalitySchema, preprocessor: Preprocessor) -> np.ndarray:
    """Row ``row`` of ``batch`` for one modality in physical units, real steps only; empty if absent."""
    x = batch.inputs[spec.name][row].numpy()
    if not bool(batch.presence(spec.name)[row]):
        return x[:0]
    mask = batch.padding_mask.get(spec.name)
    if mask is not None:
        x = x[mask[row].numpy()]
    return preprocessor.denormalise(spec, x).astype(np.float32)


def time_axis(steps: int, spec: ModalitySchema, original_steps: Optional[int] = None) -> Tuple[np.ndarray, str]:
    """Times of ``steps`` samples in seconds (if the rate is known) or step numbers.

    ``original_steps``: length of the recording before resampling; resampled steps span it evenly.
    """
    if spec.rate_hz:
        total = original_steps if original_steps else steps
        if steps <= 1:
            return np.zeros(steps), "time (s)"
        return np.linspace(0.0, (total - 1) / spec.rate_hz, steps), "time (s)"
    return np.arange(steps, dtype=float), "step"


def frame_picks(steps: int, count: int = 8) -> np.ndarray:
    """Evenly spaced frame indices for a strip."""
    if steps <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, steps - 1, min(count, steps))).astype(int))


def frame_range(spec: ModalitySchema, values: np.ndarray) -> Tuple[float, float]:
    """Colour range of a frame modality in its units: depth from the 2nd to the 98th percentile of
    the readings (0 mm = no reading), 8-bit images 0-255, anything else its min and max."""
    if "mm" in spec.unit:
        nz = values[values > 1.0]
        lo, hi = (float(v) for v in np.percentile(nz, [2, 98])) if nz.size else (0.0, 1.0)
    elif "0-255" in spec.unit:
        lo, hi = 0.0, 255.0
    else:
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return lo, hi


@dataclass
class FrameStrip:
    """Up to 8 frames of a frame modality, ready to draw (both renderers use this)."""

    picks: np.ndarray
    frames: np.ndarray
    reference: Optional[np.ndarray]
    title: str
    colour_title: str
    colours: str  # "viridis" (depth) or "gray"


def frame_strip(spec: ModalitySchema, values: np.ndarray, reference: Optional[np.ndarray], title: str) -> FrameStrip:
    picks = frame_picks(len(values), 8)
    frames = values[picks].astype(np.float32)
    ref = reference[picks[picks < len(reference)]].astype(np.float32) if reference is not None else None
    if "mm" in spec.unit:  # 0 mm means "no reading": left blank rather than drawn as the nearest depth
        frames = np.where(frames > 1.0, frames, np.nan)
        ref = np.where(ref > 1.0, ref, np.nan) if ref is not None else None
        return FrameStrip(picks, frames, ref, f"{title}: {len(picks)} of {len(values)} frames "
                                              "(blank = no depth reading)", "depth (mm)", "viridis")
    return FrameStrip(picks, frames, ref, f"{title}: {len(picks)} of {len(values)} frames",
                      spec.unit or "value", "gray")
