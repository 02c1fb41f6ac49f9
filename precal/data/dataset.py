"""From stored data to model-ready tensors: resampling, normalisation, a Dataset and its collate.

Normalisation statistics are fitted on the training split only and stored with the model (in the
checkpoint), so evaluation and the dashboard transform inputs exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from precal.data.batch import Batch
from precal.data.schema import DatasetSchema, ModalitySchema
from precal.data.storage import MultimodalData
from precal.limits import MAX_LENGTH, MAX_SAMPLE_VALUES, MAX_STEP_VALUES, check_int, check_object


def resample_sequence(seq: np.ndarray, length: int, kind: str) -> np.ndarray:
    """Resample a (T, ...) sequence to ``length`` steps spanning the whole recording.

    Frames are picked (nearest index) so images are never blended; feature streams are linearly
    interpolated. Empty sequences (absent modality) stay empty.
    """
    t = len(seq)
    if t == 0 or t == length:
        return seq
    if kind == "frame_sequence":
        idx = np.round(np.linspace(0, t - 1, length)).astype(np.int64)
        return seq[idx]
    pos = np.linspace(0, t - 1, length)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo).astype(np.float32).reshape(-1, *([1] * (seq.ndim - 1)))
    return seq[lo] * (1 - w) + seq[hi] * w


def centre_on_root(seq: np.ndarray, root: int) -> np.ndarray:
    """Express a (T, J, C) point sequence relative to point ``root`` of its *first* step.

    Why the first step and not every step: where a subject stands differs between subjects and says
    nothing about the action, but how the body moves as a whole (a jog, a squat) does; subtracting
    one fixed origin per clip removes the first and keeps the second."""
    if len(seq) == 0:
        return seq
    return seq - seq[:1, root:root + 1]


def scale_by_segment(seq: np.ndarray, a: int, b: int) -> np.ndarray:
    """Divide a (T, J, C) point sequence by the length of segment a-b in its *first* step.

    Why: subjects differ in size (UTD-MHAD's torsos range over 15%), so the same movement spans
    different distances; measuring it in units of the subject's own torso removes that and keeps
    the movement. A degenerate segment (both points at one place, e.g. a lost track) leaves the
    sequence unscaled rather than blowing it up."""
    if len(seq) == 0:
        return seq
    length = float(np.linalg.norm(seq[0, a] - seq[0, b]))
    return seq / length if length > 1e-6 else seq


@dataclass
class Preprocessor:
    """Per-modality centring (optional), fixed length (optional) and normalisation statistics.

    Statistics are per feature for series/vectors/tokens and a single scalar for frame sequences
    (pixels of one image share a unit and a meaning). ``centre`` maps a point-sequence modality
    (steps of shape (J, C), e.g. skeleton joints) to the index of its root point; ``scale`` maps one
    to the two points whose first-step distance becomes its unit of length (applied after centring).
    """

    lengths: Dict[str, Optional[int]] = field(default_factory=dict)
    mean: Dict[str, np.ndarray] = field(default_factory=dict)
    std: Dict[str, np.ndarray] = field(default_factory=dict)
    centre: Dict[str, int] = field(default_factory=dict)
    scale: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    def _centred(self, name: str, seq: np.ndarray) -> np.ndarray:
        """The point-sequence geometry: centred on the root, then in units of the body segment."""
        if name in self.centre:
            seq = centre_on_root(seq, self.centre[name])
        if name in self.scale:
            seq = scale_by_segment(seq, *self.scale[name])
        return seq

    def fit(self, data: MultimodalData, indices: Sequence[int]) -> "Preprocessor":
        for spec in data.schema.modalities:
            seqs = [self._centred(spec.name, data.sequence(spec.name, int(i)))
                    for i in indices if data.is_present(spec.name, int(i))]
            if not seqs:  # absent from every training sample: identity statistics of the right size
                size = 1 if spec.kind == "frame_sequence" else spec.num_features
                self.mean[spec.name] = np.zeros(size, np.float32)
                self.std[spec.name] = np.ones(size, np.float32)
                continue
            stacked = np.concatenate(seqs, axis=0).astype(np.float64)
            if spec.kind == "frame_sequence":
                mean, std = np.array([stacked.mean()]), np.array([stacked.std()])
            else:
                mean, std = stacked.mean(axis=0).reshape(-1), stacked.std(axis=0).reshape(-1)
            self.mean[spec.name] = mean.astype(np.float32)
            self.std[spec.name] = np.maximum(std, 1e-6).astype(np.float32)
        return self

    def apply(self, spec: ModalitySchema, seq: np.ndarray) -> np.ndarray:
        """Centre, resample, then normalise one raw (T, *step) float32 sequence."""
        seq = self._centred(spec.name, seq)
        length = self.lengths.get(spec.name)
        if length and spec.kind != "vector":
            seq = resample_sequence(seq, length, spec.kind)
        if spec.name in self.mean:
            mean, std = self._statistics(spec)
            seq = (seq - mean) / std
        return seq.astype(np.float32, copy=False)

    def denormalise(self, spec: ModalitySchema, x: np.ndarray) -> np.ndarray:
        """Model input (normalised) back to physical units: ``x * std + mean`` (the inverse of the
        normalisation in :meth:`apply`; centring and resampling are not undone)."""
        if spec.name not in self.mean:
            return x
        mean, std = self._statistics(spec)
        return x * std + mean

    def _statistics(self, spec: ModalitySchema) -> Tuple[np.ndarray, np.ndarray]:
        """Mean and std of one modality, shaped to broadcast over its steps."""
        shape = (1,) if spec.kind == "frame_sequence" else spec.step_shape
        return self.mean[spec.name].reshape(shape), self.std[spec.name].reshape(shape)

    def to_json(self) -> Dict[str, Any]:
        return {
            "lengths": dict(self.lengths),
            "mean": {k: v.tolist() for k, v in self.mean.items()},
            "std": {k: v.tolist() for k, v in self.std.items()},
            "centre": dict(self.centre),
            "scale": {k: list(v) for k, v in self.scale.items()},
        }

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Preprocessor":
        """Read the ``preprocessing`` section of a checkpoint; every value is type- and range-checked
        (a length of 1e9 would allocate gigabytes per sample), errors name the field."""
        check_object(d, "preprocessing")
        section = {k: check_object(d.get(k, {}), f"preprocessing.{k}")
                   for k in ("lengths", "mean", "std", "centre", "scale")}
        lengths = {k: None if v is None else check_int(v, f"preprocessing.lengths[{k!r}]", 1, MAX_LENGTH)
                   for k, v in section["lengths"].items()}
        stats = {key: {k: _statistics(v, f"preprocessing.{key}[{k!r}]", positive=key == "std")
                       for k, v in section[key].items()} for key in ("mean", "std")}
        centre = {k: check_int(v, f"preprocessing.centre[{k!r}]", 0, MAX_STEP_VALUES)
                  for k, v in section["centre"].items()}
        scale = {}
        for k, v in section["scale"].items():
            if not isinstance(v, list) or len(v) != 2:
                raise ValueError(f"preprocessing.scale[{k!r}] must be a list of two point indices")
            scale[k] = tuple(check_int(x, f"preprocessing.scale[{k!r}]", 0, MAX_STEP_VALUES) for x in v)
        return cls(lengths=lengths, mean=stats["mean"], std=stats["std"], centre=centre, scale=scale)

    def check(self, schema: DatasetSchema) -> None:
        """Refuse statistics, lengths and point indices that do not fit ``schema``'s modalities
        (they would fail later as a reshape or index error, or allocate too much per sample)."""
        for spec in schema.modalities:
            n = spec.name
            size = 1 if spec.kind == "frame_sequence" else spec.num_features
            for key, stats in (("mean", self.mean), ("std", self.std)):
                if n in stats and stats[n].size != size:
                    raise ValueError(f"preprocessing.{key}[{n!r}] has {stats[n].size} values; modality {n!r} "
                                     f"needs {size}")
            length = self.lengths.get(n)
            if length and length * spec.num_features > MAX_SAMPLE_VALUES:
                raise ValueError(f"length {length} of modality {n!r} gives {length * spec.num_features:,} values "
                                 f"per sample; at most {MAX_SAMPLE_VALUES:,} are allowed")
            points = spec.step_shape[0]
            for i in ([self.centre[n]] if n in self.centre else []) + list(self.scale.get(n, ())):
                if len(spec.step_shape) != 2 or i >= points:
                    raise ValueError(f"preprocessing: point {i} of modality {n!r} does not exist "
                                     f"(steps of shape {spec.step_shape})")


def _statistics(value: Any, field: str, positive: bool) -> np.ndarray:
    """A list of finite numbers (strictly positive for standard deviations) as float32."""
    if not isinstance(value, list) or not value or len(value) > MAX_STEP_VALUES:
        raise ValueError(f"{field} must be a non-empty list of numbers")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in value):
        raise ValueError(f"{field} must hold numbers only")
    arr = np.asarray(value, np.float64)
    if not np.all(np.isfinite(arr)) or (positive and not np.all(arr > 0)):
        raise ValueError(f"{field} must hold finite{' positive' if positive else ''} numbers")
    return arr.astype(np.float32)


class MultimodalDataset(Dataset):
    """A split of a :class:`MultimodalData`, preprocessed once and held in memory.

    Items are dicts of float32 arrays (absent modality = zero-length array); :func:`collate` pads
    them into a :class:`Batch`. The data sets here are small, so preprocessing everything up front
    keeps the training loop free of per-step numpy work.
    """

    def __init__(self, data: MultimodalData, indices: Sequence[int], preprocessor: Preprocessor,
                 modalities: Optional[Sequence[str]] = None) -> None:
        self.data = data
        self.indices = np.asarray(indices, dtype=np.int64)
        self.preprocessor = preprocessor
        names = list(modalities) if modalities is not None else data.schema.modality_names
        self.specs = [data.schema.modality(n) for n in names]
        self._items: List[Dict[str, np.ndarray]] = [self._prepare(int(i)) for i in self.indices]

    def _prepare(self, i: int) -> Dict[str, np.ndarray]:
        return {spec.name: self.preprocessor.apply(spec, self.data.sequence(spec.name, i)) for spec in self.specs}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Dict[str, Any]:
        item: Dict[str, Any] = dict(self._items[k])
        item["__label__"] = self.data.labels[self.indices[k]]
        item["__index__"] = int(self.indices[k])
        return item

    def collate(self, items: List[Dict[str, Any]]) -> Batch:
        return collate(items, self.specs, self.data.schema)

    def full_batch(self) -> Batch:
        """The whole split as one batch (fast evaluation and batched sweeps)."""
        return self.collate([self[k] for k in range(len(self))])


def collate(items: List[Dict[str, Any]], specs: Sequence[ModalitySchema], schema: DatasetSchema) -> Batch:
    """Pad variable-length items into a Batch with padding and presence masks."""
    inputs: Dict[str, Tensor] = {}
    padding: Dict[str, Tensor] = {}
    present: Dict[str, Tensor] = {}
    b = len(items)
    for spec in specs:
        seqs = [it[spec.name] for it in items]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        present[spec.name] = lengths > 0
        if spec.kind == "vector":
            x = torch.zeros(b, spec.num_features)
            for r, s in enumerate(seqs):
                if len(s):
                    x[r] = torch.from_numpy(np.ascontiguousarray(s.reshape(-1)))
            inputs[spec.name] = x
            continue
        t_max = max(1, int(lengths.max()))
        x = torch.zeros(b, t_max, *spec.step_shape)
        for r, s in enumerate(seqs):
            if len(s):
                x[r, : len(s)] = torch.from_numpy(np.ascontiguousarray(s))
        inputs[spec.name] = x
        padding[spec.name] = torch.arange(t_max)[None, :] < lengths[:, None]
    label_dtype = torch.long if schema.task == "classification" else torch.float32
    labels = torch.as_tensor(np.array([it["__label__"] for it in items]), dtype=label_dtype)
    indices = torch.tensor([it["__index__"] for it in items], dtype=torch.long)
    return Batch(inputs, padding, present, labels, indices)
