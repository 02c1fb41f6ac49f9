"""Dataset schema: what a multimodal data set *is*, independent of how it is stored.

A data set is a set of named modalities (each with a kind, a per-step shape and a sampling rate),
a task (class names, or regression), sample ids, and named splits. The schema travels with every
checkpoint so that a model can refuse data it was not built for with a readable message instead of
a shape error deep inside a convolution.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from precal.limits import (MAX_CLASSES, MAX_MODALITIES, MAX_STEP_DIMS, MAX_STEP_VALUES, check_int, check_number,
                           check_object, check_str, check_str_list)


MODALITY_KINDS = ("time_series", "frame_sequence", "vector", "token_sequence")
"""time_series: (T, F...) sensor or feature streams; frame_sequence: (T, H, W) image sequences;
vector: one (F,) feature vector per sample; token_sequence: (T, F) pre-extracted token features
(e.g. text embeddings)."""

TASK_TYPES = ("classification", "regression")

_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*$")


class SchemaError(ValueError):
    """A data set description or file that does not follow the documented format."""


@dataclass(frozen=True)
class ModalitySchema:
    """One modality: its name, kind, the shape of one time step and how it was sampled.

    ``scale``/``offset`` describe a lossy-storage quantisation: the stored integers ``q`` represent
    ``q * scale + offset`` in ``unit``. They exist so that compact uint8/uint16 storage stays
    physically meaningful (e.g. depth in millimetres).
    """

    name: str
    kind: str
    step_shape: Tuple[int, ...]
    rate_hz: Optional[float] = None
    unit: str = ""
    description: str = ""
    scale: float = 1.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        try:
            check_str(self.name, "modality name", 200)
        except ValueError as exc:
            raise SchemaError(str(exc)) from None
        if not _NAME_PATTERN.match(self.name):
            raise SchemaError(
                f"modality name {self.name!r} must start with a letter and contain only letters, "
                "digits, '_' or '-'"
            )
        if not isinstance(self.kind, str) or self.kind not in MODALITY_KINDS:
            raise SchemaError(
                f"modality {self.name!r}: unknown kind {self.kind!r}; expected one of {MODALITY_KINDS}"
            )
        object.__setattr__(self, "step_shape", _step_shape(self.name, self.step_shape))
        shape = self.step_shape
        if self.kind == "frame_sequence" and len(shape) != 2:
            raise SchemaError(f"modality {self.name!r}: frame_sequence step_shape must be (H, W), got {shape}")
        if self.kind in ("vector", "token_sequence") and len(shape) != 1:
            raise SchemaError(f"modality {self.name!r}: {self.kind} step_shape must be (F,), got {shape}")
        try:
            if self.rate_hz is not None:
                object.__setattr__(self, "rate_hz", check_number(self.rate_hz, f"modality {self.name!r}: rate_hz",
                                                                 0.0, lo_open=True))
            object.__setattr__(self, "scale", check_number(self.scale, f"modality {self.name!r}: scale"))
            object.__setattr__(self, "offset", check_number(self.offset, f"modality {self.name!r}: offset"))
            check_str(self.unit, f"modality {self.name!r}: unit")
            check_str(self.description, f"modality {self.name!r}: description", 100_000)
        except ValueError as exc:
            raise SchemaError(str(exc)) from None

    @property
    def num_features(self) -> int:
        """Values per time step once a step is flattened (frames are not flattened by encoders)."""
        n = 1
        for s in self.step_shape:
            n *= s
        return n

    @property
    def is_sequence(self) -> bool:
        return self.kind != "vector"

    def to_json(self) -> Dict[str, Any]:
        d = asdict(self)
        d["step_shape"] = list(self.step_shape)
        return d

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "ModalitySchema":
        if not isinstance(d, dict):
            raise SchemaError(f"every entry of schema.modalities must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise SchemaError(f"modality entry {str(d.get('name'))[:60]!r} has unknown field {unknown[0][:60]!r}")
        missing = [k for k in ("name", "kind", "step_shape") if k not in d]
        if missing:
            raise SchemaError(f"modality entry {str(d.get('name'))[:60]!r} is missing the field {missing[0]!r}")
        return cls(**d)


def _step_shape(name: str, value: Any) -> Tuple[int, ...]:
    """A step shape of positive integers whose product stays within :data:`MAX_STEP_VALUES`."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
        raise SchemaError(f"modality {name!r}: step_shape must be a list of positive integers, got "
                          f"{type(value).__name__}")
    if not 1 <= len(value) <= MAX_STEP_DIMS:
        raise SchemaError(f"modality {name!r}: step_shape must have 1 to {MAX_STEP_DIMS} entries, got {len(value)}")
    try:
        shape = tuple(check_int(s, f"modality {name!r}: step_shape[{i}]", 1, MAX_STEP_VALUES)
                      for i, s in enumerate(value))
    except ValueError as exc:
        raise SchemaError(str(exc)) from None
    if math.prod(shape) > MAX_STEP_VALUES:
        raise SchemaError(f"modality {name!r}: step_shape {shape} holds {math.prod(shape):,} values per step; "
                          f"at most {MAX_STEP_VALUES:,} are allowed")
    return shape


@dataclass(frozen=True)
class DatasetSchema:
    """Everything a model needs to know about a data set's structure (not its values)."""

    name: str
    modalities: Tuple[ModalitySchema, ...]
    task: str = "classification"
    class_names: Tuple[str, ...] = ()
    description: str = ""
    citation: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            check_str(self.name, "schema.name", 1000)
            if isinstance(self.modalities, (str, bytes, dict)) or not hasattr(self.modalities, "__iter__"):
                raise ValueError(f"schema.modalities must be a list of modality objects, got "
                                 f"{type(self.modalities).__name__}")
            object.__setattr__(self, "modalities", tuple(self.modalities))
            if len(self.modalities) > MAX_MODALITIES:
                raise ValueError(f"schema.modalities has {len(self.modalities)} entries; at most {MAX_MODALITIES} "
                                 "are allowed")
            if any(not isinstance(m, ModalitySchema) for m in self.modalities):
                raise ValueError("schema.modalities must hold modality objects")
            object.__setattr__(self, "class_names", tuple(check_str_list(self.class_names, "schema.class_names",
                                                                         MAX_CLASSES)))
            check_str(self.description, "schema.description", 1_000_000)
            check_str(self.citation, "schema.citation", 1_000_000)
            check_object(self.extra, "schema.extra")
            if not isinstance(self.task, str):
                raise ValueError(f"schema.task must be a string, got {type(self.task).__name__}")
        except ValueError as exc:
            raise SchemaError(str(exc)) from None
        if not self.modalities:
            raise SchemaError(f"data set {self.name!r} declares no modalities")
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise SchemaError(f"data set {self.name!r}: duplicate modality names {names}")
        if self.task not in TASK_TYPES:
            raise SchemaError(f"data set {self.name!r}: unknown task {self.task!r}; expected {TASK_TYPES}")
        if self.task == "classification" and len(self.class_names) < 2:
            raise SchemaError(f"data set {self.name!r}: classification needs at least two class names")

    @property
    def modality_names(self) -> List[str]:
        return [m.name for m in self.modalities]

    @property
    def num_classes(self) -> int:
        """Output size of the head: number of classes, or 1 for regression."""
        return len(self.class_names) if self.task == "classification" else 1

    def modality(self, name: str) -> ModalitySchema:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(unknown_modality_message(name, self.modality_names))

    def point_name(self, index: int) -> str:
        """The name of point ``index`` of a point-sequence modality (``extra["joint_names"]``), or
        ``"point <index>"`` when the data set names no such point."""
        names = list(self.extra.get("joint_names", []))
        return str(names[index]) if 0 <= index < len(names) else f"point {index}"

    def feature_names(self, modality: str) -> List[str]:
        """Names of the flattened features of one step of ``modality`` (chart columns): the data
        set's ``extra["<modality>_columns"]``, HTK's MFCC names, else ``<modality>[i]``."""
        spec = self.modality(modality)
        cols = self.extra.get(f"{spec.name}_columns")
        if isinstance(cols, (list, tuple)) and len(cols) == spec.num_features:
            return [str(c) for c in cols]
        if "MFCC_E_D" in spec.description and spec.num_features == 26:  # HTK: c1..c12, log energy, deltas
            base = [f"c{i}" for i in range(1, 13)] + ["log E"]
            return base + [f"Δ{b}" for b in base]
        return [f"{spec.name}[{i}]" for i in range(spec.num_features)]

    def subset(self, names: Sequence[str]) -> "DatasetSchema":
        """The same data set restricted to some modalities (unimodal and ablation models)."""
        chosen = tuple(self.modality(n) for n in names)
        return DatasetSchema(self.name, chosen, self.task, self.class_names, self.description,
                             self.citation, dict(self.extra))

    def to_json(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "modalities": [m.to_json() for m in self.modalities],
            "task": self.task,
            "class_names": list(self.class_names),
            "description": self.description,
            "citation": self.citation,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "DatasetSchema":
        if not isinstance(d, dict):
            raise SchemaError(f"schema must be a JSON object, got {type(d).__name__}")
        if "name" not in d or "modalities" not in d:
            raise SchemaError(f"schema is missing the field {'name' if 'name' not in d else 'modalities'!r}")
        modalities = d["modalities"]
        if not isinstance(modalities, list):
            raise SchemaError(f"schema.modalities must be a list of modality objects, got {type(modalities).__name__}")
        if len(modalities) > MAX_MODALITIES:
            raise SchemaError(f"schema.modalities has {len(modalities)} entries; at most {MAX_MODALITIES} are allowed")
        class_names = d.get("class_names", [])
        if not isinstance(class_names, list):
            raise SchemaError(f"schema.class_names must be a list of strings, got {type(class_names).__name__}")
        return cls(
            name=d["name"],
            modalities=tuple(ModalitySchema.from_json(m) for m in modalities),
            task=d.get("task", "classification"),
            class_names=tuple(class_names),
            description=d.get("description", ""),
            citation=d.get("citation", ""),
            extra=d.get("extra", {}),
        )


def unknown_modality_message(name: str, known: Sequence[str]) -> str:
    """One wording for every 'no such modality' error, so users see the valid names."""
    return f"unknown modality {name!r}; this data set/model has: {', '.join(known)}"
