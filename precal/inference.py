"""Batched inference that keeps the calibrator's report: one code path for evaluation, training
logs, robustness sweeps and the dashboard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor

from precal.data.batch import Batch
from precal.models.model import MultimodalModel


@dataclass
class Predictions:
    """Stacked per-sample outputs of a model over a batch or split (numpy, detached)."""

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

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1) if self.logits.shape[1] > 1 else self.logits[:, 0]

    def probabilities(self) -> np.ndarray:
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def batches(batch: Batch, batch_size: int):
    """Split a large batch into chunks (bounded memory for the frame encoders)."""
    for start in range(0, batch.size, batch_size):
        yield batch.select(slice(start, start + batch_size))


@torch.no_grad()
def predict(model: MultimodalModel, batch: Batch, batch_size: int = 256) -> Predictions:
    """Run ``model`` (eval mode) over ``batch`` in chunks and stack outputs and cues."""
    was_training = model.training
    model.eval()
    parts: Dict[str, List[Tensor]] = {k: [] for k in ("logits", "alpha", "support", "conflict", "bm", "bs",
                                                      "present", "ctx", "fused")}
    before: Dict[str, List[Tensor]] = {n: [] for n in model.modalities}
    after: Dict[str, List[Tensor]] = {n: [] for n in model.modalities}
    try:
        for chunk in batches(batch, batch_size):
            out = model(chunk)
            r = out.report
            parts["logits"].append(out.logits)
            parts["fused"].append(out.fused)
            parts["alpha"].append(r.alpha)
            parts["support"].append(r.support)
            parts["conflict"].append(r.conflict)
            parts["bm"].append(torch.stack([r.beta[n].mean(dim=1) for n in r.modalities], dim=1))
            parts["bs"].append(torch.stack([r.beta[n].std(dim=1, unbiased=False) for n in r.modalities], dim=1))
            parts["present"].append(r.present)
            parts["ctx"].append(r.has_context)
            for n in model.modalities:
                before[n].append(r.summaries_before[n])
                after[n].append(r.summaries_after[n])
    finally:
        model.train(was_training)

    def cat(key: str) -> np.ndarray:
        return torch.cat(parts[key]).numpy()

    return Predictions(
        modalities=list(model.modalities),
        logits=cat("logits"),
        labels=None if batch.labels is None else batch.labels.numpy(),
        indices=None if batch.indices is None else batch.indices.numpy(),
        alpha=cat("alpha"), support=cat("support"), conflict=cat("conflict"),
        beta_mean=cat("bm"), beta_std=cat("bs"), present=cat("present"), has_context=cat("ctx"),
        fused=cat("fused"),
        summaries_before={n: torch.cat(v).numpy() for n, v in before.items()},
        summaries_after={n: torch.cat(v).numpy() for n, v in after.items()},
    )


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
