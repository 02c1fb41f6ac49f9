"""Batched inference that keeps the calibrator's report: one code path for evaluation, training
logs, robustness sweeps and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from precal.data.batch import Batch
from precal.metrics import softmax
from precal.models.model import ModelOutput, MultimodalModel


@dataclass
class Predictions:
    """Stacked per-sample outputs of a model over a batch or split (numpy, detached).

    The one container for per-sample outputs: evaluation, training logs, the robustness sweep and
    the dashboard all stack forward passes through :meth:`stack`. ``pairwise`` and the per-channel
    ``beta`` are kept only when asked for (``detail=True``: the dashboard's few samples)."""

    modalities: List[str]
    logits: np.ndarray  # (N, C)
    labels: Optional[np.ndarray]  # (N,)
    indices: Optional[np.ndarray]  # (N,) positions in the data set
    alpha: np.ndarray  # (N, M)
    support: np.ndarray  # (N, M)
    conflict: np.ndarray  # (N, M)
    beta_mean: np.ndarray  # (N, M) mean of beta over channels
    beta_std: np.ndarray  # (N, M) spread of beta over channels
    present: np.ndarray  # (N, M) bool
    has_context: np.ndarray  # (N, M) bool
    fused: np.ndarray  # (N, F)
    summaries_before: Dict[str, np.ndarray]  # (N, D)
    summaries_after: Dict[str, np.ndarray]  # (N, D)
    pairwise: Optional[np.ndarray] = None  # (N, M, M) pairwise support (detail only)
    beta: Optional[Dict[str, np.ndarray]] = None  # (N, D_m) dimension gates (detail only)

    ARRAYS: ClassVar[Tuple[str, ...]] = ("logits", "labels", "indices", "alpha", "support", "conflict", "beta_mean",
                                         "beta_std", "present", "has_context", "fused")
    """The (N, ...) array fields, in the order a file of predictions stores them."""

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1) if self.logits.shape[1] > 1 else self.logits[:, 0]

    def probabilities(self) -> np.ndarray:
        return softmax(self.logits)

    @classmethod
    def stack(cls, outputs: Sequence[ModelOutput], labels: Optional[Tensor] = None,
              indices: Optional[Tensor] = None, detail: bool = False) -> "Predictions":
        """The outputs of consecutive forward passes (chunks of one batch) as one container."""
        reports = [o.report for o in outputs]
        names = list(reports[0].modalities)

        def cat(parts: Sequence[Tensor]) -> np.ndarray:
            return torch.cat([t.detach() for t in parts]).numpy()

        def per_modality(get) -> np.ndarray:
            return cat([torch.stack([get(r, n) for n in names], dim=1) for r in reports])

        return cls(
            modalities=names,
            logits=cat([o.logits for o in outputs]),
            labels=None if labels is None else labels.numpy(),
            indices=None if indices is None else indices.numpy(),
            alpha=cat([r.alpha for r in reports]), support=cat([r.support for r in reports]),
            conflict=cat([r.conflict for r in reports]),
            beta_mean=per_modality(lambda r, n: r.beta[n].mean(dim=1)),
            beta_std=per_modality(lambda r, n: r.beta[n].std(dim=1, unbiased=False)),
            present=cat([r.present for r in reports]), has_context=cat([r.has_context for r in reports]),
            fused=cat([o.fused for o in outputs]),
            summaries_before={n: cat([r.summaries_before[n] for r in reports]) for n in names},
            summaries_after={n: cat([r.summaries_after[n] for r in reports]) for n in names},
            pairwise=cat([r.pairwise_support for r in reports]) if detail else None,
            beta={n: cat([r.beta[n] for r in reports]) for n in names} if detail else None,
        )


def batches(batch: Batch, batch_size: int):
    """Split a large batch into chunks (bounded memory for the frame encoders)."""
    for start in range(0, batch.size, batch_size):
        yield batch.select(slice(start, start + batch_size))


@torch.no_grad()
def predict(model: MultimodalModel, batch: Batch, batch_size: int = 256) -> Predictions:
    """Run ``model`` (eval mode) over ``batch`` in chunks and stack outputs and cues."""
    was_training = model.training
    model.eval()
    try:
        outputs = [model(chunk) for chunk in batches(batch, batch_size)]
    finally:
        model.train(was_training)
    return Predictions.stack(outputs, batch.labels, batch.indices)


def only_modality(batch: Batch, keep: str) -> Batch:
    """The batch with every modality but ``keep`` marked absent (and zeroed): a unimodal probe of a
    multimodal model through its own head."""
    out = batch
    for n in batch.modalities:
        if n != keep:
            out = out.with_modality(n, values=torch.zeros_like(batch.inputs[n]),
                                    present=torch.zeros(batch.size, dtype=torch.bool))
    return out


@torch.no_grad()
def unimodal_probe_logits(model: MultimodalModel, batch: Batch, batch_size: int = 256) -> Dict[str, np.ndarray]:
    """Logits of the model's own head with only one modality present, for each modality.

    The encoders do not depend on presence, so features are computed once and only the
    calibrator, fusion and head run per modality.
    """
    was_training = model.training
    model.eval()
    out: Dict[str, List[Tensor]] = {n: [] for n in model.modalities}
    try:
        for chunk in batches(batch, batch_size):
            feats, masks, present = model.encode(chunk)
            for n in model.modalities:
                alone = {k: (v if k == n else torch.zeros_like(v)) for k, v in present.items()}
                out[n].append(model.fuse(feats, masks, alone).logits)
    finally:
        model.train(was_training)
    return {n: torch.cat(v).numpy() for n, v in out.items()}
