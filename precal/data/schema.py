"""Dataset schema: what a multimodal data set *is*, independent of how it is stored.

A data set is a set of named modalities (each with a kind, a per-step shape and a sampling rate),
a task (class names, or regression), sample ids, and named splits. The schema travels with every
checkpoint so that a model can refuse data it was not built for with a readable message instead of
a shape error deep inside a convolution.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
        if not _NAME_PATTERN.match(self.name):
            raise SchemaError(
                f"modality name {self.name!r} must start with a letter and contain only letters, "
                "digits, '_' or '-'"
            )
        if self.kind not in MODALITY_KINDS:
            raise SchemaError(
                f"modality {self.name!r}: unknown kind {self.kind!r}; expected one of {MODALITY_KINDS}"
            )
        shape = tuple(int(s) for s in self.step_shape)
        object.__setattr__(self, "step_shape", shape)
        if not shape or any(s <= 0 for s in shape):
            raise SchemaError(f"modality {self.name!r}: step_shape must be non-empty positive, got {shape}")
        if self.kind == "frame_sequence" and len(shape) != 2:
            raise SchemaError(f"modality {self.name!r}: frame_sequence step_shape must be (H, W), got {shape}")
        if self.kind in ("vector", "token_sequence") and len(shape) != 1:
            raise SchemaError(f"modality {self.name!r}: {self.kind} step_shape must be (F,), got {shape}")

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
        try:
            return cls(**{**d, "step_shape": tuple(d["step_shape"])})
        except (TypeError, KeyError) as exc:
            raise SchemaError(f"malformed modality entry {d!r}: {exc}") from exc


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
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "class_names", tuple(self.class_names))
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
        try:
            return cls(
                name=d["name"],
                modalities=tuple(ModalitySchema.from_json(m) for m in d["modalities"]),
                task=d.get("task", "classification"),
                class_names=tuple(d.get("class_names", ())),
                description=d.get("description", ""),
                citation=d.get("citation", ""),
                extra=dict(d.get("extra", {})),
            )
        except KeyError as exc:
            raise SchemaError(f"schema is missing the field {exc.args[0]!r}") from exc


def unknown_modality_message(name: str, known: Sequence[str]) -> str:
    """One wording for every 'no such modality' error, so users see the valid names."""
    return f"unknown modality {name!r}; this data set/model has: {', '.join(known)}"
