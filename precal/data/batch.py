"""The batch that flows between data, corruptions, models and the dashboard.

One container with padded inputs, padding masks and presence masks, so that every consumer agrees
on what "missing" means: a *padded* step is not data (``padding_mask`` False), an *absent* modality
is not there at all (``present`` False) and must never influence another modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, Optional

import torch
from torch import Tensor


@dataclass
class Batch:
    """Padded multimodal inputs.

    - ``inputs[m]``: (B, T, *step_shape) float32 for sequence kinds, (B, F) for vectors;
    - ``padding_mask[m]``: (B, T) bool, True for real steps (sequence kinds only);
    - ``present[m]``: (B,) bool, False where the modality is missing for that sample;
    - ``labels``: (B,) int64 class indices or float32 targets;
    - ``indices``: (B,) int64 positions in the source data set (to look up ids and raw data).
    """

    inputs: Dict[str, Tensor]
    padding_mask: Dict[str, Tensor] = field(default_factory=dict)
    present: Dict[str, Tensor] = field(default_factory=dict)
    labels: Optional[Tensor] = None
    indices: Optional[Tensor] = None

    @property
    def size(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @property
    def modalities(self) -> list[str]:
        return list(self.inputs)

    def presence(self, modality: str) -> Tensor:
        """Presence mask of one modality (all present when the batch does not say otherwise)."""
        if modality in self.present:
            return self.present[modality]
        return torch.ones(self.size, dtype=torch.bool, device=self.inputs[modality].device)

    def to(self, device: torch.device | str) -> "Batch":
        def move(d: Dict[str, Tensor]) -> Dict[str, Tensor]:
            return {k: v.to(device) for k, v in d.items()}

        return Batch(
            move(self.inputs), move(self.padding_mask), move(self.present),
            None if self.labels is None else self.labels.to(device),
            None if self.indices is None else self.indices.to(device),
        )

    def select(self, rows: Tensor | slice | Iterable[int]) -> "Batch":
        """A sub-batch of some rows (same modalities, masks and labels)."""
        if not isinstance(rows, (Tensor, slice)):
            rows = torch.as_tensor(list(rows), dtype=torch.long)

        def take(d: Dict[str, Tensor]) -> Dict[str, Tensor]:
            return {k: v[rows] for k, v in d.items()}

        return Batch(
            take(self.inputs), take(self.padding_mask), take(self.present),
            None if self.labels is None else self.labels[rows],
            None if self.indices is None else self.indices[rows],
        )

    def with_modality(self, modality: str, values: Optional[Tensor] = None,
                      present: Optional[Tensor] = None, padding_mask: Optional[Tensor] = None) -> "Batch":
        """A copy with one modality's values and/or masks replaced (corruptions build on this)."""
        inputs = dict(self.inputs)
        pres = dict(self.present)
        pad = dict(self.padding_mask)
        if values is not None:
            inputs[modality] = values
        if present is not None:
            pres[modality] = present
        if padding_mask is not None:
            pad[modality] = padding_mask
        return replace(self, inputs=inputs, present=pres, padding_mask=pad)

    def stack(self, other: "Batch") -> "Batch":
        """This batch's rows followed by ``other``'s (identical padded shapes, as produced by
        fixed-length preprocessing): e.g. a clean and a corrupted sample in one forward pass."""
        def cat(x: Dict[str, Tensor], y: Dict[str, Tensor]) -> Dict[str, Tensor]:
            return {k: torch.cat([x[k], y[k]]) for k in x}

        def joined(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
            return None if a is None or b is None else torch.cat([a, b])

        return Batch(cat(self.inputs, other.inputs), cat(self.padding_mask, other.padding_mask),
                     cat(self._presences(), other._presences()), joined(self.labels, other.labels),
                     joined(self.indices, other.indices))

    def where(self, rows: Tensor, other: "Batch") -> "Batch":
        """``other``'s rows where ``rows`` (B,) is True, this batch's elsewhere (same padded shapes);
        labels and indices stay this batch's."""
        def pick(a: Tensor, b: Tensor) -> Tensor:
            return torch.where(rows.reshape(-1, *([1] * (a.dim() - 1))), b, a)

        return Batch({k: pick(v, other.inputs[k]) for k, v in self.inputs.items()},
                     {k: pick(v, other.padding_mask[k]) for k, v in self.padding_mask.items()},
                     {k: pick(self.presence(k), other.presence(k)) for k in self.inputs},
                     self.labels, self.indices)

    def _presences(self) -> Dict[str, Tensor]:
        return {m: self.presence(m) for m in self.inputs}

    def restrict(self, modalities: Iterable[str]) -> "Batch":
        """Only the given modalities (for unimodal models)."""
        keep = list(modalities)
        return Batch(
            {m: self.inputs[m] for m in keep},
            {m: v for m, v in self.padding_mask.items() if m in keep},
            {m: v for m, v in self.present.items() if m in keep},
            self.labels, self.indices,
        )
