"""Weight averaging over the last epochs of a run (stochastic weight averaging, Izmailov et al. 2018).

Why: on a small cross-subject data set the epoch that validation picks is partly luck — UTD-MHAD's
validation split sits at 100% for most of the late epochs, so the choice among them falls to the
validation loss, and seeds end up 2-4 points apart on new subjects. The uniform average of the
weights over the last epochs lies in a flatter region than any one of them and does not depend on
that choice. BatchNorm statistics of averaged weights are not the average of the statistics, so
they are recomputed on the training split afterwards.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from precal.data.batch import Batch
from precal.evidence import EvidenceReference
from precal.typicality import SummaryReference


class WeightAverage:
    """Running uniform average of a model's floating-point weights and buffers."""

    def __init__(self) -> None:
        self._sum: Optional[Dict[str, Tensor]] = None
        self.count = 0

    def add(self, model: nn.Module) -> None:
        state = model.state_dict()
        if self._sum is None:
            self._sum = {k: v.detach().double().clone() for k, v in state.items() if v.is_floating_point()}
        else:
            for k, total in self._sum.items():
                total.add_(state[k].detach().double())
        self.count += 1

    def state_dict(self, model: nn.Module) -> Dict[str, Tensor]:
        """The averaged state; integer buffers (BatchNorm's batch counters) come from ``model``."""
        if self._sum is None:
            raise ValueError("no weights were added to the average")
        state = model.state_dict()
        return {k: (self._sum[k] / self.count).to(v.dtype) if k in self._sum else v.clone() for k, v in state.items()}


def recompute_batch_norm(model: nn.Module, batch: Batch, batch_size: int) -> None:
    """Re-estimate every running statistic from ``batch``, leaving the weights untouched: each
    BatchNorm's mean and variance and the calibrator's references (what a typical sample's cues and
    summaries are), as a plain cumulative average over mini-batches of ``batch_size``. Averaged weights
    give other features and cues than any epoch did, so neither statistic can be averaged.

    With the atypicality cue (a :class:`SummaryReference`) this takes two passes: its cue is measured
    against the summary reference, so the cue reference is re-estimated once that reference is
    final (in one pass, a chunk's atypicality would be read against the chunks before it only, too
    few summaries for a covariance: the cue came out far from what the final reference gives)."""
    norms = [m for m in model.modules() if isinstance(m, (_BatchNorm, EvidenceReference, SummaryReference))]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats() if isinstance(m, _BatchNorm) else m.reset()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    _pass(model, batch, batch_size)
    if any(isinstance(m, SummaryReference) for m in norms):
        for m in norms:
            if isinstance(m, EvidenceReference):
                m.reset()
            else:
                m.momentum = 0.0  # kept as the first pass left it
        _pass(model, batch, batch_size)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def _pass(model: nn.Module, batch: Batch, batch_size: int) -> None:
    """One training-mode pass over ``batch`` in equal-sized chunks (each counts once in an average)."""
    chunks = max(1, -(-batch.size // batch_size))
    with torch.no_grad():
        for rows in torch.tensor_split(torch.arange(batch.size), chunks):
            model(batch.select(rows))
